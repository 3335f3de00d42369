"""Messages of the RaftActor (actors/raft/actor.py) and of the node's transport
(actors/raft/transport.py).

Every message is a frozen dataclass; a request that is answered carries a
``reply`` (:data:`actors.runtime.replies.Reply`).  See docs/architecture.md,
"One way to reply".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import pykka

from actors.runtime.replies import ActorRef, Reply
from scheduled_db.raft.messages import ConfChange, SnapshotMeta
from scheduled_db.raft.messages import Message as RaftMessage
from scheduled_db.state.results import CommandResult

if TYPE_CHECKING:
    from actors.raft.actor import RaftActor

# -----------------------------------------------------------------------------
# Raft (actors/raft/actor.py: RaftActor) and the node's transport
# -----------------------------------------------------------------------------


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
    raft: pykka.ActorRef[RaftActor]


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
    """Replicate one encoded command; ``reply`` gets a :class:`ProposeOutcome`.
    ``traceparents``: the W3C trace contexts of the requests whose commands the
    entry carries, when tracing is on (each gets a span of the proposal)."""

    data: bytes
    reply: Reply
    traceparents: tuple[str, ...] = ()


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
    """The core's :class:`~scheduled_db.raft.core.Status`, to ``reply``."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class GetLastContact:
    """How long ago (ms) each peer was last heard from, a dict, to ``reply``."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class GetLearnedPeers:
    """The peers this node learned by probing their Raft addresses (the original's
    ``STATIC_PEERS``), a tuple of :class:`LearnedPeer`, to ``reply``."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class LearnedPeer:
    """A peer found by a probe: its id, the Raft address it answered at, and its REST
    API's address ("" if it did not say)."""

    node_id: str
    raft_address: str
    http_address: str


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


# -----------------------------------------------------------------------------
# Transport (actors/raft/transport.py)
# -----------------------------------------------------------------------------


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
class PeerIdentified:
    """The transport probed ``address`` (``host:port`` as listed) and the node that
    answered is ``node_id`` (this node, if it dialled itself), with its REST API at
    ``http_address`` ("" if it did not say).  Told to the inbox once per address."""

    address: str
    node_id: str
    http_address: str


@dataclass(frozen=True, slots=True)
class SetTransportInbox:
    """Where the transport tells :class:`PeerMessage`, :class:`ReportUnreachable` and
    :class:`PeerIdentified` from now on (None: drop them; the addresses identified
    so far are told again to a new inbox), and where :class:`SnapshotFrame` goes."""

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
    """A :class:`TransportStatus` to ``reply``, from the transport's loop thread
    (so after every :class:`SetTransportInbox` and :class:`SetPeers` told before)."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class GetPeerSender:
    """A :class:`~actors.raft.transport.PeerSender` to ``reply``: sends and peer maps
    from the caller's thread straight to the transport's loop (the Raft actor's path)."""

    reply: Reply


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
