"""The Go original's clients, scripts and e2e tests against real node processes.

- A Go client built from the original's response types (tests/integration/go/
  wirecheck.go, the standard library only, built offline) decodes every endpoint's
  answer and a webhook body as the original's clients would: a fraction where they
  expect an int64, or a number where they expect a string, fails to decode.
- The original's internal/e2e/cluster_test.go cluster tests (TestClusterHasLeader,
  TestAllNodesHealthy, TestClusterConfigurationHasThreeNodes, TestNodeJoinTiming),
  ported with the same decode types, pass against three local nodes.
- The greps of the original's shell scripts (scripts/test-proxy.sh,
  create-test-jobs.sh, e2e/test-cluster-init.sh, e2e/test-raft-replication.sh,
  e2e/extract-metrics.sh) run, as real ``grep``/``cut``/``wc`` pipelines, on the
  answers of a three-node cluster and find what they look for.

Go comes from Debian's golang-go (.ci/run installs it).  Without it these tests
skip on a workstation and fail in CI (``CI=true``), so they cannot pass unrun.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduled_db.testing.harness import NodeProcess, wait_leader, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import ClusterNode, running_cluster
from tests.test_webhook_docs import receiver_check

GO_SOURCE = Path(__file__).parent / "go" / "wirecheck.go"
SIGNING_SECRET = "go-wire-signing-secret-0123"


def go_env(root: Path) -> dict[str, str]:
    """A build that touches nothing outside ``root`` and never the network."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "GOCACHE": str(root / "cache"),
        "GOPATH": str(root / "path"),
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "",
        # With a C compiler, the standard library Debian ships prebuilt links in a
        # second; without one, build it pure Go (a few seconds more).
        "CGO_ENABLED": "1" if shutil.which("gcc") else "0",
    }
    return env


@pytest.fixture(scope="module")
def wirecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail("go is not installed: CI installs golang-go (.ci/run)")
        pytest.skip("go is not installed (apt-get install golang-go)")
    root = tmp_path_factory.mktemp("go")
    binary = root / "wirecheck"
    built = subprocess.run(
        [go, "build", "-o", str(binary), str(GO_SOURCE)],
        env=go_env(root),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return binary


def run_wirecheck(binary: Path, *args: str) -> str:
    done = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=300, check=False
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    return done.stdout


# --- the Go client on one node --------------------------------------------------------


def _status_of(node: NodeProcess, job_id: str) -> str:
    return str(node.call("GET", f"/jobs/{job_id}/status")[1].get("status"))


def test_the_original_go_client_decodes_every_answer_and_the_webhook(
    wirecheck: Path, tmp_path: Path, receiver: Receiver
) -> None:
    node = NodeProcess(tmp_path / "data", WEBHOOK_SIGNING_SECRET=SIGNING_SECRET)
    node.start()
    try:
        due = round(time.time() + 1.5, 3)
        job = {"id": "ran", "type": "unico", "timestamp": due, "payload": {"k": "fired"}}
        job["webhook_url"] = receiver.url("/ok")
        assert node.call("POST", "/jobs", job)[0] == 200
        receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=15)
        wait_until(lambda: _status_of(node, "ran") == "completed", 15, "the run to be recorded")
        (delivery,) = receiver.received("/ok")
        # The signature still covers the body, the original's fields included.
        signature = delivery.headers["X-Scheduled-DB-Signature"]
        assert receiver_check()(SIGNING_SECRET.encode(), signature, delivery.body)
        hook = tmp_path / "webhook.json"
        hook.write_bytes(delivery.body)
        waiting = {"id": "waiting", "type": "unico", "timestamp": "2030-01-01T00:00:00Z"}
        assert node.call("POST", "/jobs", waiting)[0] == 200
        out = run_wirecheck(wirecheck, "client", node.base, str(hook), "ran")
        assert out.count("PASS") == 11
    finally:
        node.stop_if_running()


# --- a three-node cluster: the original's e2e tests and its scripts' greps -------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterNode]]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


def test_the_original_e2e_cluster_tests_pass_against_three_nodes(
    wirecheck: Path, cluster: list[ClusterNode]
) -> None:
    out = run_wirecheck(wirecheck, "cluster", *(n.base for n in cluster))
    assert out.count("PASS") == 4


def raw(node: NodeProcess, method: str, path: str, body: bytes | None = None) -> bytes:
    """The answer's bytes, as ``curl -s`` prints them (any status)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(node.base + path, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as error:
        return bytes(error.read())


def sh(pipeline: str, stdin: bytes) -> str:
    """``pipeline`` run by a real shell on ``stdin``: the scripts' grep, cut and wc."""
    done = subprocess.run(["sh", "-c", pipeline], input=stdin, capture_output=True, timeout=10)
    return done.stdout.decode().strip()


ROLE = """grep -o '"role":"[^"]*"' | cut -d'"' -f4"""
ID = """grep -o '"id":"[^"]*"' | cut -d'"' -f4"""


def _create_as_the_scripts_do(node: NodeProcess) -> str:
    """scripts/test-proxy.sh's create; the id as its grep reads it."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    body = f'{{"type":"unico", "timestamp":"{when}"}}'.encode()
    answer = raw(node, "POST", "/jobs", body)
    job_id = sh(ID, answer)
    assert job_id and job_id == json.loads(answer)["id"], answer
    # create-test-jobs.sh counts a body matching "error" as a failure;
    # e2e/test-raft-replication.sh one matching CURL_FAILED, error or Error.
    assert sh("""grep -c 'error'""", answer) == "0"
    assert sh("""grep -c 'CURL_FAILED\\|error\\|Error'""", answer) == "0"
    return job_id


def test_the_original_scripts_greps_find_what_they_look_for(cluster: list[ClusterNode]) -> None:
    leader = wait_leader(cluster)
    followers = [n for n in cluster if n is not leader]
    roles = {n.node_id: sh(ROLE, raw(n, "GET", "/health")) for n in cluster}
    assert roles == {n.node_id: "leader" if n is leader else "follower" for n in cluster}
    created = [_create_as_the_scripts_do(leader), _create_as_the_scripts_do(followers[0])]

    def replicated() -> bool:
        counts = {
            sh("""grep -o '"job_count":[0-9]*'""", raw(n, "GET", "/debug/cluster")) for n in cluster
        }
        return counts == {f'"job_count":{len(created)}'}

    wait_until(replicated, 10, "every node to count the jobs (e2e/test-raft-replication.sh)")
    for n in cluster:
        for job_id in created:  # e2e/test-raft-replication.sh: the follower has the id
            assert job_id in raw(n, "GET", f"/jobs/{job_id}").decode()
        # e2e/test-cluster-init.sh: the servers, counted by their "id" keys
        assert sh("""grep -o '"id"' | wc -l""", raw(n, "GET", "/debug/cluster")) == "3"
        health = raw(n, "GET", "/health")
        assert sh("""grep -o '"status":"[^"]*"' | cut -d'"' -f4""", health) == "ok"
        assert sh("""grep -o '"node_id":"[^"]*"' | cut -d'"' -f4""", health) == n.node_id
    # e2e/extract-metrics.sh: a follower names the leader (its HTTP address: see /health)
    named = sh(
        """grep -o '"leader":"[^"]*"' | cut -d'"' -f4""", raw(followers[0], "GET", "/health")
    )
    assert named == f"127.0.0.1:{leader.http_port}"


# --- health without a quorum ----------------------------------------------------------


def test_health_is_503_without_a_quorum_while_livez_stays_200(tmp_path: Path) -> None:
    """A node that lost its majority is unhealthy (the original's 503) but alive: a
    liveness probe on /livez does not restart it in a loop."""
    with running_cluster(tmp_path) as nodes:
        survivor = wait_leader(nodes)
        assert survivor.call("GET", "/health")[0] == 200
        for n in nodes:
            if n is not survivor:
                n.kill()

        def unhealthy() -> bool:
            status, body = survivor.call("GET", "/health")
            return bool(status == 503 and body["status"] == "unhealthy")

        wait_until(unhealthy, 15, "the leader without a majority to say it is unhealthy")
        body = survivor.call("GET", "/health")[1]
        assert body["leader"] is None and body["code"] == "unhealthy"
        assert survivor.call("GET", "/livez") == (
            200,
            {"status": "ok", "node_id": survivor.node_id},
        )
