"""The StorageActor: the one thread that writes the node's RocksDB.

It owns a :class:`~actors.storage.store.NodeStore` and serves the messages of the
messages of :mod:`actors.storage.messages`.  A request that is answered carries a
``reply`` (:data:`~actors.runtime.replies.Reply`); handlers return nothing.  The
Raft actor reads the log directly through ``store.log`` (thread-safe); everything
else goes through here.

Failure policy: an invalid *command* is a result, never an exception; a bad
snapshot chunk is answered with a rejection.  Two failures of the disk are
handled here:

* **No space.**  The write that failed, and every write after it, is held in
  order (nothing is lost: none of them was answered); :class:`~actors.storage.messages.DiskFull`
  goes to the subscribers (the Raft actor then refuses new proposals); reads go
  on from the state as it was.  Every ``retry_s`` the actor looks for space;
  once there is some, it reopens RocksDB (which refuses writes after a failed
  one) and does the held writes; then ``DiskFull(False)``.  A Ready's
  ``ReadyPersisted`` goes out only once it is durable, so the Raft actor sends
  nothing of it before (a follower stops acknowledging, and catches up after).
* **Corruption** that RocksDB reports while running (a damaged block): one log
  line naming the directory, and the actor stops, so the node does.

The watermark (actors/storage/watermark.py) is brought up to the log on a tick of its
own, every ``watermark.TICK_S``, off the synced write path.

Anything else (other I/O errors, host bugs) raises, which stops this actor and
so the node (let it crash).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pykka

from actors.runtime.clock import Ticker, actor_ticker
from actors.runtime.replies import ActorRef, Reply, answer
from actors.storage import watermark
from actors.storage.datadir import DataDirError, is_corruption, is_disk_full
from actors.storage.messages import (
    Applied,
    ApplyEntries,
    BackupCheckpoint,
    Bootstrap,
    Bootstrapped,
    DiskFull,
    PersistReady,
    Read,
    ReadMany,
    ReadResult,
    ReadSnapshotChunk,
    ReadyPersisted,
    RecordWatermark,
    RetryWrites,
    SnapshotChunkRead,
    SnapshotChunkRejected,
    SnapshotChunkStaged,
    SnapshotInstalled,
    SnapshotTaken,
    SnapshotUnavailable,
    StageSnapshotChunk,
    Subscribe,
    TakeBackupCheckpoint,
    Unsubscribe,
)
from actors.storage.snapshots import SnapshotUnavailableError
from actors.storage.store import NodeStore
from scheduled_db.state import reads
from scheduled_db.state.queries import InvalidCursorError
from scheduled_db.state.reads import Query
from scheduled_db.state.snapshot_codec import ChunkError

log = logging.getLogger(__name__)

RETRY_S = 0.2  # how often storage with a full disk looks for space again
MAX_BACKOFF_TICKS = 25  # failed attempts back off up to 5 s between tries

Write = PersistReady | ApplyEntries | Bootstrap


class StorageActor(pykka.ThreadingActor):
    """Persists Readys, applies committed entries, serves reads and snapshots."""

    def __init__(self, store: NodeStore, retry_s: float = RETRY_S) -> None:
        super().__init__()
        self.store = store
        self._subscribers: list[ActorRef] = []
        self._full = False  # a write found no space: writes are held until it is back
        self._held: list[Write] = []
        self._retry: Ticker | None = None
        self._retry_s = retry_s
        self._backoff = self._skip = 0  # ticks to skip after a failed attempt
        self._stopping = False
        self._mark_ticker = actor_ticker(self, watermark.TICK_S, RecordWatermark())
        self._writes: dict[type[Any], Callable[[Any], Any]] = {
            PersistReady: self._persist_ready,
            ApplyEntries: self._apply,
            Bootstrap: self._bootstrap,
        }
        self._handlers: dict[type[Any], Callable[[Any], Any]] = {
            PersistReady: self._write,
            ApplyEntries: self._write,
            Bootstrap: self._write,
            RetryWrites: self._retry_writes,
            RecordWatermark: self._record_watermark,
            Subscribe: self._subscribe,
            Unsubscribe: self._unsubscribe,
            ReadSnapshotChunk: self._read_chunk,
            StageSnapshotChunk: self._stage_chunk,
            Read: self._read,
            ReadMany: self._read_many,
            TakeBackupCheckpoint: self._backup_checkpoint,
        }

    def on_receive(self, message: Any) -> None:
        if self._stopping:
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("storage: ignoring unexpected message %r", type(message).__name__)
            return
        try:
            handler(message)
        except Exception as exc:
            if not is_corruption(exc):
                raise
            damage = DataDirError(self.store.data_dir, f"RocksDB reports corruption: {exc}")
            log.error("storage: %s: stopping the node", damage)
            self._stopping = True
            self.stop()

    def on_start(self) -> None:
        self._mark_ticker.start()

    def on_stop(self) -> None:
        self._mark_ticker.stop()
        if self._retry is not None:
            self._retry.stop()
        if self._held:
            log.warning("storage: stopping with %d writes held for lack of space", len(self._held))
        self.store.close()

    def on_failure(self, *exc_info: object) -> None:
        log.error("storage actor failed; closing %s", self.store.data_dir)
        self.store.close()

    # -- helpers --

    def _answer(self, reply: Reply | None, msg: object) -> None:
        if reply is not None:
            answer(reply, msg)

    def _publish(self, msg: object) -> None:
        for ref in list(self._subscribers):
            if not ref.is_alive():
                self._subscribers.remove(ref)
                continue
            try:
                ref.tell(msg)
            except pykka.ActorDeadError:
                log.info("storage: %s is gone, dropping %s", ref, type(msg).__name__)

    # -- writes, and a full disk --

    def _write(self, msg: Write) -> None:
        """Do a write now, or hold it (after those held already) while the disk is full."""
        if self._full:
            self._held.append(msg)
            return
        try:
            self._writes[type(msg)](msg)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._held.append(msg)
            self._stall(exc)

    def _stall(self, exc: Exception) -> None:
        if self._full:
            return
        self._full = True
        log.warning(
            "storage: the disk of %s is full: writes are held until space is freed (%s)",
            self.store.data_dir,
            " ".join(str(exc).split()),
        )
        self._publish(DiskFull(True))
        self._retry = actor_ticker(self, self._retry_s, RetryWrites())
        self._retry.start()

    def _retry_writes(self, _: RetryWrites) -> None:
        if not self._full or not self._due() or not self.store.has_room():
            return
        if not self.store.reopen():
            self._failed_attempt()
            return
        while self._held:
            try:
                self._writes[type(self._held[0])](self._held[0])
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                self._failed_attempt()
                return
            self._held.pop(0)
        self._full, self._backoff = False, 0
        if self._retry is not None:
            self._retry.stop()
            self._retry = None
        log.info("storage: space is back on %s: writes resumed", self.store.data_dir)
        self._publish(DiskFull(False))

    def _due(self) -> bool:
        if self._skip > 0:
            self._skip -= 1
            return False
        return True

    def _failed_attempt(self) -> None:
        self._backoff = min(MAX_BACKOFF_TICKS, 2 * self._backoff + 1)
        self._skip = self._backoff

    def _record_watermark(self, _: RecordWatermark) -> None:
        if not self._full:  # nothing moves while the disk is full
            self.store.record_watermark()

    # -- Raft --

    def _bootstrap(self, msg: Bootstrap) -> None:
        """A node that formed its cluster after it started (members listed by address)."""
        if self.store.has_raft_state():
            self._answer(msg.reply, Bootstrapped(None))
            return
        self._answer(msg.reply, Bootstrapped(self.store.bootstrap(msg.voters)))

    def _persist_ready(self, msg: PersistReady) -> None:
        self.store.persist_ready(msg.hard_state, msg.entries, msg.snapshot)
        log_store = self.store.log
        reply = ReadyPersisted(
            msg.ready_id,
            log_store.hard_state(),
            log_store.last_index(),
            log_store.snapshot_meta().index,
        )
        if msg.snapshot is not None:
            self._publish(SnapshotInstalled(msg.snapshot))
        self._answer(msg.reply, reply)

    def _apply(self, msg: ApplyEntries) -> None:
        out = self.store.apply(msg.entries, msg.conf_state)
        event = Applied(out.applied_index, out.applied_term, out.results)
        self._answer(msg.reply, event)
        self._publish(event)
        if self.store.should_snapshot():
            self._snapshot(msg.reply)
        else:
            self.store.flush_ahead_of_snapshot()

    def _snapshot(self, reply: Reply | None) -> None:
        try:
            meta = self.store.create_snapshot()
        except Exception as exc:  # the apply is done; the snapshot waits for space
            if not is_disk_full(exc):
                raise
            self._stall(exc)
            return
        if meta is not None:
            self._answer(reply, SnapshotTaken(meta, self.store.log.first_index()))

    def _subscribe(self, msg: Subscribe) -> None:
        if msg.subscriber not in self._subscribers:
            self._subscribers.append(msg.subscriber)

    def _unsubscribe(self, msg: Unsubscribe) -> None:
        if msg.subscriber in self._subscribers:
            self._subscribers.remove(msg.subscriber)

    # -- snapshots --

    def _read_chunk(self, msg: ReadSnapshotChunk) -> None:
        reply: object
        try:
            data, cursor = self.store.read_snapshot_chunk(msg.index, msg.cursor, msg.max_bytes)
            reply = SnapshotChunkRead(msg.index, data, cursor)
        except SnapshotUnavailableError as exc:
            reply = SnapshotUnavailable(exc.index, exc.current)
        self._answer(msg.reply, reply)

    def _stage_chunk(self, msg: StageSnapshotChunk) -> None:
        reply: object
        try:
            if self._full:
                raise ChunkError("the disk is full")
            meta, seq, complete = self.store.stage_snapshot_chunk(msg.data)
            reply = SnapshotChunkStaged(meta, seq, complete)
        except ChunkError as exc:
            log.warning("storage: rejected a snapshot chunk: %s", exc)
            reply = SnapshotChunkRejected(str(exc))
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._stall(exc)
            reply = SnapshotChunkRejected("the disk is full")
        self._answer(msg.reply, reply)

    # -- reads --

    def _backup_checkpoint(self, msg: TakeBackupCheckpoint) -> None:
        try:
            path, state_cf = self.store.checkpoint_for_backup()
        except Exception as exc:
            if not (is_disk_full(exc) or isinstance(exc, OSError)):
                raise
            log.warning("storage: no checkpoint for a backup: %s", exc)
            self._answer(msg.reply, BackupCheckpoint(None, "", "no room on the node's disk"))
            return
        self._answer(msg.reply, BackupCheckpoint(path, state_cf))

    def _read(self, msg: Read) -> None:
        self._answer(msg.reply, self._result(msg.request_id, msg.query))

    def _read_many(self, msg: ReadMany) -> None:
        self._answer(msg.reply, tuple(self._result(i, q) for i, q in enumerate(msg.queries)))

    def _result(self, request_id: int, query: Query) -> ReadResult:
        try:
            return ReadResult(request_id, self._query(query))
        except InvalidCursorError as exc:
            return ReadResult(request_id, None, str(exc))

    def _query(self, q: Query) -> Any:
        return reads.answer(self.store.view(), q)
