"""Everything one node keeps durable, behind one object owned by the StorageActor.

Contract (what is durable when):

* :meth:`NodeStore.persist_ready` writes a Ready's snapshot flip, hard state and
  entries as ONE synced WriteBatch; when it returns they survive power loss.
* :meth:`NodeStore.apply` writes the state produced by committed entries with
  the applied index, membership and counters as ONE WriteBatch.  It is not
  synced by default: the entries are already durable in the synced log, RocksDB
  recovers a prefix of its write-ahead log, and replaying entries at or below the
  applied index is a no-op, so a lost apply batch is simply re-applied.
* :meth:`NodeStore.create_snapshot` checkpoints the state, then records the
  snapshot and compacts the log in one synced batch.
* The watermark (:mod:`actors.storage.watermark`) follows the log: at once after a
  Ready that changed the term or vote, else when the owner calls
  :meth:`NodeStore.record_watermark`.  On open, a log that lost what it
  records raises :class:`DataDirError`.

A write that fails for lack of space changes nothing in memory (memory is
updated only once a batch is durable), but RocksDB then refuses every write:
:meth:`NodeStore.reopen` once space is back, then repeat the write.

Only the owner's thread calls these; :attr:`NodeStore.log` (the Raft
``Storage``) may be read from any thread.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rocksdict import Rdict

from actors.storage import watermark
from actors.storage.datadir import (
    BACKUP_DIR,
    DB_DIR,
    FORMAT_VERSION,
    META_KEY,
    RAFT_CF,
    SNAPSHOT_DIR,
    STATE_POINTER,
    DataDirError,
    DirMeta,
    RocksStateView,
    checkpoint,
    drop_state_cfs,
    encode_meta,
    flush_all,
    is_disk_full,
    new_batch,
    next_state_name,
    open_data_dir,
    open_rocks,
    rocks_options,
    room_to_reopen,
    synced,
    unsynced,
    write_durably,
)
from actors.storage.proposed import Proposed
from actors.storage.raft_log_store import RaftLogStore, SnapshotRecord, load_log
from actors.storage.snapshots import (
    CheckpointReader,
    SnapshotFiles,
    SnapshotStager,
    SnapshotUnavailableError,
)
from scheduled_db.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    SnapshotMeta,
)
from scheduled_db.raft.storage import bootstrap_snapshot
from scheduled_db.state import fsm, queries
from scheduled_db.state.records import RecordError
from scheduled_db.state.snapshot_codec import ChunkError, SnapshotCursor, decode_chunk
from scheduled_db.state.stateview import state_digest
from scheduled_db.state.txn import JobMemo, Txn

log = logging.getLogger(__name__)

# How far towards a snapshot (entries or bytes) the memtables start flushing ahead of
# it, in RocksDB's threads (NodeStore.flush_ahead_of_snapshot): by the time it is due,
# its checkpoint has about a tenth of them left to flush on the storage thread.
FLUSH_AHEAD_AT = 0.9


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Snapshot policy and durability knobs."""

    snapshot_entries: int = 10_000  # snapshot once this many entries applied since the last
    snapshot_bytes: int = 64 << 20  # ... or once the log since the last holds this many bytes
    keep_entries: int = 1_000  # entries kept below a snapshot so slow followers catch up by log
    keep_bytes: int = 8 << 20  # ... but no more bytes than this (the tail lives in memory)
    chunk_bytes: int = 1 << 20  # target size of a snapshot chunk
    sync_apply: bool = False  # see the module doc: safe off, and fsync is the expensive part
    watermark_sync_s: float = watermark.SYNC_INTERVAL_S  # see actors/storage/watermark.py


class SnapshotNotStagedError(RuntimeError):
    """A Ready carried a snapshot that was not fully received first (a host bug)."""


class NodeStore:
    """The Raft log store plus the job state of one node (see the module doc)."""

    def __init__(
        self, data_dir: Path, db: Rdict, options: StoreOptions, meta: DirMeta | None = None
    ) -> None:
        self.data_dir = data_dir
        self.options = options
        self.cluster_id = None if meta is None else meta.cluster_id
        self._node_id = None if meta is None else meta.node_id
        self._closed = False
        self.synced_writes = 0  # synced write batches of persist_ready (tests, benchmarks)
        # Commands this node's API proposed, applied without decoding their entries.
        self.proposed = Proposed()
        # The jobs recent applies wrote, read again by later ones without decoding.
        self.memo = JobMemo()
        self._log_bytes = (-1, 0, 0)  # (snapshot index, applied index, log bytes between)
        self._flushed_ahead = -1  # the snapshot index after which a flush was started
        self._adopt(db, self._read_pointer(db))
        drop_state_cfs(db, keep=(self._state_name,))
        hs, rec, ents = load_log(db.get_column_family(RAFT_CF))
        self._snap_rec = rec
        view = self.view()
        self.log = RaftLogStore(hs, queries.conf_state(view), _meta(rec), ents)
        applied = fsm.applied_position(view)[0]
        if not ents[0].index <= applied <= self.log.last_index():
            raise DataDirError(data_dir, f"applied index {applied} is outside the log")
        self._mark = watermark.open_checked(data_dir, db, self.log, options.watermark_sync_s)
        self._files = SnapshotFiles(data_dir / SNAPSHOT_DIR)
        self._files.remove_all_but(rec)
        shutil.rmtree(data_dir / BACKUP_DIR, ignore_errors=True)  # left by a stop mid-backup
        self._reader: CheckpointReader | None = None
        self._stager: SnapshotStager | None = None
        if rec is not None and not self._files.exists(rec):
            self.create_snapshot(force=True)  # its checkpoint was lost: take a newer one

    @classmethod
    def open(
        cls,
        data_dir: Path | str,
        node_id: str,
        cluster_id: str | None = None,
        options: StoreOptions | None = None,
    ) -> NodeStore:
        """Open or initialise; raise :class:`DataDirError` if damaged or foreign."""
        path = Path(data_dir)
        db, meta = open_data_dir(path, node_id, cluster_id)
        try:
            return cls(path, db, options or StoreOptions(), meta)
        except DataDirError:
            db.close()
            raise
        except (RecordError, ValueError, TypeError, KeyError) as exc:
            db.close()
            raise DataDirError(path, f"damaged state: {exc}") from None

    # -- state --

    def _read_pointer(self, db: Rdict) -> str:
        raw = db.get(STATE_POINTER)
        names = Rdict.list_cf(db.path(), rocks_options())
        if raw is None or raw.decode() not in names:
            raise DataDirError(self.data_dir, "the state column family is missing")
        return str(raw.decode())

    def _use_state(self, name: str) -> None:
        # rocksdict's get_column_family costs milliseconds after writes to that family
        # (2 us before); every apply and read takes a view, so the handle is kept.
        self._state_name = name
        self._state_cf = self._db.get_column_family(name)

    def view(self) -> RocksStateView:
        """A view of the live state (valid until the next snapshot install)."""
        return RocksStateView(self._state_cf)

    def applied(self) -> tuple[int, int]:
        return fsm.applied_position(self.view())

    def digest(self) -> str:
        return state_digest(self.view())

    # -- Raft side --

    def persist_ready(
        self,
        hard_state: HardState | None,
        entries: Iterable[Entry],
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        """Make a Ready durable: snapshot flip, hard state, entries; one batch.

        The batch is synced unless all it carries is a new commit index (no entries,
        no snapshot, the same term and vote): the commit index is volatile state in
        Raft (a restarted node learns it again from the leader), and RocksDB's one
        write-ahead log keeps writes in order, so the applied state, written after
        this, can never be durable while this is not.  That takes the third fsync
        (leader commit) off the path of every write acknowledged to a client.
        """
        ents = list(entries)
        sync = bool(ents) or snapshot is not None or _votes(hard_state, self.log.hard_state())
        wb = new_batch()
        rec = None
        if snapshot is not None:
            rec = self._stage_install(wb, snapshot)
            bounds = (snapshot.index + 1, snapshot.index)
            appended = self.log.stage_append(wb, self._raft_h, ents, bounds)
        else:
            appended = self.log.stage_append(wb, self._raft_h, ents)
        if hard_state is not None:
            self.log.stage_hard_state(wb, self._raft_h, hard_state)
        if snapshot is not None:
            self._mark.lower_to(snapshot.index)
        elif appended and appended[0].index <= self.log.last_index():
            self._mark.lower_to(appended[0].index - 1)  # a new leader rewrites the tail
        if sync:
            write_durably(self._db, wb)
            self.synced_writes += 1
        else:
            self._db.write(wb, unsynced())
        if rec is not None:
            self._finish_install(rec)
        if hard_state is not None:
            self.log.commit_hard_state(hard_state)
        self.log.commit_append(appended)
        self._mark.follow_election(self.log)

    def record_watermark(self) -> None:
        """Bring the watermark up to the durable log (the owner's periodic call)."""
        self._mark.follow(self.log)

    def apply(
        self, entries: Iterable[Entry], conf_state: ConfState | None = None
    ) -> fsm.ApplyOutcome:
        """Apply committed entries (see :func:`scheduled_db.state.fsm.apply_entries`)."""
        out = fsm.apply_entries(self.view(), list(entries), conf_state, self.proposed, self.memo)
        if out.writes:
            handle = self._db.get_column_family_handle(self._state_name)
            wb = new_batch()
            for k, v in out.writes:
                if v is None:
                    wb.delete(k, handle)
                else:
                    wb.put(k, v, handle)
            self._db.write(wb, synced() if self.options.sync_apply else unsynced())
        if conf_state is not None:
            self.log.commit_conf_state(conf_state)
        return out

    def has_raft_state(self) -> bool:
        """Whether this node has ever been part of a cluster (bootstrapped, or given
        a log or a term by a leader): then it must never bootstrap."""
        return self.log.last_index() > 0 or self.log.hard_state() != HardState()

    def bootstrap(self, voters: tuple[str, ...]) -> SnapshotMeta:
        """Start as an initial member of a new cluster (as ``MemoryStorage.bootstrap``).

        One synced batch records the bootstrap snapshot, its hard state, and the
        state it stands for (applied index 1, the membership), so every initial
        member starts from the same digest; the checkpoint follows (a crash
        before it is healed on open).  The initial members' addresses are not
        recorded in the state: each node has them from its config, and may know
        them differently (behind a proxy, say) without the digests differing.
        """
        if self.has_raft_state():
            raise ValueError("storage already holds state: refusing to bootstrap twice")
        meta = bootstrap_snapshot(voters).meta
        rec = SnapshotRecord(meta, self._state_name)
        hs = HardState(meta.term, "", meta.index)
        wb = new_batch()
        handle = self._db.get_column_family_handle(self._state_name)
        for k, v in Txn(self.view()).finish(meta.index, meta.term, meta.conf_state):
            wb.put(k, v, handle)
        self.log.stage_reset(wb, self._raft_h, rec)
        self.log.stage_hard_state(wb, self._raft_h, hs)
        self._db.write(wb, synced())
        self.log.commit_reset(meta)
        self.log.commit_hard_state(hs)
        self._mark.follow(self.log)
        self._snap_rec = rec
        self._files.create(self._db, rec)
        return meta

    # -- a new cluster from old state (scheduled-db restore, recover) --

    def seed(
        self, chunks: Iterable[bytes], voters: tuple[str, ...], cluster_id: str
    ) -> SnapshotMeta:
        """Start as an initial member of a new cluster holding a backup's state.

        The snapshot is received as a follower receives one, then restarted as the
        new cluster's (:meth:`_restart_as`).  Only on a directory that was never
        part of a cluster.
        """
        if self.has_raft_state():
            raise ValueError("storage already holds state: refusing to seed it")
        self.install_snapshot(chunks)
        return self._restart_as(voters, cluster_id)

    def force_new_cluster(self, cluster_id: str) -> SnapshotMeta:
        """Make this node the one member of a new cluster, keeping all it holds.

        Every entry in its log is applied, committed or not: a write the lost
        majority acknowledged may be among them, and none of them can be told
        apart from one that was.  (A write acknowledged by the others that never
        reached this node is lost: nothing here can bring it back.)
        """
        node_id = self._node_id
        if node_id is None:
            raise ValueError("the store was opened without its metadata")
        sole = ConfState((node_id,))
        applied, last = self.applied()[0], self.log.last_index()
        if last > applied:
            self.apply(self.log.entries(applied + 1, last + 1), sole)
        return self._restart_as((node_id,), cluster_id)

    def _restart_as(self, voters: tuple[str, ...], cluster_id: str) -> SnapshotMeta:
        """One synced batch: the applied state's membership becomes ``voters`` (the
        addresses of old members forgotten: a new cluster's initial members come
        from the configuration, as at bootstrap), the Raft log restarts from a
        snapshot of it, the hard state keeps the term but no vote, and the
        directory's cluster id becomes ``cluster_id``, so that no node of the
        old cluster is taken for a peer (see :func:`actors.raft.wire.cluster_key`)."""
        node_id = self._node_id
        assert node_id is not None, "opened without metadata"
        index, term = self.applied()
        conf = ConfState(tuple(sorted(voters)))
        tx = Txn(self.view())
        for member in queries.members(self.view()):
            tx.record_member(ConfChange(ConfChangeType.REMOVE, member))
        meta = SnapshotMeta(index, term, conf)
        rec = SnapshotRecord(meta, self._state_name)
        hs = HardState(max(term, self.log.hard_state().term), "", index)
        wb = new_batch()
        handle = self._db.get_column_family_handle(self._state_name)
        for k, v in tx.finish(index, term, conf):
            if v is None:
                wb.delete(k, handle)
            else:
                wb.put(k, v, handle)
        self.log.stage_reset(wb, self._raft_h, rec)
        self.log.stage_hard_state(wb, self._raft_h, hs)
        wb.put(META_KEY, encode_meta(DirMeta(FORMAT_VERSION, node_id, cluster_id)))
        self._mark.lower_to(index)
        self._db.write(wb, synced())
        self.log.commit_reset(meta)
        self.log.commit_hard_state(hs)
        self._mark.follow(self.log)
        self.cluster_id = cluster_id
        self._snap_rec = rec
        self._files.create(self._db, rec)
        self._files.remove_all_but(rec)
        return meta

    def checkpoint_for_backup(self) -> tuple[Path, str]:
        """A RocksDB checkpoint (hard links) of the database as it is now, under
        ``<data_dir>/backups/``, and the name of its state column family: a
        consistent state at the applied index, read by
        :class:`actors.storage.backup.BackupSource` off this thread."""
        root = self.data_dir / BACKUP_DIR
        root.mkdir(exist_ok=True)
        path = root / secrets.token_hex(8)
        checkpoint(self._db, path)
        return path, self._state_name

    # -- snapshots --

    def should_snapshot(self) -> bool:
        return self._snapshot_progress() >= 1.0

    def flush_ahead_of_snapshot(self) -> bool:
        """Start flushing the memtables (in RocksDB's threads) once a snapshot is
        near (:data:`FLUSH_AHEAD_AT` of the way), once per snapshot: its checkpoint
        must flush them first (:func:`~actors.storage.datadir.checkpoint`), and this
        thread waits for that flush, with every write behind it.  Whether it started."""
        snap = self.log.snapshot_meta().index
        if self._flushed_ahead == snap or self._snapshot_progress() < FLUSH_AHEAD_AT:
            return False
        self._flushed_ahead = snap
        try:
            flush_all(self._db, wait=False)
        except Exception as exc:  # only a head start: the checkpoint flushes anyway
            log.warning("storage: could not start flushing ahead of a snapshot: %s", exc)
            return False
        return True

    def _snapshot_progress(self) -> float:
        """How far the applied log is towards the next snapshot (1.0: due)."""
        applied, snap = self.applied()[0], self.log.snapshot_meta().index
        if applied <= snap or applied > self.log.last_index():
            return 0.0
        entries = (applied - snap) / self.options.snapshot_entries
        if entries >= 1.0:
            return entries
        return max(entries, self._applied_log_bytes(snap, applied) / self.options.snapshot_bytes)

    def _applied_log_bytes(self, snap: int, applied: int) -> int:
        """The log's bytes in (snap, applied], counted on from the last call: applied
        entries never change, and only a new snapshot (a new ``snap``) drops them.
        Summed afresh after every apply, it cost O(entries since the snapshot) each
        time: up to 10,000 entries, about 1.5 ms an apply just before a snapshot."""
        was_snap, upto, total = self._log_bytes
        if was_snap != snap or upto > applied:
            upto, total = snap, 0
        total += self.log.bytes_between(upto + 1, applied)
        self._log_bytes = (snap, applied, total)
        return total

    def create_snapshot(self, force: bool = False) -> SnapshotMeta | None:
        """Snapshot the state at the applied index and compact the log below it."""
        index, term = self.applied()
        current = self.log.snapshot_meta().index
        if index == 0 or index > self.log.last_index() or (index <= current and not force):
            return None
        meta = SnapshotMeta(index, term, queries.conf_state(self.view()))
        rec = SnapshotRecord(meta, self._state_name)
        self._close_reader()
        self._files.create(self._db, rec)
        keep = self.log.retained_from(index, self.options.keep_entries, self.options.keep_bytes)
        compact_to = max(self.log.first_index() - 1, keep - 1)
        wb = new_batch()
        self.log.stage_snapshot(wb, self._raft_h, rec, compact_to)
        self._db.write(wb, synced())
        self.log.commit_snapshot(meta, compact_to)
        self._snap_rec = rec
        self._files.remove_all_but(rec)
        return meta

    def read_snapshot_chunk(
        self, index: int, cursor: SnapshotCursor | None, max_bytes: int | None = None
    ) -> tuple[bytes, SnapshotCursor | None]:
        """One chunk of snapshot ``index`` and the cursor of the next (None: done)."""
        rec = self._snap_rec
        if rec is None or rec.meta.index != index:
            raise SnapshotUnavailableError(index, 0 if rec is None else rec.meta.index)
        if self._reader is None:
            self._reader = CheckpointReader(self._files.path(rec), rec)
        return self._reader.read_chunk(cursor, max_bytes or self.options.chunk_bytes)

    def snapshot_chunks(self, max_bytes: int | None = None) -> Iterator[bytes]:
        """The current snapshot as chunks (for tests and in-thread streaming)."""
        index = self.log.snapshot_meta().index
        cursor: SnapshotCursor | None = None
        while True:
            data, cursor = self.read_snapshot_chunk(index, cursor, max_bytes)
            yield data
            if cursor is None:
                return

    def stage_snapshot_chunk(self, data: bytes) -> tuple[SnapshotMeta, int, bool]:
        """Receive one chunk: ``(meta, seq, complete)``; complete once whole and checkpointed.

        Raises :class:`ChunkError` (and forgets the partial stream) on a bad chunk.
        """
        chunk = decode_chunk(data)
        if chunk.seq == 0:
            self._discard_staging()
            name = next_state_name(self._db)
            self._db.create_column_family(name, rocks_options(True))
            self._stager = SnapshotStager(self._db, name, chunk.meta)
        if self._stager is None:
            raise ChunkError(f"chunk {chunk.seq} of a stream that was never started")
        try:
            complete = self._stager.add(chunk)
            if complete:
                self._files.create(self._db, SnapshotRecord(chunk.meta, self._stager.cf_name))
        except ChunkError:
            self._discard_staging()
            raise
        return chunk.meta, chunk.seq, complete

    def install_snapshot(self, chunks: Iterable[bytes]) -> SnapshotMeta:
        """Receive a whole stream and install it (stage, then persist_ready)."""
        meta, complete = None, False
        for data in chunks:
            meta, _, complete = self.stage_snapshot_chunk(data)
        if meta is None or not complete:
            raise ChunkError("the snapshot stream ended before its last chunk")
        self.persist_ready(None, [], meta)
        return meta

    def _stage_install(self, wb: Any, meta: SnapshotMeta) -> SnapshotRecord:
        st = self._stager
        if st is None or not st.complete or st.meta != meta:
            raise SnapshotNotStagedError(f"snapshot {meta.index} was not received first")
        rec = SnapshotRecord(meta, st.cf_name)
        wb.put(STATE_POINTER, st.cf_name.encode())
        self.log.stage_reset(wb, self._raft_h, rec)
        return rec

    def _finish_install(self, rec: SnapshotRecord) -> None:
        old = self._state_name
        del self._state_cf  # no handle on the old family may outlive its drop
        self._use_state(rec.state_cf)
        self._stager = None
        self._close_reader()
        try:
            self._db.drop_column_family(old)
        except Exception as exc:  # the install is durable; the next open drops it
            if not is_disk_full(exc):
                raise
        self._snap_rec = rec
        self.log.commit_reset(rec.meta)
        self._files.remove_all_but(rec)

    def _discard_staging(self) -> None:
        if self._stager is not None:
            name, self._stager = self._stager.cf_name, None
            self._db.drop_column_family(name)
            self._files.remove_all_but(self._snap_rec)  # a checkpoint of the staged state

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- a full disk --

    def has_room(self) -> bool:
        """Whether there is room to reopen RocksDB (see :func:`room_to_reopen`)."""
        return room_to_reopen(self.data_dir)

    def reopen(self) -> bool:
        """Reopen RocksDB after a write failed for lack of space (it refuses every
        write until then).  Memory is kept: it holds only what was made durable.

        False if RocksDB cannot be opened for writing yet: reads then go to a
        read-only instance until a later call succeeds.  Raises DataDirError if
        it cannot be opened at all.
        """
        self._close_reader()
        stager, self._stager = self._stager, None
        self._release_db()
        try:
            self._adopt(open_rocks(self.data_dir / DB_DIR), self._state_name)
        except DataDirError as exc:
            log.info("%s cannot be reopened for writing yet: %s", self.data_dir, exc)
            self._adopt(open_rocks(self.data_dir / DB_DIR, read_only=True), self._state_name)
            return False
        if self._read_pointer(self._db) != self._state_name:  # a failed install reached the disk
            raise DataDirError(self.data_dir, "the live state changed under a failed write")
        if stager is not None and stager.complete:  # received whole: the install may follow
            stager.db, self._stager = self._db, stager
        staged = () if self._stager is None else (self._stager.cf_name,)
        drop_state_cfs(self._db, keep=(self._state_name, *staged))
        return True

    def _adopt(self, db: Rdict, state_name: str) -> None:
        self._db = db
        self._raft_h = db.get_column_family_handle(RAFT_CF)
        self._use_state(state_name)

    def _release_db(self) -> None:
        del self._raft_h
        del self._state_cf
        try:
            self._db.close()
        except Exception as exc:  # a RocksDB that failed a write reports it again here
            log.info("closing %s after a failed write: %s", self.data_dir, exc)

    def close(self) -> None:
        """Flush and release RocksDB (every column family handle goes first)."""
        if self._closed:
            return
        self._closed = True
        self._close_reader()
        self._stager = None
        try:
            flush_all(self._db)  # so a restart replays no write-ahead log
            self._mark.write(self._mark.mark, sync=True)
        except Exception as exc:  # RocksDB refuses writes (a full disk): it is replayed
            log.warning("%s not flushed at close: %s", self.data_dir, exc)
        self._mark.close()
        self._release_db()


def _meta(rec: SnapshotRecord | None) -> SnapshotMeta:
    return SnapshotMeta() if rec is None else rec.meta


def _votes(new: HardState | None, durable: HardState) -> bool:
    """Whether ``new`` changes what must survive a crash: the term or the vote."""
    return new is not None and (new.term, new.vote) != (durable.term, durable.vote)
