"""The REST API served by worker processes (``http.workers``): a real node process
and its real workers, the same answers as a node serving the API itself."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduled_db.testing.harness import (
    Http,
    NodeProcess,
    process_running,
    spawned_children,
    wait_until,
)
from tests.integration.cluster import running_cluster
from tests.integration.test_cluster import (
    test_a_write_sent_to_a_follower_is_answered_by_the_leader as check_forwarding,
)
from tests.integration.test_cluster import (
    test_three_nodes_elect_one_leader_and_replicate_every_write as check_replication,
)
from tests.integration.test_node_e2e import _check_error
from tests.integration.test_node_e2e import (
    test_every_endpoint_then_restart_keeps_every_job as check_every_endpoint,
)

SECRET = "a-cluster-secret-for-tests"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    proc = NodeProcess(tmp_path / "data", extra=["--http-workers", "2"], CLUSTER_SECRET=SECRET)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop_if_running()


def _count(text: str, route: str, method: str, status: str) -> float:
    pattern = (
        r"^scheduled_db_http_requests_total\{"
        + rf'method="{method}",route="{re.escape(route)}",status="{status}"'
        + r"\} (\S+)$"
    )
    found = re.search(pattern, text, re.MULTILINE)
    return 0.0 if found is None else float(found.group(1))


def test_every_endpoint_answers_the_same_through_workers(node: NodeProcess) -> None:
    assert node.proc is not None and len(spawned_children(node.proc.pid)) == 2
    check_every_endpoint(node)  # a restart included
    assert node.proc is not None and len(spawned_children(node.proc.pid)) == 2


def test_bad_input_gets_the_same_clear_errors(node: NodeProcess) -> None:
    status, _, body = node.http.call("POST", "/jobs", {"type": "unico", "timestamp": True})
    _check_error(status, body, 400)
    assert "timestamp" in body["error"]
    status, _, body = node.http.call("GET", "/jobs/nothing-here")
    _check_error(status, body, 404)
    status, _, body = node.http.call("GET", "/jobs?cursor=not-a-cursor")
    _check_error(status, body, 400)


def test_metrics_sum_every_workers_requests(node: NodeProcess) -> None:
    creates = 40
    for i in range(creates):  # new connections: the workers share them out
        status, _, job = Http(node.base).call(
            "POST", "/jobs", {"id": f"m{i}", "type": "unico", "timestamp": time.time() + 3600}
        )
        assert status == 200, job
    for port in (node.metrics_port, node.http_port):
        status, _, text = Http(f"http://127.0.0.1:{port}").call("GET", "/metrics")
        assert status == 200
        assert _count(text, "/jobs", "POST", "200") == creates
        assert "scheduled_db_queue_job_count 40.0" in text  # the node's gauges too
        assert 'scheduled_db_http_admission_limit{kind="write"} 128.0' in text  # 64 + 64


def test_a_backup_is_read_through_a_worker(node: NodeProcess) -> None:
    for i in range(10):
        status, _, _ = node.http.call(
            "POST", "/jobs", {"id": f"b{i}", "type": "unico", "timestamp": time.time() + 3600}
        )
        assert status == 200
    status, headers, body = node.http.call(
        "GET", "/admin/snapshot", headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert status == 200, body
    assert "attachment" in headers["Content-Disposition"] and len(body) > 1000
    checkpoints = node.data_dir / "backups"
    wait_until(  # the worker removes the checkpoint it read once the body is sent
        lambda: not checkpoints.exists() or not any(checkpoints.iterdir()),
        10,
        "the backup's checkpoint to be removed",
    )


@pytest.mark.parametrize("who", ["worker", "node"])
def test_a_worker_and_its_node_end_together(tmp_path: Path, who: str) -> None:
    node = NodeProcess(tmp_path / "data", extra=["--http-workers", "2"])
    node.start()
    try:
        assert node.proc is not None
        workers = spawned_children(node.proc.pid)
        assert len(workers) == 2
        if who == "worker":  # the node stops rather than leave requests hanging
            os.kill(min(workers), signal.SIGKILL)
            assert node.proc.wait(30) != 0
        else:
            node.stop(signal.SIGKILL)
        wait_until(lambda: not any(process_running(p) for p in workers), 15, "the workers to end")
    finally:
        node.stop_if_running()


def test_ctrl_c_in_a_terminal_stops_the_node_cleanly(tmp_path: Path) -> None:
    # A terminal's Ctrl-C signals the node and its workers alike (one process group).
    node = NodeProcess(tmp_path / "data", extra=["--http-workers", "2"])
    node.start()
    try:
        assert node.proc is not None
        workers = spawned_children(node.proc.pid)
        for pid in (node.proc.pid, *workers):
            os.kill(pid, signal.SIGINT)
        assert node.proc.wait(30) == 0, node.log()[-2000:]
        wait_until(lambda: not any(process_running(p) for p in workers), 15, "the workers to end")
    finally:
        node.stop_if_running()


def test_a_cluster_whose_nodes_serve_through_workers(tmp_path: Path) -> None:
    # Every node's API in a worker: leader election seen, writes replicated, and a
    # write sent to a follower's worker forwarded to the leader's.
    with running_cluster(tmp_path, extra=("--http-workers", "1")) as nodes:
        check_replication(nodes)
        check_forwarding(nodes)
