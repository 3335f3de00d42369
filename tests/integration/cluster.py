"""Clusters of real node processes for the integration tests (the processes
themselves, the leader lookup and the waits are scheduled_db.testing.harness).

Each node is ``scheduled-db run`` with the same member list and cluster secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scheduled_db.testing.harness import NodeProcess, join, running

SECRET = "integration-test-cluster-secret"
FAILOVER_BOUND_S = 10.0  # generous for a loaded CI machine; the measured time is printed


class ClusterNode(NodeProcess):
    """A node that shares the test cluster's secret."""

    def __init__(self, data_dir: Path, node_id: str, extra: tuple[str, ...] = ()) -> None:
        super().__init__(data_dir, node_id, extra, CLUSTER_SECRET=SECRET)


@contextmanager
def running_cluster(
    root: Path, size: int = 3, extra: tuple[str, ...] = ()
) -> Iterator[list[ClusterNode]]:
    """``size`` nodes under ``root``, all started at once; every one stopped after."""
    nodes = [ClusterNode(root / f"n{i}" / "data", f"node-{i}", extra) for i in range(1, size + 1)]
    join(nodes)
    with running(nodes) as started:
        yield started


def job(job_id: str, at_s: float, url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": job_id, "type": "unico", "timestamp": round(at_s, 3)}
    if url is not None:
        body["webhook_url"] = url
    return body
