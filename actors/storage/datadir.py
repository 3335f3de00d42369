"""A node's data directory: layout, metadata record, RocksDB options and opening.

Layout of ``<data_dir>``::

    db/                      one RocksDB with column families:
        default              b"meta" (format version, node id, cluster id) and
                             b"state_cf" (name of the live state column family)
        raft                 Raft log, hard state, snapshot metadata
        state-<generation>   the job state (key layout in scheduled_db.state.records)
    snapshots/<index>-<term>/  RocksDB checkpoint (hard links) of the last snapshot
    backups/<random>/        checkpoints a backup is being read from (removed after,
                             and on open)
    watermark                what the node has made durable, kept outside RocksDB so
                             that damage to RocksDB's log cannot take it along
                             (actors/storage/watermark.py)

One database with column families (not one database per concern) because a
WriteBatch is atomic across the column families of one database: installing a
snapshot flips ``state_cf`` and resets the Raft log in a single synced batch.

Nothing here resets a directory silently: anything unexpected raises
:class:`DataDirError` naming the directory.  RocksDB reports its failures as a
bare ``Exception`` whose text starts with the status ("Corruption: ...", "IO
error: No space left on device ..."); :func:`is_corruption` and
:func:`is_disk_full` read them.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import msgpack
from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Checkpoint,
    DBCompressionType,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

FORMAT_VERSION = 1
DB_DIR = "db"
SNAPSHOT_DIR = "snapshots"
BACKUP_DIR = "backups"  # checkpoints being streamed to a backup; none survive a restart
WATERMARK_FILE = "watermark"
RAFT_CF = "raft"
STATE_CF_PREFIX = "state-"
META_KEY = b"meta"
STATE_POINTER = b"state_cf"


class DataDirError(RuntimeError):
    """The data directory is damaged, foreign, or belongs to another node/format."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        one_line = " ".join(problem.split())  # RocksDB messages span lines
        super().__init__(f"data directory {path}: {one_line}")


_NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failed write failed for lack of space (RocksDB's text, or the OS's errno)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(exc) for text in _NO_SPACE_TEXTS)


def is_corruption(exc: BaseException) -> bool:
    """Whether RocksDB found damaged data (a checksum mismatch, a truncated table...)."""
    return str(exc).startswith("Corruption:")


@dataclass(frozen=True, slots=True)
class DirMeta:
    """Written once when a directory is initialised, checked on every open."""

    format_version: int
    node_id: str
    cluster_id: str | None


def rocks_options(create: bool = False) -> Options:
    """Options for every column family (raw bytes keys and values)."""
    opts = Options(raw_mode=True)
    opts.create_if_missing(create)
    opts.create_missing_column_families(create)
    opts.set_compression_type(DBCompressionType.lz4())
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)  # point reads of absent keys are most of apply's reads
    table.set_block_cache(Cache(32 << 20))
    opts.set_block_based_table_factory(table)
    opts.set_max_total_wal_size(128 << 20)  # bounds WAL replay (time, memory) after a crash
    opts.set_keep_log_file_num(3)
    # Replay the write-ahead log up to its first bad record, not past it, and never
    # refuse to open over it: a write torn by a crash is normal.  A bad record that
    # cost durable entries is caught by the watermark (actors/storage/watermark.py).
    opts.set_wal_recovery_mode(DBRecoveryMode.point_in_time())
    # After a failed write RocksDB refuses every write until reopened (NodeStore.reopen),
    # rather than carry on after a record it may have half written.
    opts.set_paranoid_checks(True)
    return opts


def synced() -> WriteOptions:
    wo = WriteOptions()
    wo.sync = True
    return wo


def unsynced() -> WriteOptions:
    return WriteOptions()


def write_durably(db: Rdict, wb: WriteBatch) -> None:
    """Write ``wb`` and sync the write-ahead log, as a write with ``sync`` set does,
    but without holding the GIL through the fsync.

    rocksdict keeps the GIL for the whole of ``write`` (measured: a Python thread
    beside a loop of synced writes ran at 55% of its speed), so every other thread
    of the node (the HTTP loop, the Raft actor) stood still for each fsync.  Its
    ``flush_wal(True)`` lets the GIL go while RocksDB syncs the live WAL files
    (and their directory when it must); the write before it has already handed
    the record to the OS.  Nothing is reported durable before ``flush_wal`` returns.
    """
    db.write(wb, unsynced())
    db.flush_wal(True)


def new_batch() -> WriteBatch:
    return WriteBatch(raw_mode=True)


class RocksStateView:
    """The :class:`~scheduled_db.state.stateview.StateView` of one state column family."""

    def __init__(self, cf: Rdict) -> None:
        self._cf = cf

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._cf.get(key)
        return value

    def iter_range(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        for k, v in raw_items(self._cf, lo):
            if k >= hi:
                return
            yield k, v

    def iter_range_reverse(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self._cf.iter()
        it.seek_for_prev(hi)
        while it.valid():
            k = cast(bytes, it.key())
            if k < lo:
                break
            if k < hi:  # seek_for_prev lands on hi itself when it exists
                yield k, cast(bytes, it.value())
            it.prev()
        it.status()


def raw_items(cf: Rdict, start: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Pairs from ``start`` on; raw mode makes every key and value ``bytes``.

    Raises RocksDB's error if the scan meets a damaged block: ``Rdict.items``
    would end there as if the data ended (a silently short scan).
    """
    it = cf.iter()
    it.seek(start)
    while it.valid():
        yield cast(bytes, it.key()), cast(bytes, it.value())
        it.next()
    it.status()


def verify_all(db: Rdict) -> int:
    """Read every block of every column family, checking its checksum; the number
    of keys.  Raises RocksDB's error at the first damaged block."""
    opts = ReadOptions()
    # A scan of everything would evict what the node reads.  (rocksdict's stub forgets
    # the argument that its fill_cache takes.)
    opts.fill_cache(False)  # type: ignore[call-arg]
    opts.set_readahead_size(2 << 20)
    count = 0
    for name in Rdict.list_cf(db.path(), rocks_options()):
        it = db.get_column_family(name).iter(opts)
        it.seek_to_first()
        while it.valid():
            count += 1
            it.next()
        it.status()
    return count


def open_rocks(path: Path, create: bool = False, read_only: bool = False) -> Rdict:
    """Open the RocksDB at ``path`` with all its column families."""
    opts = rocks_options(create)
    try:
        names = ["default"] if create else Rdict.list_cf(str(path), rocks_options())
        cfs = {n: rocks_options(create) for n in names if n != "default"}
        access = AccessType.read_only() if read_only else AccessType.read_write()
        return Rdict(str(path), opts, column_families=cfs, access_type=access)
    except Exception as exc:  # RocksDB reports every failure as a bare Exception
        if is_corruption(exc):
            raise DataDirError(path.parent, f"RocksDB reports corruption: {exc}") from None
        raise DataDirError(path.parent, f"cannot open RocksDB at {path}: {exc}") from None


def decode_meta(data_dir: Path, raw: Any) -> DirMeta:
    try:
        d = msgpack.unpackb(raw, raw=False)
        return DirMeta(int(d["format"]), str(d["node_id"]), d.get("cluster_id"))
    except Exception:
        raise DataDirError(data_dir, "unreadable metadata record") from None


def encode_meta(meta: DirMeta) -> bytes:
    d = {"format": meta.format_version, "node_id": meta.node_id, "cluster_id": meta.cluster_id}
    return bytes(msgpack.packb(d))


def check_meta(data_dir: Path, meta: DirMeta, node_id: str, cluster_id: str | None) -> None:
    if meta.format_version != FORMAT_VERSION:
        raise DataDirError(
            data_dir, f"format version {meta.format_version}, this build reads {FORMAT_VERSION}"
        )
    if meta.node_id != node_id:
        raise DataDirError(data_dir, f"belongs to node {meta.node_id!r}, not {node_id!r}")
    if cluster_id is not None and meta.cluster_id not in (None, cluster_id):
        raise DataDirError(data_dir, f"belongs to cluster {meta.cluster_id!r}, not {cluster_id!r}")


def _is_empty(db: Rdict) -> bool:
    for name in Rdict.list_cf(db.path(), rocks_options()):
        cf = db.get_column_family(name)
        if next(iter(cf.keys()), None) is not None:
            return False
    return True


def _initialise(db: Rdict, node_id: str, cluster_id: str | None) -> None:
    """Create the column families, then the metadata record last (one synced batch)."""
    names = set(Rdict.list_cf(db.path(), rocks_options()))
    for name in (RAFT_CF, STATE_CF_PREFIX + "1"):
        if name not in names:
            db.create_column_family(name, rocks_options(True))
    wb = new_batch()
    wb.put(META_KEY, encode_meta(DirMeta(FORMAT_VERSION, node_id, cluster_id)))
    wb.put(STATE_POINTER, (STATE_CF_PREFIX + "1").encode())
    db.write(wb, synced())


_IGNORED = frozenset({"lost+found"})


def is_fresh(data_dir: Path) -> bool:
    """Absent, or an empty directory.  A freshly formatted volume holds lost+found:
    that is still an empty directory."""
    return not data_dir.exists() or all(p.name in _IGNORED for p in data_dir.iterdir())


def open_data_dir(data_dir: Path, node_id: str, cluster_id: str | None) -> tuple[Rdict, DirMeta]:
    """Open (initialising an absent or empty directory), validate the metadata and
    read every block once, so damaged data stops the node here, not at a read."""
    db_path = data_dir / DB_DIR
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(data_dir, "is not a directory")
    fresh = is_fresh(data_dir)
    if not fresh and not db_path.is_dir():
        raise DataDirError(data_dir, f"not a scheduled-db data directory (no {DB_DIR}/)")
    if fresh:
        data_dir.mkdir(parents=True, exist_ok=True)
    db = open_rocks(db_path, create=fresh)
    raw = db.get(META_KEY)
    if raw is None:
        if not _is_empty(db):
            db.close()
            raise DataDirError(data_dir, "RocksDB without a metadata record")
        _initialise(db, node_id, cluster_id)  # first open, or an interrupted first open
        raw = db.get(META_KEY)
    meta = decode_meta(data_dir, raw)
    try:
        check_meta(data_dir, meta, node_id, cluster_id)
        _verify(data_dir, db)
    except DataDirError:
        db.close()
        raise
    return db, meta


def _verify(data_dir: Path, db: Rdict) -> None:
    try:
        verify_all(db)
    except Exception as exc:  # RocksDB reports every failure as a bare Exception
        if not is_corruption(exc):
            raise
        raise DataDirError(data_dir, f"RocksDB reports corruption: {exc}") from None


def next_state_name(db: Rdict) -> str:
    """A name for a new state column family (the next generation)."""
    names = Rdict.list_cf(db.path(), rocks_options())
    gens = [int(n[len(STATE_CF_PREFIX) :]) for n in names if n.startswith(STATE_CF_PREFIX)]
    return f"{STATE_CF_PREFIX}{max(gens, default=0) + 1}"


def drop_state_cfs(db: Rdict, keep: tuple[str, ...]) -> None:
    """Drop every state column family but ``keep``: half-received snapshots, and
    states replaced before a crash."""
    for name in Rdict.list_cf(db.path(), rocks_options()):
        if name.startswith(STATE_CF_PREFIX) and name not in keep:
            db.drop_column_family(name)


def flush_all(db: Rdict, wait: bool = True) -> None:
    """Flush every column family's memtable (``Rdict.close`` flushes only the default);
    with ``wait`` False, only start the flushes (RocksDB's own threads do them)."""
    for name in Rdict.list_cf(db.path(), rocks_options()):
        db.get_column_family(name).flush(wait)


def checkpoint(db: Rdict, path: Path) -> None:
    """A RocksDB checkpoint of ``db`` at ``path`` (hard links), the memtables flushed
    first.  rocksdict holds the GIL through ``create_checkpoint``, the memtable flush
    it starts with included, and a flush lets the GIL go: a checkpoint that flushed
    30 MB of memtable stopped every thread of the node for 140-180 ms (all three
    nodes at once, a snapshot being due at the same index on each), and a few
    hundred writes of an open loop at 2,100/s were refused meanwhile.  Flushed here
    first, the checkpoint itself has only links to make."""
    flush_all(db)
    Checkpoint(db).create_checkpoint(str(path))


REOPEN_HEADROOM = 4 << 20  # free bytes, beyond the write-ahead log, to reopen RocksDB


def room_to_reopen(data_dir: Path) -> bool:
    """Whether the disk has room to reopen the RocksDB of ``data_dir`` after a write
    failed for lack of space: opening may write its whole write-ahead log out."""
    wal = 0
    for path in (data_dir / DB_DIR).glob("*.log"):
        try:
            wal += path.stat().st_size
        except FileNotFoundError:  # RocksDB removed an old one meanwhile
            continue
    st = os.statvfs(data_dir)
    return st.f_bavail * st.f_frsize >= wal + REOPEN_HEADROOM


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
