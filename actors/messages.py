"""Messages between the node's actors: immutable values, grouped by the actor they concern.

Every message is a frozen dataclass.  A request that is answered carries a
``reply`` (:data:`Reply`): a callable the sender built, which the replier calls
with the answer from its own thread.  An actor passes ``self.actor_ref.tell`` (or
a closure that tags the answer and tells it); the HTTP side passes a hop onto its
event loop.  No actor ever blocks on another's future (see docs/architecture.md,
"One way to reply").
Records inside messages (jobs, attempts) are frozen too; treat the dicts they
hold (a job's payload) as read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pykka

from scheduled_db.jobs.model import Attempt, Job
from scheduled_db.raft.messages import ConfChange, ConfState, Entry, HardState, SnapshotMeta
from scheduled_db.raft.messages import Message as RaftMessage
from scheduled_db.state.commands import CommandKind
from scheduled_db.state.reads import DueBefore as DueBefore
from scheduled_db.state.reads import DueOccurrences as DueOccurrences
from scheduled_db.state.reads import GetApplied as GetApplied
from scheduled_db.state.reads import GetCounters as GetCounters
from scheduled_db.state.reads import GetDigest as GetDigest
from scheduled_db.state.reads import GetExecutions as GetExecutions
from scheduled_db.state.reads import GetJob as GetJob
from scheduled_db.state.reads import GetMembers as GetMembers
from scheduled_db.state.reads import GetOpenClaims as GetOpenClaims
from scheduled_db.state.reads import ListJobs as ListJobs
from scheduled_db.state.reads import Query as Query
from scheduled_db.state.results import CommandResult, EntryResult
from scheduled_db.state.snapshot_codec import SnapshotCursor

ActorRef = pykka.ActorRef[Any]
# How every request is answered: called once, from the replier's thread, with the
# answer; it must not block (tell, or hop onto an event loop).  It may raise
# pykka.ActorDeadError if the sender is gone; repliers drop the answer then.
Reply = Callable[[Any], None]

# =============================================================================
# Storage (actors/storage/actor.py: StorageActor)
# =============================================================================

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
    ...]; DueBefore -> tuple[Job, ...]; GetCounters -> Counters; GetApplied ->
    (index, term); GetDigest -> hex str; GetMembers -> dict of node id ->
    (raft, http address).
    """

    request_id: int
    query: Query
    reply: Reply | None = None


# --- replies and events ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadyPersisted:
    """The Ready ``ready_id`` is durable: the log ends at ``last_index``."""

    ready_id: int
    hard_state: HardState
    last_index: int
    snapshot_index: int


_RESCHEDULING = frozenset(
    {
        CommandKind.CANCEL,
        CommandKind.COMPLETE,
        CommandKind.UPDATE,
        CommandKind.PAUSE,
        CommandKind.RESUME,
        CommandKind.RECORD_OUTCOME,
    }
)


@dataclass(frozen=True, slots=True)
class Applied:
    """Entries up to ``applied_index`` are applied; their results, in index order."""

    applied_index: int
    applied_term: int
    entries: tuple[EntryResult, ...]

    @property
    def results(self) -> tuple[CommandResult, ...]:
        return tuple(r for e in self.entries for r in e.results)

    def _changed(self, *kinds: CommandKind) -> tuple[CommandResult, ...]:
        return tuple(r for r in self.results if r.changed and r.kind in kinds)

    @property
    def added(self) -> tuple[Job, ...]:
        return tuple(r.job for r in self._changed(CommandKind.CREATE) if r.job is not None)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(r.job_id for r in self._changed(CommandKind.DELETE) if r.job_id is not None)

    @property
    def rescheduled(self) -> tuple[Job, ...]:
        """Jobs whose status, pause or next run changed (other than by a claim)."""
        return tuple(r.job for r in self._changed(*_RESCHEDULING) if r.job is not None)

    @property
    def claims(self) -> tuple[Attempt, ...]:
        return tuple(r.attempt for r in self._changed(CommandKind.CLAIM) if r.attempt is not None)

    @property
    def outcomes(self) -> tuple[Attempt, ...]:
        outcomes = self._changed(CommandKind.RECORD_OUTCOME)
        return tuple(r.attempt for r in outcomes if r.attempt is not None)


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


# =============================================================================
# Raft (actors/raft/actor.py: RaftActor) and the node's transport
# =============================================================================


@dataclass(frozen=True, slots=True)
class Tick:
    """One tick of the Raft clock (sent by the actor's own ticker thread)."""


@dataclass(frozen=True, slots=True)
class PeerMessage:
    """A Raft message from a peer, decoded and authenticated by the transport."""

    message: RaftMessage


@dataclass(frozen=True, slots=True)
class SendMessages:
    """Raft messages for the transport to deliver to peers (fire and forget)."""

    messages: tuple[RaftMessage, ...]


@dataclass(frozen=True, slots=True)
class SnapshotOffer:
    """RaftActor -> SnapshotStreamActor: a leader's SNAP message (metadata only) to
    pull the snapshot for; :class:`InstallSnapshot` goes to ``raft`` once staged."""

    offer: RaftMessage
    raft: ActorRef


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """SnapshotStreamActor -> RaftActor: the offer's snapshot is staged; step it."""

    offer: RaftMessage


@dataclass(frozen=True, slots=True)
class SnapshotSettled:
    """RaftActor -> SnapshotStreamActor: the staged snapshot ``meta`` is installed
    durably, or the core refused it; a new stream may start."""

    meta: SnapshotMeta


@dataclass(frozen=True, slots=True)
class ReportUnreachable:
    peer: str


@dataclass(frozen=True, slots=True)
class Propose:
    """Replicate one encoded command; ``reply`` gets a :class:`ProposeOutcome`."""

    data: bytes
    reply: Reply


@dataclass(frozen=True, slots=True)
class ProposeConfChange:
    change: ConfChange
    reply: Reply


class Refusal(StrEnum):
    """Why the Raft actor did not (or cannot say it did) carry out a proposal or read."""

    NOT_LEADER = "not_leader"  # refused before proposing; ``leader`` names who leads, or ''
    DROPPED = "dropped"  # refused before proposing (a leadership transfer, a removed node)
    DISK_FULL = "disk_full"  # a leader that cannot persist refused it before proposing
    UNKNOWN_OUTCOME = "unknown_outcome"  # proposed, then leadership or durability was lost
    CONFLICT = "conflict"  # a membership change the membership contradicts


@dataclass(frozen=True, slots=True)
class ProposeOutcome:
    """Results once applied; or ``error``, the :class:`Refusal`."""

    index: int = 0
    results: tuple[CommandResult, ...] = ()
    error: Refusal | None = None
    detail: str = ""
    leader: str = ""


@dataclass(frozen=True, slots=True)
class ReadIndex:
    """Confirm leadership for a linearizable read; ``reply`` gets a ProposeOutcome
    whose ``index`` is applied on this node by then (or an ``error``)."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class TransferLeadership:
    target: str


@dataclass(frozen=True, slots=True)
class Campaign:
    """Start an election now (tests, and a single node at start-up)."""


@dataclass(frozen=True, slots=True)
class GetRaftStatus:
    """The core's :class:`~scheduled_db.raft.core.Status`, to ``reply`` and the ask."""

    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class GetLastContact:
    """Ask the RaftActor how long ago (ms) each peer was last heard from: a dict."""

    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class SubscribeLeadership:
    """Send :class:`Leadership` now and on every change to ``subscriber``."""

    subscriber: ActorRef


@dataclass(frozen=True, slots=True)
class Leadership:
    """Who leads in which term; ``established`` once this node's first entry of its
    term is applied (the state then holds everything earlier leaders committed)."""

    leader: str
    term: int
    is_leader: bool
    established: bool


# =============================================================================
# HTTP (actors/api/actor.py: HttpActor)
# =============================================================================


@dataclass(frozen=True, slots=True)
class GetBoundPorts:
    """Ask the HttpActor for (api_port, metrics_port) once it is listening."""


# =============================================================================
# Webhook delivery (actors/webhook/actor.py: WebhookActor)
# =============================================================================


@dataclass(frozen=True, slots=True)
class Deliver:
    """Make one delivery attempt of a claimed occurrence; :class:`DeliveryOutcome`
    goes to ``reply``.  The request is sent at once (the caller fires on time),
    but never before ``not_before_ms``, and only while the node's lease holds ``term``."""

    job_id: str
    job_type: str  # "unico" | "recurrente"
    scheduled_at_ms: int  # with job_id, the idempotency key
    attempt: int
    term: int
    url: str
    payload: dict[str, Any] | None
    timeout_ms: int
    reply: Reply | None = None
    signing_secret_ref: str | None = None  # a webhooks.signing_secrets name
    not_before_ms: int = 0  # never sent earlier (epoch ms): the attempt's fire time


@dataclass(frozen=True, slots=True)
class AbortDelivery:
    """Abort the in-flight delivery of ``job_id`` (the job was cancelled or deleted);
    its outcome is still reported, as an error of type ``aborted``."""

    job_id: str


@dataclass(frozen=True, slots=True)
class AbortAll:
    """Abort every in-flight delivery (this node stopped leading)."""


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one attempt ended.  ``retryable``: a timeout, connection/DNS/TLS error,
    5xx, 408 or 429; ``retry_after_ms`` is the server's Retry-After, if any."""

    job_id: str
    scheduled_at_ms: int
    attempt: int
    ok: bool
    start_ms: int
    end_ms: int
    sent_ms: int | None = None  # when the request went out (for lateness)
    http_status: int | None = None
    response_time_ms: int | None = None
    error_type: str | None = None  # ErrorType value, or "aborted"
    error_message: str | None = None
    retryable: bool = False
    retry_after_ms: int | None = None


# =============================================================================
# Scheduling (actors/scheduler/actor.py: SchedulerActor) — messages it sends itself
# =============================================================================


@dataclass(frozen=True, slots=True)
class Wake:
    """The scheduler's alarm went off (or a test advanced its clock)."""


@dataclass(frozen=True, slots=True)
class SchedulerProposed:
    """The outcome of a proposal the scheduler made in leadership ``epoch``;
    ``purpose`` is "claim" or "outcome", ``keys`` the job ids in command order."""

    epoch: int
    purpose: str
    keys: tuple[str, ...]
    outcome: ProposeOutcome


# =============================================================================
# Transport (actors/raft/transport.py)
# =============================================================================


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where the transport dials ``node_id``."""

    node_id: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SetPeers:
    """Replace the transport's whole peer map.  A peer left out is forgotten: its
    connections are closed and its queue dropped.  A peer whose address changed is
    re-dialled there, its queue kept.  An entry for the node itself is ignored."""

    peers: tuple[PeerAddress, ...]

    @staticmethod
    def of(peers: dict[str, tuple[str, int]]) -> SetPeers:
        """From a map of node id to (host, port), as the constructor takes it."""
        return SetPeers(tuple(PeerAddress(n, h, p) for n, (h, p) in peers.items()))


@dataclass(frozen=True, slots=True)
class SetTransportInbox:
    """Where the transport tells :class:`PeerMessage` and :class:`ReportUnreachable`
    from now on (None: drop them), and where :class:`SnapshotFrame` goes."""

    inbox: ActorRef | None
    snapshots: ActorRef | None = None


@dataclass(frozen=True, slots=True)
class SendSnapshotFrame:
    """Queue one snapshot stream frame (opaque bytes) for peer ``to``."""

    to: str
    data: bytes


@dataclass(frozen=True, slots=True)
class SnapshotFrame:
    """A snapshot stream frame that arrived from the authenticated peer ``frm``."""

    frm: str
    data: bytes


@dataclass(frozen=True, slots=True)
class GetTransportStatus:
    """Ask the TransportActor for a :class:`TransportStatus` (answered at once)."""


@dataclass(frozen=True, slots=True)
class PeerLinkStatus:
    """One peer as the transport sees it: whether the connection to it is up,
    messages queued for it, sent to it, received from it, dropped (its queue was
    full), rejected (sent on its connection in another node's name or for another
    node), and failed attempts to connect to it."""

    peer: str
    connected: bool
    queued: int
    sent: int
    received: int
    dropped: int
    rejected: int
    connect_failures: int


@dataclass(frozen=True, slots=True)
class TransportStatus:
    """A snapshot of the transport's counters.  ``auth_failures`` counts failed
    handshakes (either side), ``bad_frames`` authenticated connections closed for
    breaking the protocol."""

    node_id: str
    port: int
    auth_failures: int
    bad_frames: int
    peers: tuple[PeerLinkStatus, ...]

    def peer(self, node_id: str) -> PeerLinkStatus | None:
        return next((p for p in self.peers if p.peer == node_id), None)
