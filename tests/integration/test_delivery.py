"""Scheduling and webhook delivery, end to end: a real node process firing at a
real local receiver.  Waits are bounded conditions on what the receiver saw or
what the API reports."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.testing.harness import (
    NodeProcess,
    free_port,
    process_running,
    spawned_children,
    wait_until,
)
from tests.actors.webhook_receiver import Receiver


class FastNode(NodeProcess):
    """A node with short backoffs and slots, so retries happen within a test."""

    def args(self) -> list[str]:
        return super().args() + [
            "--execution-backoff-base", "100ms",
            "--execution-backoff-cap", "300ms",
            "--scheduler-slot-gap", "1s",
        ]  # fmt: skip


@pytest.fixture(params=[0, 1], ids=["in-process", "delivery-worker"])
def node(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FastNode]:
    """The node sends webhooks from its own process, or from a worker process
    (``execution.delivery_workers``): the same behaviour either way."""
    proc = FastNode(tmp_path / "data", extra=["--execution-delivery-workers", str(request.param)])
    proc.start()
    yield proc
    proc.stop_if_running()


def _create(node: NodeProcess, **body: Any) -> dict[str, Any]:
    status, _, job = node.http.call("POST", "/jobs", body)
    assert status == 200, job
    return job  # type: ignore[no-any-return]


def _soon(seconds: float = 1.5) -> float:
    return round(time.time() + seconds, 3)


def _status(node: NodeProcess, job_id: str) -> dict[str, Any]:
    return node.http.call("GET", f"/jobs/{job_id}/status")[2]  # type: ignore[no-any-return]


def _wait_status(node: NodeProcess, job_id: str, status: str, timeout: float = 20) -> None:
    """Wait for a *final* status: failed and timeout are also the states between
    attempts (failed -> in_progress on retry), so the job must be finished too."""

    def done() -> bool:
        st = _status(node, job_id)
        return bool(st["status"] == status and st["completed_at"] is not None)

    wait_until(done, timeout, f"{job_id} to finish as {status}")


def _attempts(node: NodeProcess, job_id: str) -> list[dict[str, Any]]:
    return node.http.call("GET", f"/jobs/{job_id}/executions")[2]["attempts"]  # type: ignore[no-any-return]


def test_a_due_job_is_delivered_once_with_its_documented_request(
    node: FastNode, receiver: Receiver
) -> None:
    at = _soon()
    _create(node, id="hello", type="unico", timestamp=at, webhook_url=receiver.url("/ok"),
            payload={"n": 1})  # fmt: skip
    receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=15)
    (req,) = receiver.received("/ok")
    body = json.loads(req.body)
    assert body["job_id"] == "hello" and body["type"] == "unico" and body["attempt"] == 1
    assert body["payload"] == {"n": 1}
    assert body["scheduled_at_ms"] == round(at * 1000)
    assert body["scheduled_at"] == body["scheduled_at_ms"] // 1000  # whole seconds, as the API
    # Claims go out ahead, not fires.
    assert body["executed_at_ms"] >= body["scheduled_at_ms"] - 500
    assert (body["timestamp"], body["data"]) == (body["executed_at"], {"n": 1})  # the original's
    assert req.headers["Idempotency-Key"] == f"hello:{int(at * 1000)}"
    assert req.headers["X-Scheduled-DB-Attempt"] == "1"
    assert req.headers["User-Agent"].startswith("scheduled-db/")
    _wait_status(node, "hello", "completed")
    (attempt,) = _attempts(node, "hello")
    assert attempt["status"] == "completed" and attempt["http_status"] == 200


def test_500_500_200_completes_after_three_attempts_with_one_key(
    node: FastNode, receiver: Receiver
) -> None:
    url = receiver.url("/seq/flaky?codes=500,500,200")
    _create(node, id="flaky", type="unico", timestamp=_soon(), webhook_url=url)
    _wait_status(node, "flaky", "completed")
    reqs = receiver.received("/seq/flaky")
    assert len(reqs) == 3
    assert len({r.headers["Idempotency-Key"] for r in reqs}) == 1
    assert [r.headers["X-Scheduled-DB-Attempt"] for r in reqs] == ["1", "2", "3"]
    statuses = [(a["attempt_num"], a["status"], a["http_status"]) for a in _attempts(node, "flaky")]
    assert statuses == [(1, "failed", 500), (2, "failed", 500), (3, "completed", 200)]


@pytest.mark.parametrize(
    ("case", "error_type"),
    [("refused", "connection_error"), ("dns", "dns_error"), ("4xx", "http_error")],
)
def test_failures_are_recorded_with_their_type(
    node: FastNode, receiver: Receiver, case: str, error_type: str
) -> None:
    url = {
        "refused": f"http://127.0.0.1:{free_port()}/nobody-listens",
        "dns": "http://does-not-exist.invalid/hook",
        "4xx": receiver.url("/status/404"),
    }[case]
    job_id = f"fail-{case}"
    _create(node, id=job_id, type="unico", timestamp=_soon(), webhook_url=url, max_attempts=2)
    _wait_status(node, job_id, "failed")
    attempts = _attempts(node, job_id)
    assert {a["error_type"] for a in attempts} == {error_type}
    # 4xx fails at once; network errors are retried up to max_attempts
    assert len(attempts) == (1 if case == "4xx" else 2)


def test_an_attempt_starts_when_its_request_is_sent_not_when_it_was_claimed(
    node: FastNode, receiver: Receiver
) -> None:
    # Runs are claimed scheduler.claim_ahead (2 s) before they are due.  The claim is
    # not the start: recorded as one, every attempt would read as fired early.  Due
    # on whole seconds, so the check holds however the API rounds its times.
    at = float(math.ceil(time.time()) + 3)
    _create(node, id="punctual", type="unico", timestamp=at, webhook_url=receiver.url("/ok"))
    _create(node, id="held", type="unico", timestamp=at, webhook_url=receiver.url("/block"))
    receiver.wait_until(lambda r: r.in_flight == 1 and len(r.received("/ok")) == 1, timeout=15)
    (in_flight,) = _attempts(node, "held")
    assert in_flight["status"] == "in_progress" and in_flight["start_time"] >= at, in_flight
    receiver.release(1)
    _wait_status(node, "punctual", "completed")
    (attempt,) = _attempts(node, "punctual")
    sent = json.loads(receiver.received("/ok")[0].body)["executed_at"]  # the send time
    assert attempt["start_time"] >= at and abs(attempt["start_time"] - sent) < 1, (attempt, sent)
    status = _status(node, "punctual")
    assert status["first_attempt_at"] == status["last_attempt_at"] == attempt["start_time"]
    _wait_status(node, "held", "completed")
    (attempt,) = _attempts(node, "held")
    assert attempt["start_time"] >= at, attempt


def test_a_timeout_is_recorded_as_timeout(node: FastNode, receiver: Receiver) -> None:
    _create(node, id="slow", type="unico", timestamp=_soon(), webhook_url=receiver.url("/block"),
            timeout="1s", max_attempts=1)  # fmt: skip
    _wait_status(node, "slow", "timeout")
    (attempt,) = _attempts(node, "slow")
    assert attempt["error_type"] == "timeout"


def test_cancel_in_flight_stays_cancelled(node: FastNode, receiver: Receiver) -> None:
    _create(node, id="held", type="unico", timestamp=_soon(), webhook_url=receiver.url("/block"))
    receiver.wait_until(lambda r: r.in_flight == 1, timeout=15)
    status, _, body = node.http.call("POST", "/jobs/held/cancel", {"reason": "changed my mind"})
    assert status == 200 and body["status"] == "cancelled"
    receiver.release(1)
    wait_until(lambda: _attempts(node, "held")[0]["status"] == "cancelled", 10, "attempt closed")
    assert _status(node, "held")["status"] == "cancelled"
    assert len(receiver.received("/block")) == 1


def test_a_recurring_seconds_schedule_ends_at_last_date(node: FastNode, receiver: Receiver) -> None:
    last = _soon(5)
    _create(node, id="tick", type="recurrente", cron_expression="*/2 * * * * *",
            last_date=last, webhook_url=receiver.url("/ok"))  # fmt: skip
    _wait_status(node, "tick", "completed", timeout=30)
    reqs = receiver.received("/ok")
    keys = [r.headers["Idempotency-Key"] for r in reqs]
    assert 2 <= len(reqs) <= 3 and len(set(keys)) == len(keys)
    fired = sorted(int(k.split(":")[1]) for k in keys)
    assert all(ms % 2_000 == 0 for ms in fired) and fired[-1] <= last * 1000


def test_jobs_due_while_the_node_is_down_fire_after_restart(
    node: FastNode, receiver: Receiver
) -> None:
    due = {f"d{i}": _soon(1 + i * 0.2) for i in range(5)}
    for job_id, at in due.items():
        _create(node, id=job_id, type="unico", timestamp=at, webhook_url=receiver.url("/ok"))
    assert node.stop(signal.SIGTERM) == 0
    wait_until(lambda: time.time() > max(due.values()) + 0.5, 10, "the jobs to fall due")
    node.start()
    receiver.wait_until(lambda r: len(r.received("/ok")) >= len(due), timeout=20)
    keys = {r.headers["Idempotency-Key"] for r in receiver.received("/ok")}
    assert keys == {f"{j}:{int(at * 1000)}" for j, at in due.items()}
    for job_id in due:
        _wait_status(node, job_id, "completed")


def test_a_delivery_cut_off_by_a_crash_fires_again_with_the_same_key(
    node: FastNode, receiver: Receiver
) -> None:
    at = _soon()
    _create(node, id="crash", type="unico", timestamp=at, webhook_url=receiver.url("/block"))
    receiver.wait_until(lambda r: r.in_flight == 1, timeout=15)
    node.stop(signal.SIGKILL)
    receiver.release(1)
    node.start()
    receiver.wait_until(lambda r: len(r.received("/block")) == 2, timeout=20)
    receiver.release(1)
    keys = [r.headers["Idempotency-Key"] for r in receiver.received("/block")]
    assert keys == [f"crash:{int(at * 1000)}"] * 2
    _wait_status(node, "crash", "completed")


def test_standard_webhooks_signatures_verify_with_the_reference_library(
    tmp_path: Path, receiver: Receiver
) -> None:
    """webhooks.signature_scheme: standard; a retried occurrence keeps its webhook-id."""
    import base64

    from standardwebhooks import Webhook

    secret = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32-bytes").decode()
    node = FastNode(
        tmp_path / "data", WEBHOOK_SIGNATURE_SCHEME="standard", WEBHOOK_SIGNING_SECRET=secret
    )
    node.start()
    try:
        url = receiver.url("/seq/std?codes=500,200")
        _create(node, id="std", type="unico", timestamp=_soon(), webhook_url=url)
        receiver.wait_until(lambda r: len(r.received("/seq/std")) == 2, timeout=15)
        first, second = receiver.received("/seq/std")
        for req in (first, second):
            headers = {k: v for k, v in req.headers.items()}
            assert Webhook(secret).verify(req.body, headers)["job_id"] == "std"
            assert req.headers["webhook-id"] == req.headers["Idempotency-Key"]
            assert "X-Scheduled-DB-Signature" not in req.headers
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
    finally:
        node.stop_if_running()


HEADER_SECRET = "Bearer header-secret-value-0123456789"


def test_a_job_s_method_and_headers_reach_the_receiver_and_its_secret_stays_out(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A PUT with a literal header and one from webhooks.header_secrets; a GET without a
    body.  The secret is in no API answer, no log line and no file of the data directory."""
    node = FastNode(tmp_path / "data", WEBHOOK_HEADER_SECRETS=f"billing-token:{HEADER_SECRET}")
    node.start()
    try:
        headers = {"X-Team": "billing", "Authorization": {"secret_ref": "billing-token"}}
        url = receiver.url("/any")
        shown = _create(node, id="put", type="unico", timestamp=_soon(), method="put",
                        webhook_url=url, headers=headers, payload={"n": 1})  # fmt: skip
        assert (shown["method"], shown["headers"]) == ("PUT", headers)
        _create(node, id="get", type="unico", timestamp=_soon(), method="GET",
                webhook_url=receiver.url("/any"))  # fmt: skip
        receiver.wait_until(lambda r: len(r.received("/any")) == 2, timeout=15)
        by_method = {r.method: r for r in receiver.received("/any")}
        put, get = by_method["PUT"], by_method["GET"]
        assert put.headers["X-Team"] == "billing"
        assert put.headers["Authorization"] == HEADER_SECRET
        assert json.loads(put.body)["payload"] == {"n": 1}
        assert get.body == b"" and "Content-Type" not in get.headers
        assert get.headers["Idempotency-Key"].startswith("get:")
        _wait_status(node, "put", "completed")
        answers = [node.http.call("GET", path)[2] for path in
                   ("/jobs/put", "/jobs", "/jobs/put/executions", "/executions")]  # fmt: skip
        assert HEADER_SECRET not in json.dumps(answers)
    finally:
        node.stop_if_running()
    assert HEADER_SECRET not in node.log()
    secret = HEADER_SECRET.encode()
    for path in node.data_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_a_leader_without_the_header_secret_fails_the_attempt_and_sends_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The secret was configured when the job was made, not when it fires (a node
    restarted without it): the attempt fails retryably, and nothing goes out."""
    node = FastNode(tmp_path / "data", WEBHOOK_HEADER_SECRETS=f"billing-token:{HEADER_SECRET}")
    node.start()
    headers = {"Authorization": {"secret_ref": "billing-token"}}
    _create(node, id="j", type="unico", timestamp=_soon(4), webhook_url=receiver.url("/any"),
            headers=headers, max_attempts=2)  # fmt: skip
    node.stop()
    node.env.pop("WEBHOOK_HEADER_SECRETS")
    node.start()
    try:
        _wait_status(node, "j", "failed")
        attempts = _attempts(node, "j")
        assert len(attempts) == 2
        assert all("header secret billing-token" in a["error_message"] for a in attempts)
        assert receiver.received("/any") == []
    finally:
        node.stop_if_running()


def test_a_rate_per_destination_spreads_a_burst_and_drops_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    """20 runs due at once to one receiver, at most 5 a second: they arrive over ~3 s,
    each once and on its first attempt, although each may wait only 1 s for a turn
    (waiting for the rate is not waiting for a hung receiver)."""
    node = FastNode(tmp_path / "data", WEBHOOK_PER_DESTINATION_RATE="5")
    node.start()
    try:
        at = _soon(2.5)
        jobs = [{"id": f"r{i}", "type": "unico", "timestamp": at, "timeout": "1s",
                 "webhook_url": receiver.url("/ok")} for i in range(20)]  # fmt: skip
        status, _, body = node.http.call("POST", "/jobs/batch", {"jobs": jobs})
        assert status == 200, body
        receiver.wait_until(lambda r: len(r.received("/ok")) == 20, timeout=20)
        arrived = sorted(r.at for r in receiver.received("/ok"))
        assert arrived[-1] - arrived[0] >= 2.5  # 15 past the first second's 5, at 5/s
        for start in arrived:
            assert sum(start <= t < start + 1.0 for t in arrived) <= 10
        ids = [json.loads(r.body)["job_id"] for r in receiver.received("/ok")]
        assert sorted(ids) == sorted(j["id"] for j in jobs)
        for j in jobs:
            _wait_status(node, j["id"], "completed")
            assert len(_attempts(node, j["id"])) == 1
    finally:
        node.stop_if_running()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_nodes_delivery_workers_end_with_it(
    tmp_path: Path, receiver: Receiver, how: signal.Signals
) -> None:
    node = FastNode(tmp_path / "data", extra=["--execution-delivery-workers", "2"])
    node.start()
    try:
        assert node.proc is not None
        workers = spawned_children(node.proc.pid)
        assert len(workers) == 2
        _create(node, id="w", type="unico", timestamp=_soon(0.5), webhook_url=receiver.url("/ok"))
        receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=15)
        node.stop(how)
        wait_until(lambda: not any(process_running(p) for p in workers), 15, "the workers to end")
    finally:
        node.stop_if_running()
