"""Backups out of a live node, and data directories for new clusters out of backups.

:class:`BackupSource` reads a checkpoint the StorageActor took
(:meth:`~actors.storage.store.NodeStore.checkpoint_for_backup`) and turns it into
the pieces of a backup file (:mod:`scheduled_db.state.backup_format`).  It runs on
whatever thread streams the file (the HTTP server's executor), never on the
StorageActor's: the checkpoint is a database of its own, opened read-only, so
reading it neither blocks nor races the node's writes.

:func:`restore_data_dir` and :func:`recover_data_dir` work on a stopped node's
directory (``scheduled-db restore`` and ``scheduled-db recover``).
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rocksdict import Rdict

from actors.storage.datadir import (
    DB_DIR,
    META_KEY,
    DataDirError,
    RocksStateView,
    decode_meta,
    is_fresh,
    open_rocks,
)
from actors.storage.store import NodeStore
from scheduled_db.raft.messages import SnapshotMeta
from scheduled_db.state.backup_format import (
    BackupHeader,
    BackupReader,
    backup_header,
    backup_pieces,
    verify,
)

CHUNK_BYTES = 1 << 20


class BackupSource:
    """One backup being read out of a checkpoint (a database of its own, opened
    read-only): its :attr:`header`, then :meth:`pieces`; :meth:`close` removes the
    checkpoint.  The constructor reads the whole state once (the header's digest)."""

    def __init__(self, path: Path, state_cf: str, node_id: str) -> None:
        self.path = path
        self._db: Rdict | None = None
        self._view: RocksStateView | None = None
        try:
            self._db = open_rocks(path, read_only=True)
            self._view = RocksStateView(self._db.get_column_family(state_cf))
            self.header = backup_header(self._view, node_id, int(time.time() * 1000))
        except BaseException:
            self.close()  # whatever was opened, and the checkpoint
            raise

    def pieces(self) -> Iterator[bytes]:
        """The whole file, a piece at a time (the header, each chunk, the end)."""
        assert self._view is not None, "source is closed"
        return backup_pieces(self._view, self.header, CHUNK_BYTES)

    def close(self) -> None:
        self._view = None  # no handle on a column family may outlive its database
        if self._db is not None:
            self._db.close()
            self._db = None
        shutil.rmtree(self.path, ignore_errors=True)


def derived_cluster_id(checksum: str, voters: tuple[str, ...]) -> str:
    """The cluster id ``restore`` gives a new cluster unless told one: the same on
    every member restored from the same file with the same member list, so the
    members agree without being told, and different from any other restore's."""
    h = hashlib.sha256(f"restore\0{checksum}\0{','.join(sorted(voters))}".encode())
    return h.hexdigest()[:16]


def new_cluster_id() -> str:
    return secrets.token_hex(8)


def restore_data_dir(
    backup: BinaryIO,
    data_dir: Path,
    node_id: str,
    voters: tuple[str, ...],
    cluster_id: str | None = None,
) -> tuple[BackupHeader, str]:
    """Write ``data_dir`` (absent or empty) for member ``node_id`` of a new cluster of
    ``voters`` holding the backup's state; (the backup's header, the cluster id).

    The whole file is checked before anything is written (``backup`` is read twice:
    a file, not a pipe).  Raises BackupFormatError, DataDirError, ValueError.
    """
    if node_id not in voters:
        raise ValueError(f"--node-id {node_id} is not one of the cluster members")
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(data_dir, "is not a directory")
    if not is_fresh(data_dir):
        raise DataDirError(data_dir, "is not empty: restore writes a new data directory")
    contents = verify(backup)
    cid = cluster_id or derived_cluster_id(contents.checksum, voters)
    backup.seek(0)
    reader = BackupReader(backup)
    reader.header()
    store = NodeStore.open(data_dir, node_id, cid)
    try:
        store.seed((data for data, _ in reader.chunks()), voters, cid)
    except BaseException:
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    store.close()
    return contents.header, cid


def recover_data_dir(data_dir: Path, cluster_id: str | None = None) -> tuple[SnapshotMeta, str]:
    """Make the stopped node of ``data_dir`` the one member of a new cluster
    (:meth:`NodeStore.force_new_cluster`); (its new snapshot position, the cluster id)."""
    node_id = read_node_id(data_dir)
    cid = cluster_id or new_cluster_id()
    store = NodeStore.open(data_dir, node_id)
    try:
        meta = store.force_new_cluster(cid)
    finally:
        store.close()
    return meta, cid


def read_node_id(data_dir: Path) -> str:
    """The node id recorded in a data directory (read-only; DataDirError if none)."""
    if not (data_dir / DB_DIR).is_dir():
        raise DataDirError(data_dir, "not a scheduled-db data directory")
    db = open_rocks(data_dir / DB_DIR, read_only=True)
    try:
        return decode_meta(data_dir, db.get(META_KEY)).node_id
    finally:
        db.close()
