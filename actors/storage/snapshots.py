"""Snapshot files: checkpoints to stream from, and a stager to receive into.

A local snapshot is a RocksDB checkpoint (hard links, cheap) of the database
taken at the applied index; its state column family is streamed in chunks from
a read-only handle, so streaming never blocks or races the live state.

A snapshot received from the leader is written into a *fresh* state column
family (the :class:`SnapshotStager`).  The live state is untouched until the
owner flips the ``state_cf`` pointer in the same synced WriteBatch that resets
the Raft log: a crash before the flip leaves the old state (the half-received
column family is dropped on the next open), a crash after it leaves the new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rocksdict import Rdict

from actors.storage.datadir import (
    RocksStateView,
    checkpoint,
    fsync_dir,
    new_batch,
    open_rocks,
    raw_items,
    unsynced,
)
from actors.storage.raft_log_store import SnapshotRecord
from scheduled_db.raft.messages import SnapshotMeta
from scheduled_db.state.fsm import applied_position
from scheduled_db.state.snapshot_codec import (
    ChunkError,
    SnapshotChunk,
    SnapshotCursor,
    encode_chunk,
)


class SnapshotUnavailableError(LookupError):
    """The snapshot asked for is not (or no longer) the node's current one."""

    def __init__(self, index: int, current: int) -> None:
        self.index, self.current = index, current
        super().__init__(f"snapshot {index} is not available (current: {current})")


class SnapshotFiles:
    """The checkpoint directories under ``<data_dir>/snapshots``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)

    def path(self, rec: SnapshotRecord) -> Path:
        return self.root / f"{rec.meta.index:020d}-{rec.meta.term}-{rec.state_cf}"

    def exists(self, rec: SnapshotRecord) -> bool:
        return self.path(rec).is_dir()

    def create(self, db: Rdict, rec: SnapshotRecord) -> None:
        target = self.path(rec)
        if target.exists():  # left by a crash before the snapshot was recorded
            shutil.rmtree(target)
        checkpoint(db, target)
        fsync_dir(self.root)

    def remove_all_but(self, keep: SnapshotRecord | None) -> None:
        keep_path = None if keep is None else self.path(keep)
        for p in self.root.iterdir():
            if p == keep_path:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()


class CheckpointReader:
    """Reads the state of one checkpoint as snapshot chunks (read-only handle)."""

    def __init__(self, path: Path, rec: SnapshotRecord) -> None:
        self._rec = rec
        self._db: Rdict | None = open_rocks(path, read_only=True)

    def read_chunk(
        self, cursor: SnapshotCursor | None, max_bytes: int
    ) -> tuple[bytes, SnapshotCursor | None]:
        """The chunk after ``cursor`` (None: the first) and the cursor of the next one."""
        assert self._db is not None, "reader is closed"
        cf = self._db.get_column_family(self._rec.state_cf)
        start = b"" if cursor is None else cursor.after + b"\0"
        seq = 0 if cursor is None else cursor.seq + 1
        pairs: list[tuple[bytes, bytes]] = []
        size, last = 0, True
        for k, v in raw_items(cf, start):
            if pairs and size + len(k) + len(v) > max_bytes:
                last = False
                break
            pairs.append((k, v))
            size += len(k) + len(v)
        chunk = SnapshotChunk(self._rec.meta, seq, tuple(pairs), last)
        nxt = None if last else SnapshotCursor(seq, pairs[-1][0])
        return encode_chunk(chunk), nxt

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class SnapshotStager:
    """Receives one snapshot stream into the (new, empty) column family ``cf_name``."""

    def __init__(self, db: Rdict, cf_name: str, meta: SnapshotMeta) -> None:
        self.db = db
        self.cf_name = cf_name
        self.meta = meta
        self.complete = False
        self._next_seq = 0
        self._last_key: bytes | None = None

    def add(self, chunk: SnapshotChunk) -> bool:
        """Write one chunk (unsynced: the flip is synced); True once the stream is whole."""
        if self.complete or chunk.meta != self.meta or chunk.seq != self._next_seq:
            raise ChunkError(f"chunk {chunk.seq} does not continue snapshot {self.meta.index}")
        handle = self.db.get_column_family_handle(self.cf_name)
        wb = new_batch()
        for k, _ in chunk.pairs:
            if self._last_key is not None and k <= self._last_key:
                raise ChunkError("snapshot keys are not strictly increasing")
            self._last_key = k
        for k, v in chunk.pairs:
            wb.put(k, v, handle)
        self.db.write(wb, unsynced())
        self._next_seq += 1
        if chunk.last:
            self._check_whole()
            self.complete = True
        return self.complete

    def _check_whole(self) -> None:
        view = RocksStateView(self.db.get_column_family(self.cf_name))
        position = applied_position(view)
        if position != (self.meta.index, self.meta.term):
            raise ChunkError(f"snapshot data is at {position}, its metadata says {self.meta}")
