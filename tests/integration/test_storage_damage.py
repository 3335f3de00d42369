"""A damaged data directory on a real node process: damage that loses acknowledged
writes stops the node at start with one line; a torn tail after a crash does not.

The node is killed with SIGKILL after its creates are acknowledged, so its
write-ahead log (``db/*.log``) still holds them (a clean stop flushes it away).
Each case damages a copy of that directory and starts a node on it:

- the log cut to half, or 256 bytes flipped in its middle: entries the node
  had made durable are gone, and it must refuse to start (one line, exit 1);
- the last few bytes cut (a write torn by the crash): it starts, every job there;
- after a clean stop, a data block of a table file (``*.sst``) flipped: it must
  refuse to start with one line, not serve and die on its first read.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduled_db.testing.harness import NodeProcess
from tests.integration.storage_damage_tools import (
    create_jobs,
    cut_to_half,
    flip,
    start_on,
    total_jobs,
    wal_of,
)

JOBS = 400


@pytest.fixture(scope="module")
def killed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory of a node SIGKILLed after JOBS acknowledged creates."""
    root = tmp_path_factory.mktemp("killed")
    node = NodeProcess(root / "data")
    node.start()
    try:
        create_jobs(node, JOBS)
    finally:
        node.stop(signal.SIGKILL)
    return root / "data"


def _copy(src: Path, root: Path) -> Path:
    target = root / "data"
    shutil.copytree(src, target)
    return target


def _start_expecting_refusal(data: Path) -> str:
    """Start a node on ``data``; it must exit non-zero by itself; its output."""
    node, code = start_on(data)
    if code is None:
        node.stop(signal.SIGKILL)
        raise AssertionError(f"the node started on damaged data:\n{node.log()[-3000:]}")
    out = node.log()
    assert code != 0, out
    return out


def _assert_one_line_naming(out: str, data: Path, *words: str) -> None:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{out}"
    assert "Traceback" not in out
    assert str(data) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize(
    "damage",
    [cut_to_half, lambda log: flip(log, log.stat().st_size // 2)],
    ids=["cut-to-half", "flipped-middle"],
)
def test_a_log_that_lost_durable_entries_stops_the_node_with_one_line(
    killed_dir: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    data = _copy(killed_dir, tmp_path)
    damage(wal_of(data))
    out = _start_expecting_refusal(data)
    _assert_one_line_naming(out, data, "missing")


def test_a_torn_last_write_is_a_normal_crash_and_the_node_starts(
    killed_dir: Path, tmp_path: Path
) -> None:
    data = _copy(killed_dir, tmp_path)
    log = wal_of(data)
    with open(log, "r+b") as f:
        f.truncate(log.stat().st_size - 7)
    node = NodeProcess(data)
    node.start()
    try:
        assert total_jobs(node) == JOBS
    finally:
        node.stop()


def test_a_flipped_table_block_stops_the_node_at_start_with_one_line(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data")
    node.start()
    try:
        create_jobs(node, JOBS)
    finally:
        assert node.stop() == 0  # a clean stop flushes everything into table files
    data = _copy(tmp_path / "data", tmp_path / "copy")
    table = max((data / "db").glob("*.sst"), key=lambda p: p.stat().st_size)
    flip(table, table.stat().st_size // 3)
    out = _start_expecting_refusal(data)
    _assert_one_line_naming(out, data, "corrupt")
