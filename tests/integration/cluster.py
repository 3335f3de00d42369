"""A harness for clusters of real node processes: start, find the leader, stop.

Each node is ``scheduled-db run`` with the same member list and cluster secret.
Waits are bounded polls of a condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.integration.nodeproc import NodeProcess, wait_until

SECRET = "integration-test-cluster-secret"
FAILOVER_BOUND_S = 10.0  # generous for a loaded CI machine; the measured time is printed


class ClusterNode(NodeProcess):
    def __init__(self, data_dir: Path, node_id: str, extra: tuple[str, ...] = ()) -> None:
        super().__init__(data_dir, node_id, CLUSTER_SECRET=SECRET)
        self.members = ""
        self.extra = extra  # more command-line flags

    def args(self) -> list[str]:
        return super().args() + ["--cluster-members", self.members, *self.extra]

    def member(self) -> str:
        return f"{self.node_id}=127.0.0.1:{self.raft_port}=127.0.0.1:{self.http_port}"

    def health(self) -> dict[str, Any]:
        try:
            status, _, body = self.http.call("GET", "/health")
        except OSError:
            return {}
        return body if isinstance(body, dict) else {}


@contextmanager
def running_cluster(
    root: Path, size: int = 3, extra: tuple[str, ...] = ()
) -> Iterator[list[ClusterNode]]:
    """``size`` nodes under ``root``, all started at once; every one stopped after."""
    nodes = [ClusterNode(root / f"n{i}" / "data", f"node-{i}", extra) for i in range(1, size + 1)]
    members = ",".join(n.member() for n in nodes)
    for n in nodes:
        n.data_dir.parent.mkdir(parents=True)
        n.members = members
        n.start(wait=False)
    try:
        for n in nodes:
            wait_until(n.healthy, 30, f"{n.node_id} to serve /health")
        yield nodes
    finally:
        for n in nodes:
            n.stop_if_running()


def leader_of(nodes: list[ClusterNode]) -> ClusterNode | None:
    """The node every live node names as leader, if they agree and it says so itself."""
    named = {n.health().get("leader") for n in nodes}
    if len(named) != 1:
        return None
    (address,) = named
    leader = next((n for n in nodes if address == f"127.0.0.1:{n.http_port}"), None)
    if leader is None or leader.health().get("role") != "leader":
        return None
    return leader


def wait_leader(nodes: list[ClusterNode], timeout: float = 30) -> ClusterNode:
    found: list[ClusterNode] = []

    def agreed() -> bool:
        leader = leader_of(nodes)
        if leader is not None:
            found.append(leader)
        return leader is not None

    wait_until(agreed, timeout, "the nodes to agree on one leader")
    return found[-1]


def job(job_id: str, at_s: float, url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": job_id, "type": "unico", "timestamp": round(at_s, 3)}
    if url is not None:
        body["webhook_url"] = url
    return body
