"""Backup, restore and recovery from lost quorum, as an operator runs them: real node
processes, the real ``scheduled-db backup|restore|recover`` commands.

* A 3-node cluster holding 10,000 jobs is backed up from a follower while a stream
  of writes goes on; the file is restored into 3 fresh directories, which start a
  new cluster holding exactly the backup's state, and which refuses a node of the
  old cluster.
* 2 of 3 nodes are killed for good; ``recover --force-new-cluster`` makes the
  survivor a cluster of its own, which serves writes and fires; two new nodes join
  it; nothing the survivor had is lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from actors.storage.store import NodeStore
from scheduled_db.state.backup_format import verify
from scheduled_db.testing.harness import ROOT, join, running, wait_leader, wait_until
from tests.integration.cluster import SECRET, ClusterNode, job, running_cluster

ADMIN = {"Authorization": f"Bearer {SECRET}"}
JOBS = 10_000


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """One run of the command line, as an operator would type it."""
    return subprocess.run(
        [sys.executable, "-m", "scheduled_db", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def _fill(leader: ClusterNode, n: int) -> None:
    at = time.time() + 7200
    for start in range(0, n, 1000):
        batch = [job(f"j{i:05d}", at) for i in range(start, min(start + 1000, n))]
        status, _, body = leader.http.call("POST", "/jobs/batch", {"jobs": batch})
        assert status == 200 and all(r["status"] in (200, 201) for r in body["results"]), body


class WriteStream:
    """Creates jobs one by one until stopped, noting when each was acknowledged."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.acked: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            job_id = f"s{i:05d}"
            status, _, _ = self.node.http.call("POST", "/jobs", job(job_id, time.time() + 7200))
            if status in (200, 201):
                self.acked.append((time.monotonic(), job_id))
            i += 1

    def __enter__(self) -> WriteStream:
        self._thread.start()
        wait_until(lambda: len(self.acked) >= 20, 30, "the write stream to be under way")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _all_ids(node: ClusterNode) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        path = "/jobs?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, _, body = node.http.call("GET", path)
        assert status == 200, body
        ids.update(j["id"] for j in body["jobs"])
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


def _digest_of(data_dir: Path, node_id: str) -> str:
    store = NodeStore.open(data_dir, node_id)
    try:
        return store.digest()
    finally:
        store.close()


def test_backup_under_writes_restores_into_a_new_cluster_that_refuses_the_old(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path / "old") as old:
        leader = wait_leader(old)
        _fill(leader, JOBS)
        follower = next(n for n in old if n is not leader)
        out = tmp_path / "cluster.backup"
        with WriteStream(leader) as stream:
            before = time.monotonic()
            acked_before = {j for t, j in stream.acked if t < before}
            done = cli("backup", "--url", follower.base, "--out", str(out),
                       SCHEDULED_DB_TOKEN=SECRET)  # fmt: skip
            after = time.monotonic()
            assert done.returncode == 0, done.stderr
            wait_until(lambda: any(t > after for t, _ in stream.acked), 30, "writes after it")
        acked_after = {j for t, j in stream.acked if t > after}
        with open(out, "rb") as f:
            contents = verify(f)
        header = contents.header
        assert header.voters == ("node-1", "node-2", "node-3")
        old_node = follower

    new = [ClusterNode(tmp_path / "new" / f"n{i}" / "data", f"node-{i}") for i in (1, 2, 3)]
    join(new)
    for n in new:
        done = cli("restore", str(out), "--data-dir", str(n.data_dir),
                   "--node-id", n.node_id, "--cluster-members", n.members)  # fmt: skip
        assert done.returncode == 0, done.stderr
        # Restored, not yet started: the state is the backup's, byte for byte.
        assert _digest_of(n.data_dir, n.node_id) == header.digest
    with running(new):
        new_leader = wait_leader(new)
        ids = _all_ids(new_leader)
        assert {f"j{i:05d}" for i in range(JOBS)} <= ids
        streamed = {j for j in ids if j.startswith("s")}
        assert acked_before <= streamed  # acknowledged before the backup began: in it
        assert not streamed & acked_after  # acknowledged after it ended: not in it
        assert len(ids) == len(streamed) + JOBS
        status, _, body = new_leader.http.call("POST", "/jobs", job("fresh", time.time() + 60))
        assert status in (200, 201), body
        wait_until(lambda: len({_digest(n) for n in new}) == 1, 30, "the new nodes to agree")

        # A node of the old cluster, started with the new cluster's member list (a
        # mistaken config), is refused by every new node: it never takes part.
        others = [n for n in new if n.node_id != old_node.node_id]
        old_node.members = ",".join(n.member() for n in [*others, old_node])
        old_node.start()
        try:
            wait_until(lambda: all(_refused(n) for n in others), 30, "the new nodes to refuse it")
            term = new_leader.health().get("term")
            assert old_node.health().get("leader") in (None, "")
            assert new_leader.health().get("term") == term
        finally:
            old_node.stop_if_running()


def _refused(node: ClusterNode) -> bool:
    return "wrong proof of the cluster secret" in node.log()


def _digest(node: ClusterNode) -> str:
    body: dict[str, Any] = node.http.call("GET", "/debug/digest")[2]
    return str(body["digest"])


def test_recover_after_losing_a_majority_for_good(tmp_path: Path, receiver: Any) -> None:
    with running_cluster(tmp_path) as nodes:
        leader = wait_leader(nodes)
        _fill(leader, 300)
        survivor = next(n for n in nodes if n is not leader)
        for n in nodes:
            if n is not survivor:
                n.stop(signal.SIGKILL)
        had = _all_ids(survivor)
        assert len(had) >= 300
        wait_until(lambda: survivor.health().get("leader") in (None, ""), 30, "no leader")
        status, _, _ = survivor.http.call("POST", "/jobs", job("nope", time.time() + 60))
        assert status == 503  # no quorum: a write cannot be made
        survivor.stop()

        done = cli("recover", "--data-dir", str(survivor.data_dir))
        assert done.returncode == 2 and "--force-new-cluster" in done.stderr
        done = cli("recover", "--data-dir", str(survivor.data_dir), "--force-new-cluster")
        assert done.returncode == 0, done.stderr
        assert "lost" in done.stderr
        cluster_id = _json(done.stdout)["cluster_id"]

        survivor.start()
        wait_until(lambda: survivor.health().get("role") == "leader", 30, "the survivor to lead")
        assert "does not change the membership" in survivor.log()
        assert had <= _all_ids(survivor)
        at = time.time() + 1.5
        hook = receiver.url("/ok")
        status, _, body = survivor.http.call("POST", "/jobs", job("after", at, hook))
        assert status in (200, 201), body
        receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=30)

        joining = [ClusterNode(tmp_path / f"n{i}" / "data", f"node-{i}") for i in (4, 5)]
        for n in joining:
            n.members = f"{survivor.member()},{n.member()}"
            n.env["CLUSTER_ID"] = cluster_id
        with running(joining):
            for n in joining:
                body = {
                    "node_id": n.node_id,
                    "address": f"127.0.0.1:{n.raft_port}",
                    "http_address": f"127.0.0.1:{n.http_port}",
                }
                status, _, answer = survivor.http.call("POST", "/join", body, headers=ADMIN)
                assert status == 200, answer
            members = [survivor, *joining]
            for n in joining:
                wait_until(lambda n=n: _voter(survivor, n.node_id), 60, f"{n.node_id} a voter")
            wait_until(lambda: len({_digest(n) for n in members}) == 1, 30, "one state")
            assert had | {"after"} <= _all_ids(joining[0])
            # A majority of the new cluster is what commits now: the survivor alone
            # is no longer enough, and the new members carry writes without it.
            survivor.stop()
            new_leader = wait_leader(joining)
            status, _, body = new_leader.http.call("POST", "/jobs", job("later", time.time() + 60))
            assert status in (200, 201), body


def _voter(node: ClusterNode, node_id: str) -> bool:
    members = node.http.call("GET", "/debug/cluster")[2]["members"]
    return any(s["node_id"] == node_id and s["suffrage"] == "voter" for s in members)


def _json(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value
