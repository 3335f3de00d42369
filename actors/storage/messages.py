"""Messages of the StorageActor (actors/storage/actor.py): the Raft log and
apply, snapshots, reads, and the events it sends.

Every message is a frozen dataclass; a request that is answered carries a
``reply`` (:data:`actors.runtime.replies.Reply`).  See docs/architecture.md,
"One way to reply".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.runtime.replies import ActorRef, Reply
from scheduled_db.raft.messages import ConfState, Entry, HardState, SnapshotMeta
from scheduled_db.state.reads import Query
from scheduled_db.state.results import CommandResult, EntryResult
from scheduled_db.state.snapshot_codec import SnapshotCursor

# --- requests: Raft log and apply ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersistReady:
    """Make a Ready durable: ``snapshot`` (already staged), hard state and entries,
    as one synced batch; then :class:`ReadyPersisted` goes to ``reply``."""

    ready_id: int
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: SnapshotMeta | None = None
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class ApplyEntries:
    """Apply committed entries (in order; already-applied ones are skipped).

    ``conf_state`` is the membership after the CONF_CHANGE entries among them,
    as the Raft core computed it; required if there is one.  :class:`Applied`
    goes to ``reply`` and to every subscriber, then :class:`SnapshotTaken`
    to ``reply`` if the log passed the snapshot threshold.
    """

    entries: tuple[Entry, ...]
    conf_state: ConfState | None = None
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """Start a new cluster of ``voters`` (``NodeStore.bootstrap``), unless the store
    already holds Raft state; then :class:`Bootstrapped` goes to ``reply``."""

    voters: tuple[str, ...]
    reply: Reply


@dataclass(frozen=True, slots=True)
class RetryWrites:
    """The StorageActor's own tick while the disk is full: look for space, then write
    what is held (see actors/storage/actor.py)."""


@dataclass(frozen=True, slots=True)
class RecordWatermark:
    """The StorageActor's own tick: bring the durability watermark up to the log."""


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Send :class:`Applied`, :class:`SnapshotInstalled` and :class:`DiskFull`
    events to ``subscriber``."""

    subscriber: ActorRef


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    subscriber: ActorRef


# --- requests: snapshots ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadSnapshotChunk:
    """Leader side: the chunk of snapshot ``index`` after ``cursor`` (None: first).

    Answered with :class:`SnapshotChunkRead`, or :class:`SnapshotUnavailable` if
    a newer snapshot replaced it (start again with the new one).
    """

    index: int
    cursor: SnapshotCursor | None
    reply: Reply | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class StageSnapshotChunk:
    """Follower side: one received chunk (seq 0 starts over).  Answered with
    :class:`SnapshotChunkStaged` or :class:`SnapshotChunkRejected`.  Once the
    last chunk is staged, the Raft core may be given the snapshot message; its
    Ready's :class:`PersistReady` then installs the staged state atomically."""

    data: bytes
    reply: Reply | None = None


# --- requests: reads -----------------------------------------------------------------
# The queries are records of the core (scheduled_db.state.reads), answered by its
# one dispatch; they are named here too, as the messages the StorageActor reads.


@dataclass(frozen=True, slots=True)
class Read:
    """A read of the applied state; :class:`ReadResult` goes to ``reply`` (and is
    the value of an ``ask`` from a test or the supervisor, never from an actor).

    The result's values: GetJob -> Job |
    None; ListJobs -> JobPage; GetExecutions / GetOpenClaims -> tuple[Attempt,
    ...]; GetCurrentAttempts -> dict of job id -> tuple[Attempt, ...]; DueBefore
    -> tuple[Job, ...]; GetCounters -> Counters; GetApplied ->
    (index, term); GetDigest -> hex str; GetMembers -> dict of node id ->
    (raft, http address).
    """

    request_id: int
    query: Query
    reply: Reply


@dataclass(frozen=True, slots=True)
class ReadMany:
    """Several reads at once (the HTTP side gathers those of one loop turn): a tuple
    of :class:`ReadResult`, one per query in order (``request_id`` its position),
    goes to ``reply``.  Each query is answered on its own: a bad cursor in one is
    that one's error."""

    queries: tuple[Query, ...]
    reply: Reply


# --- replies and events ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadyPersisted:
    """The Ready ``ready_id`` is durable: the log ends at ``last_index``."""

    ready_id: int
    hard_state: HardState
    last_index: int
    snapshot_index: int


@dataclass(frozen=True, slots=True)
class Applied:
    """Entries up to ``applied_index`` are applied; their results, in index order."""

    applied_index: int
    applied_term: int
    entries: tuple[EntryResult, ...]

    @property
    def results(self) -> tuple[CommandResult, ...]:
        """Every command's result, in index order (the changed ones have ``changed``)."""
        return tuple(r for e in self.entries for r in e.results)


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    """The answer to :class:`Bootstrap`: the bootstrap snapshot, or None if the store
    already held Raft state (and so was left alone)."""

    meta: SnapshotMeta | None


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    """A local snapshot was taken and the log compacted up to ``first_index - 1``."""

    meta: SnapshotMeta
    first_index: int


@dataclass(frozen=True, slots=True)
class SnapshotInstalled:
    """The state was replaced by a snapshot from the leader (reload any cache)."""

    meta: SnapshotMeta


@dataclass(frozen=True, slots=True)
class DiskFull:
    """A write found no space (``full``): writes from now on are held, reads go on; or
    (not ``full``) space is back and the held writes are done."""

    full: bool


@dataclass(frozen=True, slots=True)
class SnapshotChunkRead:
    index: int
    data: bytes
    next_cursor: SnapshotCursor | None  # None: ``data`` was the last chunk


@dataclass(frozen=True, slots=True)
class SnapshotUnavailable:
    index: int
    current: int  # the snapshot the node has now (0: none)


@dataclass(frozen=True, slots=True)
class SnapshotChunkStaged:
    meta: SnapshotMeta
    seq: int
    complete: bool


@dataclass(frozen=True, slots=True)
class SnapshotChunkRejected:
    reason: str


@dataclass(frozen=True, slots=True)
class ReadResult:
    request_id: int
    value: Any
    error: str | None = None  # e.g. an invalid list cursor


@dataclass(frozen=True, slots=True)
class TakeBackupCheckpoint:
    """Take a checkpoint of the database for a backup; ``reply`` gets a
    :class:`BackupCheckpoint`, whose ``error`` says why there is none (the disk)."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class BackupCheckpoint:
    path: Path | None
    state_cf: str
    error: str | None = None
