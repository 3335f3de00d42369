"""on_failure and on_success end to end: a real node, a real local receiver.

A job whose attempts all fail sends exactly one failure notice, with the documented
body (docs/webhooks.md, "Callbacks"), signed like a delivery, under its own
idempotency key; a notice that fails is sent again under the same key; on_success
follows a completed run.  Waits are bounded conditions: a notice is settled once the
node counts it (scheduled_db_callbacks_total), after which nothing sends it again."""

from __future__ import annotations

import json
import time
from pathlib import Path

from scheduled_db.client import Client
from scheduled_db.policy import signing
from scheduled_db.testing.harness import Http, NodeProcess, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.test_delivery import FastNode, _attempts, _create, _soon, _wait_status

SECRET = "callback-signing-secret-0123456789"


def _callbacks(node: NodeProcess, event: str, result: str) -> float:
    """The node's count of notice sends of ``event`` that ended with ``result``."""
    status, _, text = Http(f"http://127.0.0.1:{node.metrics_port}").call("GET", "/metrics")
    assert status == 200
    line = f'scheduled_db_callbacks_total{{event="{event}",result="{result}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_a_job_failing_every_attempt_sends_exactly_one_signed_failure_notice(
    tmp_path: Path, receiver: Receiver
) -> None:
    node = FastNode(tmp_path / "data", WEBHOOK_SIGNING_SECRET=SECRET)
    node.start()
    try:
        callback = {"url": receiver.url("/ok"), "headers": {"X-Team": "billing"}}
        _create(node, id="nightly", type="unico", timestamp=_soon(), max_attempts=3,
                webhook_url=receiver.url("/status/500"), on_failure=callback,
                labels={"team": "billing"})  # fmt: skip
        _wait_status(node, "nightly", "failed")
        wait_until(lambda: _callbacks(node, "failure", "sent") == 1, 20, "the notice to be sent")
        (req,) = receiver.received("/ok")
        assert len(receiver.received("/status/500")) == 3
        body = json.loads(req.body)
        occurrence = body["scheduled_at_ms"]
        assert req.headers["Idempotency-Key"] == f"nightly:{occurrence}/failure/3"
        assert req.headers["X-Team"] == "billing"
        assert signing.verify(
            SECRET.encode(), req.headers[signing.HEADER], req.body, int(time.time())
        )
        assert body["event"] == "failure" and body["job_id"] == "nightly"
        assert (body["status"], body["final"], body["trigger"]) == ("failed", True, False)
        assert body["idempotency_key"] == f"nightly:{occurrence}"
        assert body["labels"] == {"team": "billing"}
        stored = [
            (a["attempt_num"], a["status"], a["http_status"]) for a in _attempts(node, "nightly")
        ]
        sent = [(a["attempt_num"], a["status"], a["http_status"]) for a in body["attempts"]]
        assert sent == stored == [(1, "failed", 500), (2, "failed", 500), (3, "failed", 500)]
        assert {a["error_type"] for a in body["attempts"]} == {"http_error"}
        # Settled: it is gone from the state, so neither this leader nor a restarted
        # one sends it again.
        node.stop()
        node.start()
        wait_until(lambda: node.http.call("GET", "/health")[0] == 200, 20, "the restart")
        status, _, job = node.http.call("GET", "/jobs/nightly")
        assert status == 200 and job["on_failure"] == callback and job["overlap"] is None
        typed = Client(node.base).get_job("nightly")
        assert (typed.on_failure, typed.on_success) == (callback, None)
        assert _callbacks(node, "failure", "sent") == 0 and len(receiver.received("/ok")) == 1
    finally:
        node.stop_if_running()


def test_a_failing_notice_is_retried_under_one_key_and_success_notifies_too(
    node: FastNode, receiver: Receiver
) -> None:
    notice_url = receiver.url("/seq/notice?codes=503,200")
    _create(node, id="ok-job", type="unico", timestamp=_soon(), webhook_url=receiver.url("/any"),
            on_success={"url": notice_url})  # fmt: skip
    _wait_status(node, "ok-job", "completed")
    wait_until(lambda: _callbacks(node, "success", "sent") == 1, 20, "the notice to be sent")
    first, second = receiver.received("/seq/notice")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.body == second.body
    assert _callbacks(node, "success", "retry") == 1
    body = json.loads(second.body)
    assert body["event"] == "success" and body["status"] == "completed"
    assert [a["status"] for a in body["attempts"]] == ["completed"]


def test_every_attempt_notifies_each_failed_attempt_of_a_triggered_run(
    node: FastNode, receiver: Receiver
) -> None:
    _create(node, id="each", type="recurrente", cron_expression="0 9 * * *", max_attempts=2,
            webhook_url=receiver.url("/status/500"),
            on_failure={"url": receiver.url("/any"), "every_attempt": True})  # fmt: skip
    status, _, run = node.http.call("POST", "/jobs/each/trigger")
    assert status == 202, run
    wait_until(lambda: _callbacks(node, "failure", "sent") == 2, 20, "two notices")
    bodies = [json.loads(r.body) for r in receiver.received("/any")]
    assert sorted((b["final"], len(b["attempts"])) for b in bodies) == [(False, 1), (True, 2)]
    assert {b["idempotency_key"] for b in bodies} == {run["idempotency_key"]}
    assert all(b["trigger"] for b in bodies)
    keys = {r.headers["Idempotency-Key"] for r in receiver.received("/any")}
    assert keys == {f"{run['idempotency_key']}/failure/{n}" for n in (1, 2)}


def test_callback_fields_are_validated_by_name(node: FastNode) -> None:
    url = "https://x.example"
    cases = [
        ({"on_failure": url}, "on_failure"),
        ({"on_failure": {"headers": {}}}, "on_failure.url"),
        ({"on_failure": {"url": "ftp://x.example"}}, "on_failure.url"),
        ({"on_success": {"url": url, "every_attempt": True}}, "on_success.every_attempt"),
        ({"on_failure": {"url": url, "headers": {"Host": "a"}}}, "on_failure.headers.Host"),
        ({"overlap": "sometimes"}, "overlap"),
    ]
    for extra, field in cases:
        body = {"type": "recurrente", "cron_expression": "0 9 * * *", **extra}
        status, _, answer = node.http.call("POST", "/jobs", body)
        assert status == 400 and answer["field"] == field, (extra, answer)
