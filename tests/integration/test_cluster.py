"""Three real node processes forming one Raft cluster over the TCP transport.

Each node is ``scheduled-db run`` with the same member list and cluster secret;
webhooks go to a real local receiver.  Waits are bounded polls of a condition.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import FAILOVER_BOUND_S, ClusterNode, job, running_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[ClusterNode]]:
    with running_cluster(tmp_path) as nodes:
        yield nodes


def test_three_nodes_elect_one_leader_and_replicate_every_write(
    cluster: list[ClusterNode],
) -> None:
    leader = wait_leader(cluster)
    roles = sorted(n.health().get("role", "") for n in cluster)
    assert roles == ["follower", "follower", "leader"]
    for i in range(20):
        status, _, body = leader.http.call("POST", "/jobs", job(f"j{i}", time.time() + 3600))
        assert status in (200, 201), body
    for n in cluster:  # every replica applies every write
        wait_until(
            lambda n=n: n.http.call("GET", "/jobs/j19")[0] == 200, 10, f"{n.node_id} to apply"
        )
        assert n.http.call("GET", "/jobs?limit=100")[2]["total"] == 20
    view = leader.http.call("GET", "/debug/cluster")[2]
    listed = {s["node_id"]: s for s in view["members"]}
    assert set(listed) == {"node-1", "node-2", "node-3"}
    assert all(s["suffrage"] == "voter" for s in listed.values())
    assert listed[leader.node_id]["last_contact"] is None  # itself
    for n in cluster:
        if n is not leader:  # followers answer every heartbeat (100 ms)
            s = listed[n.node_id]
            assert 0 <= s["last_contact"] < 2000 and s["match_index"] >= 20, s
            assert s["raft_address"] == f"127.0.0.1:{n.raft_port}"
            assert s["http_address"] == f"127.0.0.1:{n.http_port}"


def test_after_the_leader_dies_a_new_one_serves_writes_and_fires_its_jobs(
    cluster: list[ClusterNode],
) -> None:
    receiver = Receiver().start()
    try:
        old = wait_leader(cluster)
        due = time.time() + 4
        status, _, body = old.http.call("POST", "/jobs", job("after", due, receiver.url("/ok")))
        assert status in (200, 201), body
        rest = [n for n in cluster if n is not old]
        for n in rest:  # acknowledged means replicated to a majority; wait for both
            wait_until(lambda n=n: n.http.call("GET", "/jobs/after")[0] == 200, 10, "replication")

        killed_at = time.monotonic()
        old.stop(signal.SIGKILL)
        new = wait_leader(rest, FAILOVER_BOUND_S)
        status, _, body = new.http.call("POST", "/jobs", job("new", time.time() + 3600))
        took = time.monotonic() - killed_at
        assert status in (200, 201), body
        print(f"failover: {new.node_id} served a write {took:.2f} s after the leader died")
        assert took < FAILOVER_BOUND_S

        receiver.wait_until(lambda r: len(r.received("/ok")) >= 1, timeout=30)
        got = receiver.received("/ok")[0]
        assert got.headers["Idempotency-Key"] == f"after:{int(round(due * 1000))}"
        wait_until(
            lambda: new.http.call("GET", "/jobs/after/status")[2]["status"] == "completed",
            15,
            "the job to complete through the new leader",
        )
    finally:
        receiver.stop()


def test_a_write_sent_to_a_follower_is_answered_by_the_leader(
    cluster: list[ClusterNode],
) -> None:
    leader = wait_leader(cluster)
    follower = next(n for n in cluster if n is not leader)
    status, _, body = follower.http.call("POST", "/jobs", job("via-follower", time.time() + 3600))
    assert status in (200, 201), body
    assert body["id"] == "via-follower" and body["status"] == "pending"
    assert leader.http.call("GET", "/jobs/via-follower")[0] == 200
    # The leader's own refusals come back as they are (here: a bad field).
    status, _, body = follower.http.call("POST", "/jobs", {"type": "unico"})
    assert status == 400 and "timestamp" in body["error"]
    status, _, _ = follower.http.call("DELETE", "/jobs/via-follower")
    assert status in (200, 204)
    wait_until(
        lambda: all(n.http.call("GET", "/jobs/via-follower")[0] == 404 for n in cluster),
        10,
        "the delete to reach every replica",
    )


def test_without_a_majority_a_write_waits_then_gets_503(cluster: list[ClusterNode]) -> None:
    leader = wait_leader(cluster)
    survivor = next(n for n in cluster if n is not leader)
    for n in cluster:
        if n is not survivor:
            n.stop(signal.SIGKILL)
    started = time.monotonic()
    status, headers, body = survivor.http.call("POST", "/jobs", job("lonely", time.time() + 60))
    waited = time.monotonic() - started
    assert status == 503 and body["error"] == "No leader available", body
    assert headers["Retry-After"] == "1"
    assert 2.0 <= waited < 15.0  # it waited for an election, within a bound
    assert survivor.http.call("GET", "/jobs/lonely")[0] == 404


def test_a_consistent_read_on_a_follower_sees_every_acknowledged_write(
    cluster: list[ClusterNode],
) -> None:
    leader = wait_leader(cluster)
    followers = [n for n in cluster if n is not leader]
    for i in range(30):
        status, _, body = leader.http.call("POST", "/jobs", job(f"c{i}", time.time() + 3600))
        assert status in (200, 201), body
        # No wait: the read itself waits until the follower has applied the write.
        follower = followers[i % 2]
        status, _, body = follower.http.call("GET", f"/jobs/c{i}?consistent=true")
        assert status == 200, (follower.node_id, body)
    status, _, body = followers[0].http.call("GET", "/jobs?consistent=true&limit=100")
    assert status == 200 and body["total"] == 30
