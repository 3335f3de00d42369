"""The compose topology, run as local processes: clients only ever talk to the LB.

Three nodes from docker-compose.yml's services and YAML files, the repository's
nginx config in front (see tests/deploy/topology.py).  Jobs are created and read
through the LB; the leader is killed with SIGKILL; creating and reading go on
through the LB.  Waits are bounded polls.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from scheduled_db.testing.harness import wait_until
from tests.deploy.topology import ComposeNode, Nginx, Prometheus
from tests.integration.cluster import FAILOVER_BOUND_S

DUE_S = 2_000_000_000  # 2033: these jobs never fire during the test
RETRYABLE = (502, 503, 504)  # the LB found no node able to answer yet: the client retries


def body(job_id: str) -> dict[str, Any]:
    # The same body on every retry: a create that already landed answers 200 again.
    return {"id": job_id, "type": "unico", "timestamp": DUE_S, "payload": {"via": "lb"}}


def attempt(lb: Nginx, method: str, path: str, payload: Any = None) -> bool:
    """One request through the LB: True on 200, False on an answer worth retrying."""
    try:
        status, _, answer = lb.http.call(method, path, payload)
    except OSError:
        return False
    if status in RETRYABLE:
        return False
    assert status == 200, (method, path, status, answer)
    return True


def create(lb: Nginx, job_id: str, timeout: float) -> None:
    wait_until(lambda: attempt(lb, "POST", "/jobs", body(job_id)), timeout, f"create {job_id}")


def read(lb: Nginx, job_id: str, timeout: float) -> None:
    # consistent=true: whichever node the LB picks, it sees every acknowledged write.
    path = f"/jobs/{job_id}?consistent=true"
    wait_until(lambda: attempt(lb, "GET", path), timeout, f"read {job_id}")
    assert lb.http.call("GET", f"/jobs/{job_id}")[2]["payload"] == {"via": "lb"}


def leader(nodes: list[ComposeNode]) -> ComposeNode:
    """The node every node names as leader, once they agree."""
    found: list[ComposeNode] = []

    def agreed() -> bool:
        named = {n.http.call("GET", "/debug/cluster")[2].get("leader_id") for n in nodes}
        found[:] = [n for n in nodes if {n.node_id} == named]
        return bool(found)

    wait_until(agreed, 15, "the nodes to agree on a leader")
    return found[0]


def test_prometheus_with_the_repo_config_scrapes_every_node(
    compose_nodes: list[ComposeNode], prometheus: Prometheus
) -> None:
    expected = {f"127.0.0.1:{n.metrics_port}" for n in compose_nodes}

    def all_up() -> bool:
        result = prometheus.query('up{job="scheduled-db"}')["data"]["result"]
        up = {r["metric"]["instance"] for r in result if r["value"][1] == "1"}
        return up == expected

    wait_until(all_up, 20, "every node's target to be up")


def test_jobs_created_through_the_lb_survive_the_leader_being_killed(
    compose_nodes: list[ComposeNode], lb: Nginx
) -> None:
    before = [f"before-{i}" for i in range(6)]  # round robin: every node gets some
    for job_id in before:
        create(lb, job_id, 10)
    for job_id in before:
        read(lb, job_id, 10)

    old = leader(compose_nodes)
    old.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        after = [f"after-{i}" for i in range(6)]
        for job_id in after:
            create(lb, job_id, FAILOVER_BOUND_S)
        took = time.monotonic() - killed_at
        print(f"through the LB: 6 creates {took:.2f} s after the leader was killed")
        for job_id in before + after:
            read(lb, job_id, 10)
        listed = lb.http.call("GET", "/jobs?limit=100")[2]
        assert {j["id"] for j in listed["jobs"]} >= set(before + after)
        assert leader([n for n in compose_nodes if n is not old]) is not old
    finally:
        # As compose's restart policy would: the node comes back on its own data.
        old.start()
        wait_until(old.ready, 30, f"{old.node_id} to be ready again")
    read(lb, after[-1], 10)
