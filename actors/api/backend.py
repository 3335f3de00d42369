"""What the HTTP layer needs from a node, as one small async contract.

The REST handlers never touch actors directly: they call a :class:`Backend`.
The real one (:class:`actors.api.node_backend.NodeBackend`) bridges to the Raft and
Storage actors with ``loop.call_soon_threadsafe`` (a Pykka future must never be
awaited on the event loop: it would block it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.raft.messages import Refusal
from scheduled_db.errors import (
    DiskFull,
    MembershipConflict,
    NotLeader,
    ProposalDropped,
    SchedulerError,
    UnknownOutcome,
)
from scheduled_db.state.backup_format import BackupHeader
from scheduled_db.state.commands import Command
from scheduled_db.state.results import CommandResult


def refusal_error(refusal: Refusal, leader: str = "", detail: str = "") -> SchedulerError:
    """The named error a :class:`~actors.raft.messages.Refusal` of the Raft actor is.

    Refused before proposing (the write was not made): :class:`NotLeader`
    (``leader`` names the leader, or '' if none is known), :class:`ProposalDropped`
    (e.g. a leadership transfer is in progress), :class:`DiskFull`.  Proposed but
    not confirmed (it may or may not have been applied): :class:`UnknownOutcome`.
    A contradicted membership change: :class:`MembershipConflict`.
    """
    if refusal is Refusal.NOT_LEADER:
        return NotLeader(leader)
    if refusal is Refusal.DROPPED:
        return ProposalDropped(detail)
    if refusal is Refusal.DISK_FULL:
        return DiskFull()
    if refusal is Refusal.CONFLICT:
        return MembershipConflict(detail)
    return UnknownOutcome(detail)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: str
    raft_address: str
    http_address: str
    suffrage: str  # "voter" | "learner"
    match_index: int | None = None
    last_contact_ms: int | None = None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A point-in-time view of this node, for /health and /debug/cluster."""

    node_id: str
    role: str  # "leader" | "follower" | "candidate"
    leader_id: str  # '' when unknown
    leader_http_address: str
    term: int
    commit_index: int
    applied_index: int
    servers: tuple[ServerInfo, ...] = field(default_factory=tuple)
    leader_raft_address: str = ""  # '' when no leader is known, or its address is not


class BackupStream(Protocol):
    """A backup being read: its header, then the file's pieces; ``close`` after.
    ``pieces`` and ``close`` block (disk reads): call them off the event loop."""

    header: BackupHeader

    def pieces(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """The node as the REST API sees it."""

    node_id: str

    async def propose(self, command: Command, timeout: float = 10.0) -> CommandResult:
        """Replicate ``command`` and return its result once applied locally.

        Raises the error of a refusal (:func:`refusal_error`); UnknownOutcome if
        no outcome came within ``timeout`` (the entry may still commit).
        """
        ...

    async def propose_batch(
        self, commands: Sequence[Command], timeout: float = 10.0
    ) -> tuple[CommandResult, ...]:
        """Replicate ``commands`` as one entry (a Batch, however many) and return
        their results in order; errors as :meth:`propose`."""
        ...

    async def read(self, query: Any, timeout: float = 10.0) -> Any:
        """Serve a query of :mod:`scheduled_db.state.reads` (GetJob, ListJobs, ...) from the
        local applied state.  Raises LookupError-free: a missing job is ``None``;
        raises ValueError for an invalid list cursor."""
        ...

    async def status(self) -> NodeStatus: ...

    async def read_index(self, timeout: float = 10.0) -> None:
        """Return once this node has applied everything committed before the call,
        as the leader confirms with a majority (a linearizable read may follow).
        Raises NotLeader or TimeoutError."""
        ...

    async def open_backup(self, timeout: float = 30.0) -> BackupStream:
        """A consistent backup of the state this node has applied once it has caught
        up with everything committed before the call (a ReadIndex first, so a
        follower's backup is as fresh as the leader's).  Raises NotLeader,
        TimeoutError, BackupUnavailable."""
        ...

    async def add_learner(self, node_id: str, raft_address: str, http_address: str) -> None:
        """Propose adding a node as a learner (leader only; raises the error of a refusal)."""
        ...

    async def remove_member(self, node_id: str) -> None:
        """Propose removing a voter or learner (leader only; raises the error of a refusal)."""
        ...
