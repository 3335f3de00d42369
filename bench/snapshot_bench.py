"""Snapshot install: how long a wiped node takes to rejoin a cluster holding 1,000,000 jobs.

    python -m bench --only snapshot [--quick]         # quick: 20,000 jobs

Two members of a 3-node cluster start from directories holding N jobs
(:mod:`bench.prebuild`, built side by side; their logs end in a snapshot with
nothing kept below it, so a new member can only catch up by snapshot).  The
third member lost its data: as docs/architecture.md prescribes, the leader
removes it (``DELETE /cluster/members/node-3``), it starts empty, and it asks to
join as a learner (``POST /join``).  Measured from the join:

- **installed**: the new node's API lists all N jobs (the snapshot was streamed
  in chunks, staged, and installed in one synced write);
- **voter**: the leader promoted it (it was within 64 entries of the commit);

and the new node's peak memory, and the snapshot's size on the leader's disk.
No issue sets a target for this; the figures are published for comparison
between versions.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import prebuild
from bench.common import NO_TARGET, check, say
from bench.procs import ADMIN, READY_S, Node, make_cluster, rss_mb
from scheduled_db.testing.harness import running, wait_leader, wait_until

NAME = "snapshot"
JOBS, QUICK_JOBS = 1_000_000, 20_000
INSTALL_TIMEOUT_S = 1800.0


def build(nodes: list[Node], jobs: int) -> None:
    """Both directories at once (one process each): the same jobs, the same log."""
    now_ms = int(time.time() * 1000)
    voters = ",".join(n.node_id for n in nodes)
    procs = [
        subprocess.Popen(
            prebuild.command(n.data_dir, n.node_id, voters, jobs, now_ms) + ["--snapshot-at-end"],
            stdout=subprocess.DEVNULL,
        )
        for n in nodes[:2]
    ]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"building a data directory failed ({p.returncode})")


def job_total(node: Node) -> int:
    try:
        status, body = node.call("GET", "/jobs?limit=1")
    except OSError:
        return -1  # busy installing: try again
    return int(body["total"]) if status == 200 else -1


def suffrage(leader: Node, node_id: str) -> str | None:
    members = leader.call("GET", "/debug/cluster")[1]["members"]
    return next((s["suffrage"] for s in members if s["node_id"] == node_id), None)


def disk_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def rejoin(leader: Node, wiped: Node, jobs: int) -> dict[str, Any]:
    """Remove the wiped node, start it empty, join it; time the catch-up."""
    status, body = leader.call("DELETE", f"/cluster/members/{wiped.node_id}", headers=ADMIN)
    assert status == 200, body
    wiped.start(wait=False)
    wait_until(wiped.answers, 60, "the wiped node to serve HTTP")
    joining = {
        "node_id": wiped.node_id,
        "address": f"127.0.0.1:{wiped.raft_port}",
        "http_address": f"127.0.0.1:{wiped.http_port}",
    }
    t0 = time.monotonic()
    status, body = leader.call("POST", "/join", joining, headers=ADMIN)
    assert status == 200, body
    wait_until(lambda: job_total(wiped) == jobs, INSTALL_TIMEOUT_S, "the install", poll=0.1)
    installed = time.monotonic() - t0
    voter = "voter"
    wait_until(lambda: suffrage(leader, wiped.node_id) == voter, 120, "the promotion", poll=0.1)
    assert wiped.proc is not None
    return {
        "installed_s": round(installed, 2),
        "voter_s": round(time.monotonic() - t0, 2),
        "new_node_peak_rss_mb": round(rss_mb(wiped.proc.pid, "VmHWM")),
        "new_node_jobs": job_total(wiped),
    }


def run(quick: bool) -> dict[str, Any]:
    jobs = QUICK_JOBS if quick else JOBS
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        nodes = make_cluster(Path(tmp))
        say(f"snapshot: building two members' directories with {jobs:,} jobs")
        t = time.monotonic()
        build(nodes, jobs)
        built_s = time.monotonic() - t
        snapshot_mb = disk_mb(nodes[0].data_dir / "snapshots")
        with running(nodes[:2], READY_S):
            leader = wait_leader(nodes[:2], 120)
            say(f"snapshot: {nodes[2].node_id} wiped, rejoining {leader.node_id}'s cluster")
            try:
                figures = rejoin(leader, nodes[2], jobs)
            finally:
                nodes[2].stop()
    figures.update(jobs=jobs, build_s=round(built_s, 1), snapshot_on_disk_mb=snapshot_mb)
    figures["install_mb_per_s"] = round(snapshot_mb / figures["installed_s"], 1)
    figures["checks"] = [
        check(f"{jobs:,} jobs: join -> snapshot installed (s)", NO_TARGET, figures["installed_s"],
              None),
    ]  # fmt: skip
    return figures
