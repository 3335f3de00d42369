"""The original's docker-compose environment, on real node processes.

Each node is started as the original's image started its binary: no subcommand,
everything from the environment of the original's docker/docker-compose.yml, the
host names replaced by 127.0.0.1 and the ports by free ones (so METRICS_PORT too,
which the original hard-coded to 9090).  There is no cluster secret, as there is
none in that file.  Once that environment made three separate one-node clusters,
each its own leader; now it forms one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.testing.harness import ROOT, NodeProcess, running, wait_until

ELECTION_TIMEOUT_S = 1.0  # raft.election_timeout's default


class OriginalNode(NodeProcess):
    """``python -m scheduled_db`` with only the original's variables (and METRICS_PORT)."""

    def args(self) -> list[str]:
        return [sys.executable, "-m", "scheduled_db"]


def compose(tmp_path: Path, **more: str) -> list[OriginalNode]:
    """Three nodes with the environments of the original's compose file."""
    nodes = [OriginalNode(tmp_path / f"n{i}" / "data", f"node-{i}") for i in (1, 2, 3)]
    peers = ",".join(f"127.0.0.1:{n.raft_port}" for n in nodes)
    for i, n in enumerate(nodes, 1):
        n.env.update(
            NODE_ID=f"node-{i}",
            RAFT_HOST="0.0.0.0",
            RAFT_ADVERTISE_HOST="127.0.0.1",
            HTTP_HOST="0.0.0.0",
            RAFT_PORT=str(n.raft_port),
            HTTP_PORT=str(n.http_port),
            METRICS_PORT=str(n.metrics_port),
            DATA_DIR=str(n.data_dir),
            DISCOVERY_STRATEGY="static",
            STATIC_PEERS=peers,
            SLOT_GAP="10s",
        )
        n.env.update(more)
        if i != 3:  # node 3 has no BOOTSTRAP_EXPECT in that file
            n.env["BOOTSTRAP_EXPECT"] = "3"
    return nodes


def cluster_view(node: NodeProcess) -> dict[str, Any]:
    status, body = node.call("GET", "/debug/cluster")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def test_the_original_compose_environment_forms_one_cluster(tmp_path: Path) -> None:
    nodes = compose(tmp_path)
    with running(nodes):

        def agreed() -> bool:
            views = [cluster_view(n) for n in nodes]
            leaders = {v["leader"] for v in views}
            return len(leaders) == 1 and None not in leaders

        wait_until(agreed, 30, "the three nodes to agree on one leader")
        views = [cluster_view(n) for n in nodes]
        assert sum(v["is_leader"] for v in views) == 1
        for view in views:
            assert sorted(s["id"] for s in view["servers"]) == ["node-1", "node-2", "node-3"]
            assert [m["suffrage"] for m in view["members"]] == ["voter"] * 3
        # A write sent to a follower reaches the leader, at the REST address the
        # follower learned in the peer handshake.
        follower = next(n for n, v in zip(nodes, views, strict=True) if not v["is_leader"])
        job = {"id": "from-a-follower", "type": "unico", "timestamp": "2031-01-01T00:00:00Z"}
        status, body = follower.call("POST", "/jobs", job)
        assert status in (200, 201), body
        for n in nodes:
            wait_until(lambda n=n: n.call("GET", "/jobs/from-a-follower")[0] == 200, 10, "it")
        assert "peer traffic is not authenticated" in nodes[0].log()


@pytest.mark.parametrize(
    "variable",
    [{"ENABLE_COLD_SPILLING": "true"}, {"DISCOVERY_STRATEGY": "gossip"}],
    ids=lambda v: next(iter(v)),
)
def test_a_variable_we_do_not_support_stops_each_node_in_one_line(
    tmp_path: Path, variable: dict[str, str]
) -> None:
    (name,) = variable
    for node in compose(tmp_path, **variable):
        env = {**os.environ, "PYTHONPATH": str(ROOT), **node.env}
        done = subprocess.run(
            node.args(), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0
        (line,) = done.stderr.splitlines()
        assert line.startswith("scheduled-db: config: ") and name in line
        assert done.stdout == ""
        assert not node.data_dir.exists()  # refused before anything was opened


def test_a_node_whose_static_peers_never_come_up_never_leads_alone(tmp_path: Path) -> None:
    node = compose(tmp_path)[0]  # its two peers are never started
    node.start()
    try:
        # Watch it for five election timeouts: a node of one would elect itself in one.
        until = time.monotonic() + 5 * ELECTION_TIMEOUT_S
        while time.monotonic() < until:
            health = node.health()
            assert health["role"] != "leader" and health["leader"] is None, health
            view = cluster_view(node)
            assert view["is_leader"] is False and view["servers"] == [], view
        assert "waiting for" in node.log()
    finally:
        node.stop_if_running()
