"""The data directory's RocksDB helpers: a damaged block is an error, never a short scan;
and the failures RocksDB reports as text are told apart."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
from rocksdict import Rdict

from actors.storage.datadir import (
    DataDirError,
    checkpoint,
    is_corruption,
    is_disk_full,
    new_batch,
    open_data_dir,
    raw_items,
    rocks_options,
    synced,
    verify_all,
)

KEYS = 3000


def _fill_and_flip(db: Rdict, path: Path) -> None:
    """Fill ``db`` (at ``path``), close it, and damage a data block of its largest table."""
    wb = new_batch()
    for i in range(KEYS):
        wb.put(b"k%06d" % i, os.urandom(64))  # incompressible: many data blocks
    db.write(wb, synced())
    db.flush(True)
    db.close()
    table = max(path.glob("*.sst"), key=lambda p: p.stat().st_size)
    with open(table, "r+b") as f:
        f.seek(table.stat().st_size // 3)
        data = f.read(64)
        f.seek(table.stat().st_size // 3)
        f.write(bytes(b ^ 0xFF for b in data))


def test_a_scan_that_meets_a_damaged_block_raises_instead_of_ending_early(
    tmp_path: Path,
) -> None:
    _fill_and_flip(Rdict(str(tmp_path), rocks_options(create=True)), tmp_path)
    db = Rdict(str(tmp_path), rocks_options())
    try:
        assert len(list(db.items())) < KEYS  # rocksdict's own scan just stops there
        with pytest.raises(Exception, match="^Corruption") as caught:
            list(raw_items(db, b""))
        assert is_corruption(caught.value)
        with pytest.raises(Exception, match="^Corruption"):
            verify_all(db)
    finally:
        db.close()


def test_a_damaged_table_stops_the_open_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db, _ = open_data_dir(data, "n1", None)
    _fill_and_flip(db, data / "db")
    with pytest.raises(DataDirError, match="RocksDB reports corruption") as caught:
        open_data_dir(data, "n1", None)
    assert "\n" not in str(caught.value) and str(data) in str(caught.value)


def test_full_disk_and_corruption_are_told_apart() -> None:
    no_space = "IO error: No space left on device: While appending to file: /d/db/000012.log"
    assert is_disk_full(Exception(no_space))
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EIO, "Input/output error"))
    assert not is_corruption(Exception(no_space))
    assert is_corruption(Exception("Corruption: block checksum mismatch in /d/db/000017.sst"))


def test_a_checkpoint_lets_the_other_threads_run_while_memtables_flush(tmp_path: Path) -> None:
    """rocksdict holds the GIL through create_checkpoint, its memtable flush included:
    a node's every thread stood still for it (140-180 ms at 30 MB).  ``checkpoint``
    flushes first, which lets the GIL go, so a thread beside it keeps running."""
    db = Rdict(str(tmp_path / "db"), rocks_options(True))
    for _ in range(20):  # about 40 MB of memtable (the default holds 64 MB)
        wb = new_batch()
        for _ in range(2_000):
            wb.put(os.urandom(16), os.urandom(1_000))
        db.write(wb)
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    while len(ticks) < 5:  # running before the checkpoint starts
        time.sleep(0.001)
    started = time.perf_counter()
    checkpoint(db, tmp_path / "ck")
    took = time.perf_counter() - started
    stop.set()
    ticker.join()
    db.close()
    during = [t for t in ticks if started <= t]
    gaps = [b - a for a, b in zip([started, *during], [*during, started + took], strict=True)]
    assert took > 0.02, "too little to flush to tell anything"
    assert max(gaps) < took / 2, (max(gaps), took)
    assert Rdict(str(tmp_path / "ck"), rocks_options()).get(b"missing") is None  # it opens
