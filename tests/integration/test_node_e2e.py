"""A real node process, end to end: every endpoint and error code over HTTP,
then SIGTERM, a restart on the same data directory, and every job still there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scheduled_db.testing.harness import ROOT, Http, NodeProcess

FORBIDDEN_IN_ERRORS = ("Traceback", 'File "', "site-packages", "/usr/", "/root/", ".py")


def _future(seconds: int = 3600) -> int:
    return int(time.time()) + seconds


def _check_error(status: int, body: object, expected: int) -> None:
    assert status == expected, body
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    text = json.dumps(body)
    assert not any(bad in text for bad in FORBIDDEN_IN_ERRORS), text


def _create_some(http: Http) -> list[str]:
    ids = []
    for i in range(5):
        body = {"id": f"once-{i}", "type": "unico", "timestamp": _future(), "payload": {"i": i}}
        status, _, job = http.call("POST", "/jobs", body)
        assert status == 200, job
        assert job["id"] == f"once-{i}" and job["status"] == "pending"
        ids.append(job["id"])
    status, _, job = http.call(
        "POST",
        "/jobs",
        {"type": "recurrente", "cron_expression": "0 */5 * * * *", "timezone": "Europe/Madrid"},
    )
    assert status == 200 and job["type"] == "recurrente" and job["next_run_at"] > time.time()
    ids.append(job["id"])
    return ids


def test_every_endpoint_then_restart_keeps_every_job(node: NodeProcess) -> None:
    http = node.http
    ids = _create_some(http)
    # reads
    status, _, job = http.call("GET", "/jobs/once-0")
    assert status == 200 and job["payload"] == {"i": 0}
    status, _, st = http.call("GET", "/jobs/once-1/status")
    assert status == 200 and st["job_id"] == "once-1" and st["status"] == "pending"
    assert st["attempt_count"] == 0
    status, _, ex = http.call("GET", "/jobs/once-1/executions")
    assert status == 200 and ex == {"job_id": "once-1", "attempts": []}
    # listing with pagination and a status filter
    seen, cursor = [], None
    while True:
        path = "/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, _, page = http.call("GET", path)
        assert status == 200 and page["total"] == len(ids)
        seen += [j["id"] for j in page["jobs"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    # idempotent retry and a conflicting one
    status, _, again = http.call("POST", "/jobs", _same(job))
    assert status == 200 and again["id"] == "once-0"
    status, _, body = http.call("POST", "/jobs", {**_same(job), "payload": {"other": 1}})
    _check_error(status, body, 409)
    # cancel, then a second cancel of a finished job, then delete
    status, _, cancelled = http.call("POST", "/jobs/once-2/cancel", {"reason": "test"})
    assert status == 200 and cancelled["status"] == "cancelled"
    status, _, page = http.call("GET", "/jobs?status=cancelled")
    assert status == 200 and [j["id"] for j in page["jobs"]] == ["once-2"]
    status, _, _ = http.call("DELETE", "/jobs/once-3")
    assert status == 204
    status, _, body = http.call("GET", "/jobs/once-3")
    _check_error(status, body, 404)
    # cluster views and metrics on both ports
    status, _, health = http.call("GET", "/health")
    assert status == 200 and health["role"] == "leader" and health["node_id"] == "node-1"
    assert health["jobs"]["count"] == health["jobs"]["current_count"] == len(ids) - 1
    status, _, dbg = http.call("GET", "/debug/cluster")
    assert status == 200 and dbg["is_leader"] and dbg["applied_index"] >= dbg["commit_index"] - 1
    assert dbg["members"][0]["raft_address"].endswith(f":{node.raft_port}")
    assert dbg["servers"] == [{"id": node.node_id, "address": dbg["members"][0]["raft_address"]}]
    for port in (node.http_port, node.metrics_port):
        status, _, text = Http(f"http://127.0.0.1:{port}").call("GET", "/metrics")
        assert status == 200 and "scheduled_db_queue_job_count" in text
    # SIGTERM, restart on the same directory: everything is still there
    assert node.stop(signal.SIGTERM) == 0
    node.start()
    status, _, page = node.http.call("GET", "/jobs?limit=100")
    assert status == 200
    assert sorted(j["id"] for j in page["jobs"]) == sorted(i for i in ids if i != "once-3")
    status, _, st = node.http.call("GET", "/jobs/once-2/status")
    assert st["status"] == "cancelled"
    assert (st["cancellation_reason"], st["cancelled_at"]) == ("test", cancelled["cancelled_at"])


def _same(job: dict[str, object]) -> dict[str, object]:
    """The client's body of a stored job (its spec fields only)."""
    keep = ("id", "type", "timestamp", "timezone", "payload", "misfire_policy")
    return {k: job[k] for k in keep if job.get(k) is not None}


@pytest.mark.parametrize(
    ("method", "path", "raw", "headers", "expected"),
    [
        ("POST", "/jobs", b'{"type": "unico"', None, 400),  # malformed JSON
        ("POST", "/jobs", b"\xff\xfe\x00garbage", None, 400),  # not UTF-8
        ("POST", "/jobs", b"[1, 2]", None, 400),  # not an object
        ("POST", "/jobs", b'{"type": "unico", "timestamp": 1e400}', None, 400),  # huge
        ("POST", "/jobs", b'{"type": "weekly"}', None, 400),  # wrong value
        ("POST", "/jobs", b'{"type": "unico", "timestamp": true}', None, 400),  # wrong type
        ("POST", "/jobs", b"type=unico", {"Content-Type": "text/plain"}, 415),
        ("POST", "/jobs", b"{" + b" " * (2 << 20) + b"}", None, 413),  # over 1 MiB
        ("PUT", "/jobs", b"{}", None, 405),
        ("GET", "/nope", None, None, 404),
        ("GET", "/jobs?status=sleeping", None, None, 400),
        ("GET", "/jobs?limit=5000", None, None, 400),
        ("GET", "/jobs/unknown-job", None, None, 404),
        ("POST", "/join", b'{"node_id": ""}', None, 403),  # no cluster secret: no joining
    ],
    ids=[
        "malformed-json",
        "not-utf8",
        "not-an-object",
        "huge-number",
        "bad-type-value",
        "bool-timestamp",
        "wrong-content-type",
        "body-too-large",
        "wrong-method",
        "unknown-route",
        "unknown-status",
        "limit-too-big",
        "unknown-job",
        "bad-join",
    ],  # fmt: skip
)
def test_bad_requests_get_clear_json_errors(
    node: NodeProcess,
    method: str,
    path: str,
    raw: bytes | None,
    headers: dict[str, str] | None,
    expected: int,
) -> None:
    status, _, body = node.http.call(method, path, raw=raw, headers=headers)
    _check_error(status, body, expected)


def test_validation_errors_name_the_field(node: NodeProcess) -> None:
    status, _, body = node.http.call("POST", "/jobs", {"type": "unico", "timestamp": 1})
    _check_error(status, body, 400)
    assert body["error"].startswith("timestamp:")
    status, _, body = node.http.call("POST", "/jobs", {"type": "recurrente", "cron": "* * * * *"})
    _check_error(status, body, 400)
    assert "cron" in body["error"]


def test_a_bad_config_key_stops_start_up_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("htpp:\n  port: 8080\n")
    proc = subprocess.run(
        [sys.executable, "-m", "scheduled_db", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "htpp" in lines[0], proc.stderr


def test_a_foreign_data_directory_stops_the_node_naming_it(tmp_path: Path) -> None:
    first = NodeProcess(tmp_path / "data", node_id="node-1")
    first.start()
    assert first.stop() == 0
    other = NodeProcess(tmp_path / "data", node_id="node-2")
    other.start(wait=False)
    assert other.proc is not None
    assert other.proc.wait(60) != 0
    assert str(tmp_path / "data") in other.log()
    assert "Traceback" not in other.log()


class SmallNode(NodeProcess):
    def args(self) -> list[str]:
        return super().args() + ["--queue-job-limit", "2"]


def test_capacity_refuses_with_507_and_counts_the_rejection(tmp_path: Path) -> None:
    node = SmallNode(tmp_path / "data")
    node.start()
    try:
        for i in range(2):
            body = {"id": f"j{i}", "type": "unico", "timestamp": _future()}
            assert node.http.call("POST", "/jobs", body)[0] == 200
        status, _, body = node.http.call(
            "POST", "/jobs", {"id": "j2", "type": "unico", "timestamp": _future()}
        )
        _check_error(status, body, 507)
        assert (body["type"], body["current"], body["limit"]) == ("job_count", 2, 2)
        _, _, text = node.http.call("GET", "/metrics")
        assert 'scheduled_db_job_rejections_total{reason="job_count"} 1.0' in text
        for name in (
            "scheduled_db_queue_memory_usage_bytes",
            "scheduled_db_queue_memory_limit_bytes",
            "scheduled_db_queue_memory_utilization_percent",
            "scheduled_db_queue_job_count",
            "scheduled_db_queue_job_limit",
            "scheduled_db_jobs",
            "scheduled_db_raft_term",
            "scheduled_db_raft_leader_changes_total",
            "scheduled_db_job_retries_total",
            "scheduled_db_webhook_in_flight",
            "scheduled_db_firing_lateness_seconds",
            "scheduled_db_execution_duration_seconds",
        ):
            assert name in text, name
        # deleting frees capacity
        assert node.http.call("DELETE", "/jobs/j0")[0] == 204
        body = {"id": "j3", "type": "unico", "timestamp": _future()}
        assert node.http.call("POST", "/jobs", body)[0] == 200
    finally:
        node.stop()
