"""A node that lost its data rejoins and catches up by a snapshot from the leader.

A voter that lost its log must not simply come back under its old identity: the
leader would count entries it no longer has towards a majority.  So it is removed
(``DELETE /cluster/members/{id}``), started empty, and added back with
``POST /join`` as a learner; the leader promotes it once it has caught up.

The nodes snapshot every 20 applied entries and keep no entries below a snapshot,
so after a few dozen writes the leader's log no longer starts where a new node's
does: the only way in is the snapshot stream (actors/raft/snapshot_stream.py).
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.integration.cluster import SECRET, ClusterNode, job, running_cluster

ADMIN = {"Authorization": f"Bearer {SECRET}"}
SMALL_SNAPSHOTS = ("--raft-snapshot-threshold-entries", "20", "--raft-snapshot-keep-entries", "0")


def test_a_wiped_node_catches_up_by_snapshot(tmp_path: Path) -> None:
    with running_cluster(tmp_path, extra=SMALL_SNAPSHOTS) as nodes:
        leader = wait_leader(nodes)
        for i in range(30):
            status, _, body = leader.http.call("POST", "/jobs", job(f"a{i}", time.time() + 3600))
            assert status in (200, 201), body
        # A cancel reason is part of the job's record: the snapshot carries it.
        status, _, cancelled = leader.http.call("POST", "/jobs/a1/cancel", {"reason": "año ✓"})
        assert status == 200, cancelled
        wiped = next(n for n in nodes if n is not leader)
        wiped.stop(signal.SIGKILL)
        shutil.rmtree(wiped.data_dir)
        path = f"/cluster/members/{wiped.node_id}"
        status, _, body = leader.http.call("DELETE", path, headers=ADMIN)
        assert status == 200, body
        for i in range(60):  # the log moves on and is compacted past everything it had
            status, _, body = leader.http.call("POST", "/jobs", job(f"b{i}", time.time() + 3600))
            assert status in (200, 201), body

        wiped.start()
        joining = {
            "node_id": wiped.node_id,
            "address": f"127.0.0.1:{wiped.raft_port}",
            "http_address": f"127.0.0.1:{wiped.http_port}",
        }
        assert wiped.http.call("GET", "/ready")[0] == 503  # no leader talks to it yet
        status, _, body = leader.http.call("POST", "/join", joining, headers=ADMIN)
        assert status == 200 and body["suffrage"] == "learner", body
        wait_until(
            lambda: wiped.http.call("GET", "/jobs?limit=1")[2].get("total") == 90,
            30,
            "the wiped node to hold all 90 jobs",
        )
        assert "received snapshot" in wiped.log()
        assert wiped.http.call("GET", "/jobs/a0")[0] == 200
        shown = wiped.http.call("GET", "/jobs/a1/status")[2]
        assert (shown["cancellation_reason"], shown["cancelled_at"]) == (
            "año ✓",
            cancelled["cancelled_at"],
        )
        wait_until(
            lambda: suffrage(leader, wiped.node_id) == "voter", 20, "the learner's promotion"
        )
        wait_until(lambda: wiped.http.call("GET", "/ready")[0] == 200, 10, "it to be ready")
        # It is a full member again: it applies new writes as they come.
        status, _, body = leader.http.call("POST", "/jobs", job("after", time.time() + 3600))
        assert status in (200, 201), body
        wait_until(lambda: wiped.http.call("GET", "/jobs/after")[0] == 200, 10, "a write after it")


def suffrage(node: ClusterNode, node_id: str) -> str | None:
    members = node.http.call("GET", "/debug/cluster")[2]["members"]
    return next((s["suffrage"] for s in members if s["node_id"] == node_id), None)
