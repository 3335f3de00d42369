"""The SnapshotStreamActor: moves a state snapshot from the leader to a follower.

When a follower is too far behind for the leader's log (the entries it needs are
compacted away), the Raft core sends it a SNAP message that carries only the
snapshot's metadata.  On the follower, that message is an *offer*: the RaftActor
hands it here instead of to its core, and this actor pulls the snapshot from the
leader, one chunk at a time, into a staging column family (the StorageActor's
:class:`~actors.storage.messages.StageSnapshotChunk`).  Once the last chunk is staged it
tells the RaftActor :class:`~actors.raft.messages.InstallSnapshot` with the offer; the
core then takes the snapshot like any SNAP message, and the Ready that carries it
flips the node to the staged state in one synced write.

On the leader, the same actor answers each request with the chunk it names, read
from the snapshot's checkpoint (:class:`~actors.storage.messages.ReadSnapshotChunk`).

Storage is told, never waited on: each request carries ``self.actor_ref.tell`` as
its reply, and the answer comes back as a message of its own.  Storage answers in
the order it was asked, so the answers are matched to the requests by a queue of
each kind.  While a received chunk is being staged, the pull is not stalled (the
wait is on this node's disk, not on the leader) and the same chunk arriving again
is ignored.

The frames ride the peer transport as opaque SNAPSHOT frames (msgpack lists)::

    follower -> leader  ["want", index, seq, after]   chunk ``seq``; ``after`` is the
                                                    last key of chunk seq-1 (None for 0)
    leader -> follower  ["chunk", index, seq, data, after, last]
    leader -> follower  ["gone", index, current]      snapshot ``index`` was replaced

Pulling one chunk at a time is the flow control: a stream never has more than one
chunk (about 1 MiB) queued towards a peer, so it can neither fill the transport's
queue (which would drop Raft messages) nor starve heartbeats.  A request with no
answer within :data:`REQUEST_TIMEOUT_S` is sent again; a chunk answering an older
request is recognised by its ``seq`` and ignored.  After :data:`MAX_RETRIES`
unanswered requests the stream is abandoned; the leader offers again (the core
resends an unacknowledged snapshot after ``snapshot_retry_ticks``) and the pull
starts over, from any leader that has a snapshot.

While a finished snapshot waits for the core to take it, offers are ignored: a new
stream would discard the staged state the pending install needs.  The RaftActor
says :class:`~actors.raft.messages.SnapshotSettled` once the install is durable or the
core refused the offer (its term had passed).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import pykka

from actors.raft.messages import (
    InstallSnapshot,
    SendSnapshotFrame,
    SnapshotFrame,
    SnapshotOffer,
    SnapshotSettled,
    Tick,
)
from actors.runtime.clock import actor_ticker
from actors.storage.messages import (
    ReadSnapshotChunk,
    SnapshotChunkRead,
    SnapshotChunkRejected,
    SnapshotChunkStaged,
    SnapshotUnavailable,
    StageSnapshotChunk,
)
from scheduled_db.raft.messages import Message, SnapshotMeta
from scheduled_db.state.snapshot_codec import SnapshotCursor

if TYPE_CHECKING:
    from actors.raft.actor import RaftActor
    from actors.raft.transport import TransportActor
    from actors.storage.actor import StorageActor

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0
MAX_RETRIES = 5
CHECK_INTERVAL_S = 1.0


class FrameDecodeError(ValueError):
    """A snapshot stream frame that is not one of the three shapes."""


def _want(index: int, seq: int, after: bytes | None) -> bytes:
    return bytes(msgpack.packb(["want", index, seq, after], use_bin_type=True))


def _chunk(index: int, seq: int, data: bytes, after: bytes | None, last: bool) -> bytes:
    return bytes(msgpack.packb(["chunk", index, seq, data, after, last], use_bin_type=True))


def _gone(index: int, current: int) -> bytes:
    return bytes(msgpack.packb(["gone", index, current], use_bin_type=True))


def decode_frame(data: bytes) -> list[Any]:
    """The frame as a list whose first item names its shape; FrameDecodeError if not."""
    try:
        frame = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise FrameDecodeError(f"undecodable snapshot frame: {exc}") from None
    shapes: dict[str, tuple[type | tuple[type, ...], ...]] = {
        "want": (int, int, (bytes, type(None))),
        "chunk": (int, int, bytes, (bytes, type(None)), bool),
        "gone": (int, int),
    }
    if not isinstance(frame, list) or not frame or frame[0] not in shapes:
        raise FrameDecodeError("unknown snapshot frame")
    types = shapes[frame[0]]
    if len(frame) != len(types) + 1 or not all(
        isinstance(v, t) for v, t in zip(frame[1:], types, strict=True)
    ):
        raise FrameDecodeError(f"malformed {frame[0]!r} frame")
    return frame


@dataclass(frozen=True, slots=True)
class _Staging:
    """A received chunk told to storage to stage, and what to do once it is."""

    pull: _Pull
    seq: int
    after: bytes | None
    last: bool
    size: int


@dataclass(frozen=True, slots=True)
class _Serving:
    """A chunk read told to storage, and who wants it."""

    to: str
    index: int
    seq: int


@dataclass(slots=True)
class _Pull:
    """The snapshot this node is receiving: whose offer, and the next chunk wanted."""

    offer: Message
    raft: pykka.ActorRef[RaftActor]  # who to tell when the snapshot is staged
    seq: int = 0
    after: bytes | None = None
    asked_at: float = 0.0
    retries: int = 0
    received_bytes: int = 0
    started_at: float = 0.0
    staging: _Staging | None = None  # the chunk storage is staging now, if any

    @property
    def meta(self) -> SnapshotMeta:
        assert self.offer.snapshot is not None
        return self.offer.snapshot.meta


class SnapshotStreamActor(pykka.ThreadingActor):
    """Sends and receives snapshot streams for one node; see the module docstring."""

    def __init__(
        self,
        node_id: str,
        storage: pykka.ActorRef[StorageActor],
        transport: pykka.ActorRef[TransportActor],
    ) -> None:
        super().__init__()
        self.node_id = node_id
        self.storage = storage
        self.transport = transport
        self._pull: _Pull | None = None
        self._settling: SnapshotMeta | None = None
        # Requests told to storage, oldest first: storage answers in the order it is
        # asked, so each answer belongs to the head of its queue.
        self._staging: deque[_Staging] = deque()
        self._serving: deque[_Serving] = deque()
        self._ticker = actor_ticker(self, CHECK_INTERVAL_S, Tick())
        self.installed = 0  # streams completed and handed to the core
        self.chunks_sent = 0

    def on_start(self) -> None:
        self._ticker.start()

    def on_stop(self) -> None:
        self._ticker.stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SnapshotFrame):
            self._frame(message)
        elif isinstance(message, SnapshotOffer):
            self._offer(message.offer, message.raft)
        elif isinstance(message, SnapshotSettled):
            if self._settling == message.meta:
                self._settling = None
        elif isinstance(message, SnapshotChunkStaged | SnapshotChunkRejected):
            self._staged(message)
        elif isinstance(message, SnapshotChunkRead | SnapshotUnavailable):
            self._chunk_read(message)
        elif isinstance(message, Tick):
            self._check_stalled()
        else:
            log.warning("snapshot: ignoring unexpected %s", type(message).__name__)
        return None

    # -- follower side --

    def _offer(self, offer: Message, raft: pykka.ActorRef[RaftActor]) -> None:
        if offer.snapshot is None or self._settling is not None:
            return
        pull = self._pull
        if pull is not None and pull.offer.frm == offer.frm and pull.meta == offer.snapshot.meta:
            return  # already pulling this one; stalls are the ticker's business
        log.info(
            "snapshot: pulling snapshot %d (term %d) from %s",
            offer.snapshot.meta.index, offer.snapshot.meta.term, offer.frm,
        )  # fmt: skip
        self._pull = _Pull(offer, raft, started_at=time.monotonic())
        self._ask()

    def _ask(self) -> None:
        pull = self._pull
        assert pull is not None
        pull.asked_at = time.monotonic()
        self._send(pull.offer.frm, _want(pull.meta.index, pull.seq, pull.after))

    def _check_stalled(self) -> None:
        pull = self._pull
        if pull is None or pull.staging is not None:
            return  # nothing asked; or the chunk came and our storage is staging it
        if time.monotonic() - pull.asked_at < REQUEST_TIMEOUT_S:
            return
        pull.retries += 1
        if pull.retries > MAX_RETRIES:
            log.warning(
                "snapshot: %s stopped answering; abandoning snapshot %d", pull.offer.frm,
                pull.meta.index,
            )  # fmt: skip
            self._pull = None
            return
        self._ask()

    def _got_chunk(self, frm: str, frame: list[Any]) -> None:
        _, index, seq, data, after, last = frame
        pull = self._pull
        if pull is None or frm != pull.offer.frm or index != pull.meta.index or seq != pull.seq:
            return  # an answer to a request we have given up on, or sent twice
        if pull.staging is not None:
            return  # the same chunk again (a retried request's answer): being staged
        staging = _Staging(pull, seq, after, last, len(data))
        pull.staging = staging
        self._staging.append(staging)
        self.storage.tell(StageSnapshotChunk(data, self.actor_ref.tell))

    def _staged(self, reply: SnapshotChunkStaged | SnapshotChunkRejected) -> None:
        """Storage's answer to the oldest chunk told to it; the pull goes on from there."""
        staging = self._staging.popleft()
        pull = staging.pull
        pull.staging = None
        if pull is not self._pull:
            return  # the pull was abandoned or replaced meanwhile
        frm, index, seq = pull.offer.frm, pull.meta.index, staging.seq
        if isinstance(reply, SnapshotChunkRejected):
            log.warning("snapshot: chunk %d from %s refused: %s", seq, frm, reply.reason)
            self._pull = None
            return
        pull.received_bytes += staging.size
        if not reply.complete:
            if staging.last:  # the sender thinks it is done; the stager does not
                log.warning("snapshot: %s ended snapshot %d early", frm, index)
                self._pull = None
                return
            pull.seq, pull.after, pull.retries = seq + 1, staging.after, 0
            self._ask()
            return
        log.info(
            "snapshot: received snapshot %d from %s: %d chunks, %d bytes in %.2f s",
            index, frm, seq + 1, pull.received_bytes, time.monotonic() - pull.started_at,
        )  # fmt: skip
        self._pull = None
        self._settling = pull.meta
        self.installed += 1
        pull.raft.tell(InstallSnapshot(pull.offer))

    # -- leader side --

    def _serve(self, frm: str, frame: list[Any]) -> None:
        _, index, seq, after = frame
        cursor = None if seq == 0 else SnapshotCursor(seq - 1, after or b"")
        self._serving.append(_Serving(frm, index, seq))
        self.storage.tell(ReadSnapshotChunk(index, cursor, self.actor_ref.tell))

    def _chunk_read(self, reply: SnapshotChunkRead | SnapshotUnavailable) -> None:
        """Storage's answer to the oldest chunk read told to it: send it on."""
        serving = self._serving.popleft()
        to, index, seq = serving.to, serving.index, serving.seq
        if isinstance(reply, SnapshotUnavailable):
            self._send(to, _gone(index, reply.current))
            return
        nxt = reply.next_cursor
        self._send(
            to, _chunk(index, seq, reply.data, None if nxt is None else nxt.after, nxt is None)
        )
        self.chunks_sent += 1

    # -- frames --

    def _frame(self, msg: SnapshotFrame) -> None:
        try:
            frame = decode_frame(msg.data)
        except FrameDecodeError as exc:
            log.warning("snapshot: dropped a frame from %s: %s", msg.frm, exc)
            return
        if frame[0] == "want":
            self._serve(msg.frm, frame)
        elif frame[0] == "chunk":
            self._got_chunk(msg.frm, frame)
        else:
            pull = self._pull
            if pull is not None and msg.frm == pull.offer.frm and frame[1] == pull.meta.index:
                log.info(
                    "snapshot: %s replaced snapshot %d; waiting for a new offer", msg.frm, frame[1]
                )
                self._pull = None

    def _send(self, to: str, data: bytes) -> None:
        try:
            self.transport.tell(SendSnapshotFrame(to, data))
        except pykka.ActorDeadError:
            log.debug("snapshot: the transport is gone")
