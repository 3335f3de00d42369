"""Damage to a node's data directory, and counting what survived it: shared by the
storage damage tests and the fault suite (tests/faults)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scheduled_db.testing.harness import NodeProcess, wait_until

START_TIMEOUT_S = 30.0


def create_jobs(node: NodeProcess, count: int) -> set[str]:
    at = int(time.time()) + 3600

    def one(i: int) -> str | None:
        body = {"id": f"job-{i}", "type": "unico", "timestamp": at}
        status = node.http.call("POST", "/jobs", body)[0]
        return f"job-{i}" if status == 200 else None

    with ThreadPoolExecutor(8) as pool:
        acked = {job for job in pool.map(one, range(count)) if job is not None}
    assert len(acked) == count, f"only {len(acked)} of {count} creates acknowledged"
    return acked


def total_jobs(node: NodeProcess) -> int:
    status, _, body = node.http.call("GET", "/jobs?limit=1")
    assert status == 200, body
    return int(body["total"])


def wal_of(data: Path) -> Path:
    (log,) = [p for p in (data / "db").glob("*.log") if p.stat().st_size > 0]
    return log


def cut_to_half(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def flip(path: Path, at: int, count: int = 256) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        data = f.read(count)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))


def start_on(data: Path) -> tuple[NodeProcess, int | None]:
    """Start a node on ``data`` and wait until it serves or exits by itself: the node,
    and its exit code (None while it serves; the caller stops it)."""
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
    return node, proc.poll()
