"""Real node processes on a small filesystem that fills up.

A single node: clients get 507 ``disk_full``, reads go on, the process lives,
and once space returns writes resume with every acknowledged job still there.
A follower of three: it stops acknowledging (the other two go on committing),
stays up, and catches up once space returns.

The filesystem is a 24 MiB tmpfs mounted for the test (the tests run as root,
here and in CI); a ballast file fills it to the last block.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.testing.harness import NodeProcess, join, wait_leader, wait_until
from tests.integration.cluster import ClusterNode

SIZE = "24m"
BEFORE = 50  # jobs acknowledged before the disk fills
MAX_POSTS_UNTIL_FULL = 500
RESUME_S = 20.0
FORBIDDEN_IN_ERRORS = ("Traceback", 'File "', "/tmp", "/root/", ".py", ".log")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no block left."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 512):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC, nothing else


def _job(job_id: str) -> dict[str, object]:
    return {"id": job_id, "type": "unico", "timestamp": int(time.time()) + 3600}


def test_a_full_disk_refuses_writes_with_507_and_resumes_when_space_returns(
    small_fs: Path,
) -> None:
    node = NodeProcess(small_fs / "data")
    node.log_path = small_fs.parent / "node-1.log"  # keep the log off the small disk
    node.start()
    try:
        acked = []
        for i in range(BEFORE):
            status, _, body = node.http.call("POST", "/jobs", _job(f"before-{i}"))
            assert status == 200, body
            acked.append(f"before-{i}")

        ballast = small_fs / "ballast"
        _fill(ballast)
        refusal = None
        for i in range(MAX_POSTS_UNTIL_FULL):
            status, headers, body = node.http.call("POST", "/jobs", _job(f"filling-{i}"))
            if status == 200:
                acked.append(f"filling-{i}")
            elif status == 507:
                refusal = body
                break
        assert refusal is not None, "no 507 while the disk was full"
        assert refusal["code"] == "disk_full", refusal
        assert "disk" in refusal["error"].lower(), refusal
        text = json.dumps(refusal)
        assert not any(bad in text for bad in FORBIDDEN_IN_ERRORS), text

        # Still alive, still reading, still refusing writes with the same answer.
        assert node.proc is not None and node.proc.poll() is None, node.log()[-3000:]
        status, _, body = node.http.call("GET", f"/jobs/{acked[0]}")
        assert status == 200, body
        assert node.http.call("GET", "/health")[0] == 200
        status, _, body = node.http.call("POST", "/jobs", _job("while-full"))
        assert status == 507 and body["code"] == "disk_full", body
        # What the SchedulerDiskFull alerts read (deploy/prometheus/alerts.yml).
        assert _metric(node, "scheduled_db_disk_full") == 1
        assert _metric(node, "scheduled_db_disk_full_refusals_total") >= 2

        os.unlink(ballast)
        wait_until(
            lambda: node.http.call("POST", "/jobs", _job("after"))[0] == 200,
            RESUME_S,
            "writes to succeed again once space returned",
        )
        assert _metric(node, "scheduled_db_disk_full") == 0
        for job_id in acked:
            status, _, body = node.http.call("GET", f"/jobs/{job_id}")
            assert status == 200, (job_id, body)
        assert node.proc.poll() is None
    finally:
        code = node.stop()
    assert code == 0, node.log()[-3000:]
    assert "Event loop is closed" not in node.log()


def _metric(node: NodeProcess, name: str) -> float:
    """The value of the label-less sample ``name`` in the node's /metrics."""
    status, _, text = node.http.call("GET", "/metrics")
    assert status == 200, text
    (value,) = [float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")]
    return value


def _last_contact(leader: NodeProcess, peer: str) -> float:
    """Seconds since ``leader`` last heard from ``peer``, as its /metrics says."""
    return _metric(leader, f'scheduled_db_raft_peer_last_contact_seconds{{peer="{peer}"}}')


def _cluster_view(node: ClusterNode) -> dict[str, Any]:
    status, _, body = node.http.call("GET", "/debug/cluster")
    assert status == 200, body
    return dict(body)


def _match_of(leader: ClusterNode, node_id: str) -> int:
    (server,) = [s for s in _cluster_view(leader)["members"] if s["node_id"] == node_id]
    return int(server["match_index"])


def test_a_follower_whose_disk_fills_stops_acknowledging_and_catches_up_after(
    small_fs: Path, tmp_path: Path
) -> None:
    nodes = [ClusterNode(tmp_path / f"n{i}" / "data", f"node-{i}") for i in (1, 2)]
    nodes.append(ClusterNode(small_fs / "data", "node-3"))
    full = nodes[2]
    full.log_path = tmp_path / "node-3.log"  # keep the log off the small disk
    join(nodes)
    try:
        for n in nodes:
            n.log_path.parent.mkdir(parents=True, exist_ok=True)
        for n in nodes[:2]:  # the first two elect a leader; the third joins as a follower
            n.start(wait=False)
        for n in nodes[:2]:
            wait_until(n.answers, 30, f"{n.node_id} to serve HTTP")
        leader = wait_leader(nodes[:2])
        full.start()
        acked = [_create_on(leader, f"before-{i}") for i in range(20)]
        _wait_caught_up(leader, full)

        _fill(small_fs / "ballast")
        acked += [_create_on(leader, f"while-full-{i}") for i in range(40)]
        acked.append(_create_on(full, "sent-to-the-full-follower"))  # forwarded, not refused
        commit = int(_cluster_view(leader)["commit_index"])
        assert _match_of(leader, full.node_id) < commit  # it stopped acknowledging
        # and answers nothing: the leader reports it out of contact (alerts.yml)
        wait_until(
            lambda: _last_contact(leader, full.node_id) > 2.0,
            RESUME_S,
            f"the leader to report {full.node_id} out of contact",
        )
        assert full.proc is not None and full.proc.poll() is None, full.log()[-3000:]
        assert full.http.call("GET", f"/jobs/{acked[0]}")[0] == 200  # and still reads

        os.unlink(small_fs / "ballast")
        _wait_caught_up(leader, full)
        assert _last_contact(leader, full.node_id) < 2.0
        for job_id in acked:
            status, _, body = full.http.call("GET", f"/jobs/{job_id}")
            assert status == 200, (job_id, body)
    finally:
        codes = {n.node_id: n.stop() for n in nodes if n.proc is not None}
    assert codes[full.node_id] == 0, full.log()[-3000:]


def _wait_caught_up(leader: ClusterNode, follower: ClusterNode) -> None:
    commit = int(_cluster_view(leader)["commit_index"])
    wait_until(
        lambda: (
            _match_of(leader, follower.node_id) >= commit
            and int(_cluster_view(follower)["applied_index"]) >= commit
        ),
        RESUME_S,
        f"{follower.node_id} to catch up with the leader's commit index {commit}",
    )


def _create_on(node: NodeProcess, job_id: str) -> str:
    status, _, body = node.http.call("POST", "/jobs", _job(job_id))
    assert status == 200, (job_id, body)
    return job_id
