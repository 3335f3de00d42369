"""The StorageActor: the one thread that writes the node's RocksDB.

It owns a :class:`~actors.node_store.NodeStore` and serves the messages of the
storage section of :mod:`actors.messages`.  Every request may come by ``tell``
(the answer goes to its ``reply_to``) or by ``ask`` (the answer is also the
future's value; tests use that as a barrier).  The Raft actor reads the log
directly through ``store.log`` (thread-safe); everything else goes through here.

Failure policy: an invalid *command* is a result, never an exception; a bad
snapshot chunk is answered with a rejection.  Corruption that RocksDB reports
while running (a damaged block) stops the actor, and so the node, with one log
line naming the directory.  Anything else (RocksDB I/O errors, host bugs)
raises, which stops this actor and so the node (let it crash).

The watermark (actors/watermark.py) is brought up to the log on a tick of its
own, every ``watermark.TICK_S``, off the synced write path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pykka

from actors import messages as m
from actors import watermark
from actors.clock import actor_ticker
from actors.datadir import DataDirError, is_corruption
from actors.node_store import NodeStore
from actors.snapshots import SnapshotUnavailableError
from scheduled_db import queries
from scheduled_db.queries import InvalidCursorError
from scheduled_db.snapshot_codec import ChunkError

log = logging.getLogger(__name__)


class StorageActor(pykka.ThreadingActor):
    """Persists Readys, applies committed entries, serves reads and snapshots."""

    def __init__(self, store: NodeStore) -> None:
        super().__init__()
        self.store = store
        self._subscribers: list[m.ActorRef] = []
        self._stopping = False
        self._mark_ticker = actor_ticker(self, watermark.TICK_S, m.RecordWatermark())
        self._handlers: dict[type[Any], Callable[[Any], Any]] = {
            m.PersistReady: self._persist_ready,
            m.ApplyEntries: self._apply,
            m.RecordWatermark: lambda _: self.store.record_watermark(),
            m.Subscribe: self._subscribe,
            m.Unsubscribe: self._unsubscribe,
            m.ReadSnapshotChunk: self._read_chunk,
            m.StageSnapshotChunk: self._stage_chunk,
            m.Read: self._read,
        }

    def on_receive(self, message: Any) -> Any:
        if self._stopping:
            return None
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("storage: ignoring unexpected message %r", type(message).__name__)
            return None
        try:
            return handler(message)
        except Exception as exc:
            if not is_corruption(exc):
                raise
            damage = DataDirError(self.store.data_dir, f"RocksDB reports corruption: {exc}")
            log.error("storage: %s: stopping the node", damage)
            self._stopping = True
            self.stop()
            return None

    def on_start(self) -> None:
        self._mark_ticker.start()

    def on_stop(self) -> None:
        self._mark_ticker.stop()
        self.store.close()

    def on_failure(self, *exc_info: object) -> None:
        log.error("storage actor failed; closing %s", self.store.data_dir)
        self.store.close()

    # -- helpers --

    def _tell(self, ref: m.ActorRef | None, msg: object) -> None:
        if ref is None:
            return
        try:
            ref.tell(msg)
        except pykka.ActorDeadError:
            log.info("storage: %s is gone, dropping %s", ref, type(msg).__name__)

    def _publish(self, msg: object) -> None:
        for ref in list(self._subscribers):
            if not ref.is_alive():
                self._subscribers.remove(ref)
                continue
            self._tell(ref, msg)

    # -- Raft --

    def _persist_ready(self, msg: m.PersistReady) -> m.ReadyPersisted:
        self.store.persist_ready(msg.hard_state, msg.entries, msg.snapshot)
        log_store = self.store.log
        reply = m.ReadyPersisted(
            msg.ready_id,
            log_store.hard_state(),
            log_store.last_index(),
            log_store.snapshot_meta().index,
        )
        if msg.snapshot is not None:
            self._publish(m.SnapshotInstalled(msg.snapshot))
        self._tell(msg.reply_to, reply)
        return reply

    def _apply(self, msg: m.ApplyEntries) -> m.Applied:
        out = self.store.apply(msg.entries, msg.conf_state)
        event = m.Applied(out.applied_index, out.applied_term, out.results)
        self._tell(msg.reply_to, event)
        self._publish(event)
        if self.store.should_snapshot():
            meta = self.store.create_snapshot()
            if meta is not None:
                self._tell(msg.reply_to, m.SnapshotTaken(meta, self.store.log.first_index()))
        return event

    def _subscribe(self, msg: m.Subscribe) -> None:
        if msg.subscriber not in self._subscribers:
            self._subscribers.append(msg.subscriber)

    def _unsubscribe(self, msg: m.Unsubscribe) -> None:
        if msg.subscriber in self._subscribers:
            self._subscribers.remove(msg.subscriber)

    # -- snapshots --

    def _read_chunk(self, msg: m.ReadSnapshotChunk) -> object:
        reply: object
        try:
            data, cursor = self.store.read_snapshot_chunk(msg.index, msg.cursor, msg.max_bytes)
            reply = m.SnapshotChunkRead(msg.index, data, cursor)
        except SnapshotUnavailableError as exc:
            reply = m.SnapshotUnavailable(exc.index, exc.current)
        self._tell(msg.reply_to, reply)
        return reply

    def _stage_chunk(self, msg: m.StageSnapshotChunk) -> object:
        reply: object
        try:
            meta, seq, complete = self.store.stage_snapshot_chunk(msg.data)
            reply = m.SnapshotChunkStaged(meta, seq, complete)
        except ChunkError as exc:
            log.warning("storage: rejected a snapshot chunk: %s", exc)
            reply = m.SnapshotChunkRejected(str(exc))
        self._tell(msg.reply_to, reply)
        return reply

    # -- reads --

    def _read(self, msg: m.Read) -> Any:
        if msg.reply_to is None:
            return self._query(msg.query)  # an ask: errors travel back in the future
        try:
            self._tell(msg.reply_to, m.ReadResult(msg.request_id, self._query(msg.query)))
        except InvalidCursorError as exc:
            self._tell(msg.reply_to, m.ReadResult(msg.request_id, None, str(exc)))
        return None

    def _query(self, q: m.Query) -> Any:
        view = self.store.view()
        if isinstance(q, m.GetJob):
            return queries.get_job(view, q.job_id)
        if isinstance(q, m.ListJobs):
            return queries.list_jobs(view, q.status, q.cursor, q.limit)
        if isinstance(q, m.GetExecutions):
            return queries.executions(view, q.job_id, q.limit)
        if isinstance(q, m.DueBefore):
            return queries.due_before(view, q.before_ms, q.limit)
        if isinstance(q, m.DueOccurrences):
            return queries.due_occurrences(view, q.before_ms, q.limit)
        if isinstance(q, m.GetCounters):
            return queries.counters(view)
        if isinstance(q, m.GetOpenClaims):
            return queries.open_claims(view, q.limit)
        if isinstance(q, m.GetMembers):
            return queries.members(view)
        if isinstance(q, m.GetApplied):
            return self.store.applied()
        if isinstance(q, m.GetDigest):
            return self.store.digest()
        raise TypeError(f"unknown query {q!r}")
