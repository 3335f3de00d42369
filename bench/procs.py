"""Real scheduled-db node processes for the benchmarks: one node, or a local cluster.

The processes, the waits and the leader lookup are the test harness's
(:mod:`scheduled_db.testing.harness`), which ships in the package, so a benchmark
still runs from an installed tree.  Here: a benchmark node's flags and environment
(on Linux it is SIGKILLed when the benchmark process dies, so an interrupted run
leaves no node behind), bulk job creation and memory readings.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from scheduled_db.testing.harness import Http, NodeProcess, join

SECRET = "benchmark-cluster-secret"
ADMIN = {"Authorization": f"Bearer {SECRET}"}
# The bench's receivers listen on loopback; the SSRF guard refuses that unless told
# ("" leaves the harness's loopback-only opening at the shipped default).
NODE_ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "CLUSTER_SECRET": SECRET, "WEBHOOK_ALLOW_NETWORKS": ""}
# Room for every job a benchmark creates (the defaults, 100,000 jobs and 512 MiB,
# protect a production node; a benchmark stores up to a million).
ROOMY = ["--queue-job-limit", "50000000", "--queue-memory-limit", "64GiB"]
READY_S = 60  # for a node to serve HTTP, on a machine the benchmark keeps busy


async def _post_all(base: str, bodies: list[dict[str, Any]], connections: int) -> None:
    todo = iter(bodies)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def create(body: dict[str, Any]) -> None:
            while True:
                async with session.post(base + "/jobs", json=body) as resp:
                    text = await resp.text()
                    if resp.status == 200:
                        return
                    retry = resp.headers.get("Retry-After", "")
                    if resp.status != 503 or '"overloaded"' not in text or not retry.isdigit():
                        raise RuntimeError(f"create {body['id']}: {resp.status} {text}")
                # Refused on arrival (admission control): nothing was made, so send it
                # again when the node says to.
                await asyncio.sleep(int(retry))

        async def client() -> None:
            for body in todo:
                await create(body)

        await asyncio.gather(*(client() for _ in range(connections)))


def post_jobs(base: str, bodies: list[dict[str, Any]], connections: int = 32) -> float:
    """Create jobs through ``POST /jobs`` from ``connections`` clients; the seconds it took."""
    start = time.perf_counter()
    asyncio.run(_post_all(base, bodies, connections))
    return time.perf_counter() - start


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MiB (``VmHWM``: its peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class Node(NodeProcess):
    """One benchmark node: no metrics port, warnings only, room for every job."""

    orphan_guard = True

    def __init__(self, data_dir: Path, node_id: str = "node-1", extra: list[str] | None = None):
        super().__init__(
            data_dir, node_id, ["--log-level", "WARNING", *ROOMY, *(extra or [])], **NODE_ENV
        )
        self.metrics_port = 0  # off
        self.http = Http(self.base, timeout=30)


def make_cluster(root: Path, size: int = 3, extra: list[str] | None = None) -> list[Node]:
    """``size`` nodes under ``root`` sharing one member list (not started)."""
    nodes = [Node(root / f"n{i}" / "data", f"node-{i}", extra) for i in range(1, size + 1)]
    join(nodes)
    return nodes
