"""An in-memory :class:`~actors.api.backend.Backend` for tests of the HTTP layer.

Commands go through the real, pure state machine (:func:`scheduled_db.state.fsm.apply_entries`
over a :class:`~scheduled_db.state.stateview.MemoryState`), reads through
:func:`scheduled_db.state.reads.answer`, the StorageActor's own dispatch: only Raft and
the actors are missing.  Switches make it refuse writes (the errors of
:func:`~actors.api.backend.refusal_error`), time out, or fail reads, so every error path
of the API can be driven; ``hold()`` keeps proposals (and reads) waiting, so that
requests stay in flight for as long as a test needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from actors.api.backend import NodeStatus, ServerInfo, refusal_error
from actors.raft.messages import Refusal
from scheduled_db.errors import MembershipConflict, SchedulerError, UnknownOutcome
from scheduled_db.jobs.model import ErrorType, JobStatus
from scheduled_db.raft.messages import Entry
from scheduled_db.state import fsm, queries, reads
from scheduled_db.state.backup_format import backup_header, backup_pieces
from scheduled_db.state.commands import (
    Batch,
    ClaimOccurrence,
    Command,
    CompleteOccurrence,
    RecordOutcome,
    encode_command,
)
from scheduled_db.state.results import CommandResult
from scheduled_db.state.stateview import ALL_KEYS_END, MemoryState

RAFT_ADDRESS = "10.9.8.7:7000"
HTTP_ADDRESS = "10.9.8.7:8080"


class MemoryBackend:
    """A single-node "cluster" whose log is applied the moment it is proposed."""

    def __init__(self, node_id: str = "node-1") -> None:
        self.node_id = node_id
        self.state = MemoryState()
        self.backup_refusal: Exception | None = None  # raised by open_backup when set
        self.index = 0
        self.term = 1
        self.role = "leader"
        self.leader_id = node_id
        self.leader_http_address = HTTP_ADDRESS
        self.leader_raft_address = RAFT_ADDRESS
        self.servers: tuple[ServerInfo, ...] = (
            ServerInfo(node_id, RAFT_ADDRESS, HTTP_ADDRESS, "voter", 0, 0),
        )
        # Switches: what the next calls do instead of succeeding.
        self.refusal: SchedulerError | None = None
        self.apply_before_refusing = False  # an unknown_outcome that did commit
        self.time_out = False  # every call raises TimeoutError
        self.read_error: Exception | None = None
        self.proposed: list[Command] = []
        self.learners: list[tuple[str, str, str]] = []
        self.members = ["node-1", "node-2", "node-3"]
        self.read_indexes = 0  # linearizable reads confirmed
        self.reads: list[str] = []  # the name of each query read, in order
        # Set by hold(): proposals (and reads) wait for it, so requests stay in flight.
        self.held_writes: asyncio.Event | None = None
        self.held_reads: asyncio.Event | None = None
        self.waiting = 0  # proposals and reads waiting on a hold

    # --- switches ---------------------------------------------------------------------

    def refuse(self, reason: str, leader: str = "", *, applied: bool = False) -> None:
        self.refusal = refusal_error(Refusal(reason), leader)
        self.apply_before_refusing = applied

    def hold(self, *, writes: bool = True, reads: bool = False) -> None:
        """Keep proposals (and, with ``reads``, reads) waiting until :meth:`let_go`."""
        self.held_writes = asyncio.Event() if writes else None
        self.held_reads = asyncio.Event() if reads else None

    def let_go(self) -> None:
        for held in (self.held_writes, self.held_reads):
            if held is not None:
                held.set()
        self.held_writes = self.held_reads = None

    async def _wait(self, held: asyncio.Event | None) -> None:
        if held is None:
            return
        self.waiting += 1
        try:
            await held.wait()
        finally:
            self.waiting -= 1

    def follow(
        self, leader_id: str = "", leader_http_address: str = "", leader_raft_address: str = ""
    ) -> None:
        """Become a follower of ``leader_id`` (none: no leader); writes are refused."""
        self.role = "follower"
        self.leader_id = leader_id
        self.leader_http_address = leader_http_address
        self.leader_raft_address = leader_raft_address
        self.refuse("not_leader", leader_id)

    # --- the Backend contract ---------------------------------------------------------

    async def propose(self, command: Command, timeout: float = 10.0) -> CommandResult:
        await self._wait(self.held_writes)
        if self.time_out:
            raise UnknownOutcome("no outcome in time")
        if self.refusal is not None:
            if self.apply_before_refusing:
                self.apply(command)
            raise self.refusal
        self.proposed.append(command)
        (result,) = self.apply(command)
        return result

    async def propose_batch(
        self, commands: Sequence[Command], timeout: float = 10.0
    ) -> tuple[CommandResult, ...]:
        await self._wait(self.held_writes)
        if self.time_out:
            raise UnknownOutcome("no outcome in time")
        if self.refusal is not None:
            raise self.refusal
        batch = Batch(tuple(commands))
        self.proposed.append(batch)
        return tuple(self.apply(batch))

    async def read(self, query: Any, timeout: float = 10.0) -> Any:
        await self._wait(self.held_reads)
        if self.time_out:
            raise TimeoutError
        if self.read_error is not None:
            raise self.read_error
        self.reads.append(type(query).__name__)
        return self.query(query)

    async def status(self) -> NodeStatus:
        if self.time_out:
            raise TimeoutError
        return NodeStatus(
            node_id=self.node_id,
            role=self.role,
            leader_id=self.leader_id,
            leader_http_address=self.leader_http_address,
            term=self.term,
            commit_index=self.index,
            applied_index=self.index,
            servers=self.servers,
            leader_raft_address=self.leader_raft_address,
        )

    async def read_index(self, timeout: float = 10.0) -> None:
        if self.time_out:
            raise TimeoutError
        if self.refusal is not None:
            raise self.refusal
        self.read_indexes += 1

    async def open_backup(self, timeout: float = 30.0) -> MemoryBackup:
        await self.read_index(timeout)
        if self.backup_refusal is not None:
            raise self.backup_refusal
        return MemoryBackup(self.state, self.node_id)

    async def add_learner(self, node_id: str, raft_address: str, http_address: str) -> None:
        if self.time_out:
            raise TimeoutError
        if self.refusal is not None:
            raise self.refusal
        if node_id in self.members or any(node_id == n for n, _, _ in self.learners):
            raise MembershipConflict(f"{node_id} is already a member")  # as the Raft core
        self.learners.append((node_id, raft_address, http_address))

    async def remove_member(self, node_id: str) -> None:
        if self.refusal is not None:
            raise self.refusal
        if node_id not in self.members:
            raise MembershipConflict(f"{node_id} is not a member")
        self.members.remove(node_id)

    # --- synchronous helpers for test set-up ------------------------------------------

    def apply(self, *commands: Command) -> list[CommandResult]:
        """Commit and apply each command in an entry of its own; their results."""
        entries = []
        for command in commands:
            self.index += 1
            entries.append(Entry(self.term, self.index, data=encode_command(command)))
        out = fsm.apply_entries(self.state, entries)
        self.state.apply(out.writes)
        return [r for e in out.results for r in e.results]

    def query(self, query: Any) -> Any:
        return reads.answer(self.state, query)  # the StorageActor's own dispatch

    def run_attempt(self, job_id: str, outcome: JobStatus, at_ms: int, *, final: bool) -> None:
        """Claim the job's next attempt and record ``outcome``; ``final`` also closes the
        occurrence with that status (the job then counts as finished)."""
        job = queries.get_job(self.state, job_id)
        ex = queries.get_execution(self.state, job_id)
        assert job is not None and ex is not None and ex.occurrence_ms is not None
        occ, attempt = ex.occurrence_ms, ex.attempt + 1
        failed = outcome is not JobStatus.COMPLETED
        results = self.apply(
            ClaimOccurrence(job_id, occ, attempt, self.node_id, self.term, at_ms),
            RecordOutcome(
                job_id,
                occ,
                attempt,
                outcome,
                at_ms + 25,
                http_status=500 if failed else 200,
                response_time_ms=25,
                error_message="upstream said no" if failed else None,
                error_type=ErrorType.HTTP_ERROR if failed else None,
            ),
        )
        if final:
            results += self.apply(CompleteOccurrence(job_id, occ, None, outcome, at_ms + 30))
        assert all(r.accepted for r in results), results

    def next_run(self, job_id: str) -> None:
        """Close a recurring job's current occurrence and schedule the next, an hour on."""
        ex = queries.get_execution(self.state, job_id)
        assert ex is not None and ex.occurrence_ms is not None
        occ = ex.occurrence_ms
        (result,) = self.apply(CompleteOccurrence(job_id, occ, occ + 3_600_000, None, occ + 100))
        assert result.accepted, result


class MemoryBackup:
    """A backup of the in-memory state as it is when taken (the pairs are copied)."""

    def __init__(self, state: MemoryState, node_id: str) -> None:
        self._copy = MemoryState()
        self._copy.apply(list(state.iter_range(b"", ALL_KEYS_END)))
        self.header = backup_header(self._copy, node_id, 0)

    def pieces(self) -> Iterator[bytes]:
        return backup_pieces(self._copy, self.header, 4096)

    def close(self) -> None:
        self._copy.clear()
