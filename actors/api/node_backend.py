"""The real :class:`~actors.api.backend.Backend`: the REST API's bridge to the actors.

Requests go to actors by ``tell`` with a ``reply`` made by
:func:`~actors.runtime.replies.loop_reply`.
An actor answers by calling it from its own thread; the answer crosses into the
event loop with ``loop.call_soon_threadsafe``.  Nothing here blocks the
loop, and no actor ever waits on the HTTP side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka

from actors.api.backend import BackupStream, NodeStatus, ServerInfo, refusal_error
from actors.api.coalesce import ProposalBatcher, ReadBatcher
from actors.raft.messages import (
    GetLastContact,
    GetLearnedPeers,
    GetRaftStatus,
    LearnedPeer,
    Propose,
    ProposeConfChange,
    ProposeOutcome,
    ReadIndex,
)
from actors.runtime import tracing
from actors.runtime.replies import ActorRef, loop_reply
from actors.storage.backup import BackupSource
from actors.storage.messages import BackupCheckpoint, ReadMany, TakeBackupCheckpoint
from actors.storage.proposed import Proposed
from scheduled_db.config.model import NodeConfig
from scheduled_db.errors import BackupUnavailable, UnknownOutcome
from scheduled_db.raft.messages import ConfChange, ConfChangeType
from scheduled_db.state.commands import Batch, Command, encode_command
from scheduled_db.state.reads import GetMembers
from scheduled_db.state.records import encode_member
from scheduled_db.state.results import CommandResult

if TYPE_CHECKING:
    from actors.raft.actor import RaftActor
    from actors.storage.actor import StorageActor


class NodeBackend:
    """Bridges REST calls to the RaftActor and the StorageActor of this node."""

    def __init__(
        self,
        config: NodeConfig,
        raft: pykka.ActorRef[RaftActor],
        storage: pykka.ActorRef[StorageActor],
        http_address: str,
        proposed: Proposed | None = None,
    ) -> None:
        self.node_id = config.node.id
        self._config = config
        self._raft = raft
        self._storage = storage
        self._http_address = http_address
        self._proposed = proposed  # what the storage applies without decoding
        self._batcher = ProposalBatcher(
            lambda data, reply, traced: raft.tell(Propose(data, reply, traced)), proposed
        )
        self._reads = ReadBatcher(lambda queries, reply: storage.tell(ReadMany(queries, reply)))

    def set_http_address(self, address: str) -> None:
        """Where this node's API is reachable (known once the server has bound)."""
        self._http_address = address

    async def _call(self, ref: ActorRef, make: Any, timeout: float) -> Any:
        future, reply = loop_reply(asyncio.get_running_loop())
        ref.tell(make(reply))
        return await asyncio.wait_for(future, timeout)

    async def propose(self, command: Command, timeout: float = 10.0) -> CommandResult:
        return await self._batcher.propose(command, timeout)

    async def propose_batch(
        self, commands: Sequence[Command], timeout: float = 10.0
    ) -> tuple[CommandResult, ...]:
        batch = Batch(tuple(commands))
        data = encode_command(batch)
        if self._proposed is not None:
            self._proposed.remember(data, batch)
        traced = _traced(tracing.current_traceparent())
        outcome = await self._proposal(lambda r: Propose(data, r, traced), timeout)
        if outcome.error is not None:
            raise refusal_error(outcome.error, outcome.leader, outcome.detail)
        if len(outcome.results) != len(commands):
            raise RuntimeError(f"expected {len(commands)} results, got {len(outcome.results)}")
        return tuple(outcome.results)

    async def propose_entry(
        self, data: bytes, command: Command, traced: tuple[str, ...], timeout: float
    ) -> ProposeOutcome:
        """Propose one entry another process grouped and encoded (``data`` is
        ``command``'s encoding: an API worker's :class:`ProposalBatcher` made both);
        its outcome, refusals included, as the Raft actor gave it."""
        if self._proposed is not None:
            self._proposed.remember(data, command)
        return await self._proposal(lambda r: Propose(data, r, traced), timeout)

    async def _proposal(self, make: Any, timeout: float) -> ProposeOutcome:
        """Propose and wait; a proposal with no answer in time may still commit."""
        try:
            outcome: ProposeOutcome = await self._call(self._raft, make, timeout)
        except TimeoutError:
            detail = f"no outcome within {timeout:g} s"
            raise UnknownOutcome(detail) from None
        return outcome

    async def read(self, query: Any, timeout: float = 10.0) -> Any:
        return await self._reads.read(query, timeout)

    async def read_index(self, timeout: float = 10.0) -> None:
        outcome: ProposeOutcome = await self._call(self._raft, ReadIndex, timeout)
        if outcome.error is not None:
            raise refusal_error(outcome.error, outcome.leader, outcome.detail)

    async def open_backup(self, timeout: float = 30.0) -> BackupStream:
        path, cf = await self.backup_checkpoint(timeout)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, BackupSource, path, cf, self.node_id)

    async def backup_checkpoint(self, timeout: float = 30.0) -> tuple[Path, str]:
        """A checkpoint for a backup, once caught up (see :meth:`open_backup`): its
        directory and the state's column family; whoever reads it removes it."""
        await self.read_index(timeout)
        taken: BackupCheckpoint = await self._call(self._storage, TakeBackupCheckpoint, timeout)
        if taken.path is None:
            raise BackupUnavailable(taken.error or "no checkpoint")
        return taken.path, taken.state_cf

    async def add_learner(self, node_id: str, raft_address: str, http_address: str) -> None:
        context = encode_member(raft_address, http_address)
        await self._change(ConfChange(ConfChangeType.ADD_LEARNER, node_id, context))

    async def remove_member(self, node_id: str) -> None:
        await self._change(ConfChange(ConfChangeType.REMOVE, node_id))

    async def _change(self, change: ConfChange) -> None:
        outcome = await self._proposal(lambda r: ProposeConfChange(change, r), 10.0)
        if outcome.error is not None:
            raise refusal_error(outcome.error, outcome.leader, outcome.detail)

    async def status(self) -> NodeStatus:
        st: Any = await self._call(self._raft, lambda r: GetRaftStatus(r), 5.0)
        learned: tuple[LearnedPeer, ...] = await self._call(self._raft, GetLearnedPeers, 5.0)
        addresses = self._addresses(await self.read(GetMembers(), timeout=5.0), learned)
        heard: dict[str, int] = await self._call(self._raft, GetLastContact, 5.0)
        leader_raft, leader_http = addresses.get(st.lead, ("", ""))
        return NodeStatus(
            node_id=self.node_id,
            role=_ROLE_NAMES.get(st.role.value, st.role.value),
            leader_id=st.lead,
            leader_http_address=leader_http,
            leader_raft_address=leader_raft,
            term=st.term,
            commit_index=st.commit,
            applied_index=st.applied,
            servers=self._servers(st, addresses, heard),
        )

    def _addresses(
        self, recorded: dict[str, tuple[str, str]], learned: tuple[LearnedPeer, ...]
    ) -> dict[str, tuple[str, str]]:
        """Node id -> (raft, http) address: the config's members (this node too: a
        node listening on 0.0.0.0 cannot tell its own address), else those learned
        by probing listed Raft addresses, else the state's (members that joined
        later), as the Raft actor dials them."""
        out = {self.node_id: (str(self._config.raft.advertise_address), self._http_address)}
        out.update(recorded)
        out.update((p.node_id, (p.raft_address, p.http_address)) for p in learned)
        for mb in self._config.cluster.members:  # how the others know us, too
            out[mb.id] = (str(mb.raft_address), str(mb.http_address))
        return out

    def _servers(
        self, st: Any, addresses: dict[str, tuple[str, str]], heard: dict[str, int]
    ) -> tuple[ServerInfo, ...]:
        out = []
        for suffrage, ids in (("voter", st.conf_state.voters), ("learner", st.conf_state.learners)):
            for node_id in ids:
                raft_addr, http_addr = addresses.get(node_id, ("", ""))
                progress = st.progress.get(node_id)
                out.append(
                    ServerInfo(
                        id=node_id,
                        raft_address=raft_addr,
                        http_address=http_addr,
                        suffrage=suffrage,
                        match_index=progress.match if progress is not None else None,
                        last_contact_ms=heard.get(node_id),
                    )
                )
        return tuple(out)


def _traced(traceparent: str | None) -> tuple[str, ...]:
    return () if traceparent is None else (traceparent,)


# The core distinguishes the two phases of candidacy; the API shows one.
_ROLE_NAMES = {"pre_candidate": "candidate"}
