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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.nodeproc import NodeProcess, wait_until

JOBS = 400
START_TIMEOUT_S = 20.0


def _create(node: NodeProcess, count: int) -> set[str]:
    at = int(time.time()) + 3600

    def one(i: int) -> str | None:
        body = {"id": f"job-{i}", "type": "unico", "timestamp": at}
        status = node.http.call("POST", "/jobs", body)[0]
        return f"job-{i}" if status == 200 else None

    with ThreadPoolExecutor(8) as pool:
        acked = {job for job in pool.map(one, range(count)) if job is not None}
    assert len(acked) == count, f"only {len(acked)} of {count} creates acknowledged"
    return acked


def _total(node: NodeProcess) -> int:
    status, _, body = node.http.call("GET", "/jobs?limit=1")
    assert status == 200, body
    return int(body["total"])


@pytest.fixture(scope="module")
def killed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory of a node SIGKILLed after JOBS acknowledged creates."""
    root = tmp_path_factory.mktemp("killed")
    node = NodeProcess(root / "data")
    node.start()
    try:
        _create(node, JOBS)
    finally:
        node.stop(signal.SIGKILL)
    return root / "data"


def _wal(data: Path) -> Path:
    (log,) = [p for p in (data / "db").glob("*.log") if p.stat().st_size > 0]
    return log


def _cut_to_half(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _flip(path: Path, at: int, count: int = 256) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        data = f.read(count)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))


def _copy(src: Path, root: Path) -> Path:
    target = root / "data"
    shutil.copytree(src, target)
    return target


def _start_expecting_refusal(data: Path) -> str:
    """Start a node on ``data``; it must exit non-zero by itself; its output."""
    node = NodeProcess(data)
    node.start(wait=False)
    proc = node.proc
    assert proc is not None

    def ended_or_serving() -> bool:
        if proc.poll() is not None:
            return True
        try:
            return node.http.call("GET", "/health")[0] == 200
        except OSError:
            return False

    wait_until(ended_or_serving, START_TIMEOUT_S, "the node to exit or serve")
    if proc.poll() is None:
        node.stop(signal.SIGKILL)
        raise AssertionError(f"the node started on damaged data:\n{node.log()[-3000:]}")
    code = proc.returncode
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
    [_cut_to_half, lambda log: _flip(log, log.stat().st_size // 2)],
    ids=["cut-to-half", "flipped-middle"],
)
def test_a_log_that_lost_durable_entries_stops_the_node_with_one_line(
    killed_dir: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    data = _copy(killed_dir, tmp_path)
    damage(_wal(data))
    out = _start_expecting_refusal(data)
    _assert_one_line_naming(out, data, "missing")


def test_a_torn_last_write_is_a_normal_crash_and_the_node_starts(
    killed_dir: Path, tmp_path: Path
) -> None:
    data = _copy(killed_dir, tmp_path)
    log = _wal(data)
    with open(log, "r+b") as f:
        f.truncate(log.stat().st_size - 7)
    node = NodeProcess(data)
    node.start()
    try:
        assert _total(node) == JOBS
    finally:
        node.stop()


def test_a_flipped_table_block_stops_the_node_at_start_with_one_line(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data")
    node.start()
    try:
        _create(node, JOBS)
    finally:
        assert node.stop() == 0  # a clean stop flushes everything into table files
    data = _copy(tmp_path / "data", tmp_path / "copy")
    table = max((data / "db").glob("*.sst"), key=lambda p: p.stat().st_size)
    _flip(table, table.stat().st_size // 3)
    out = _start_expecting_refusal(data)
    _assert_one_line_naming(out, data, "corrupt")
