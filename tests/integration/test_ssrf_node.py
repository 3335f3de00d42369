"""The SSRF guard in a real node process, as shipped (no webhooks.* set): webhooks
inside are refused at creation, and re-checked at delivery when the policy changed
after a job was made."""

from __future__ import annotations

import json
import time
from pathlib import Path

from scheduled_db.testing.harness import NodeProcess, wait_until
from tests.actors.webhook_receiver import Receiver

SHIPPED_DEFAULT = {"WEBHOOK_ALLOW_NETWORKS": ""}  # empty: unset, so the default (deny)


def test_the_shipped_default_refuses_webhooks_inside_at_creation(
    tmp_path: Path, receiver: Receiver
) -> None:
    node = NodeProcess(tmp_path / "data", **SHIPPED_DEFAULT)
    node.start()
    try:
        later = round(time.time() + 3600, 3)
        for url in (
            receiver.url("/ok"),
            f"http://[::ffff:127.0.0.1]:{receiver.port}/ok",
            f"http://localhost:{receiver.port}/ok",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00::1]/hook",
            "http://2130706433/hook",
        ):
            body = {"id": "inside", "type": "unico", "timestamp": later, "webhook_url": url}
            status, _, error = node.http.call("POST", "/jobs", body)
            assert status == 400, (url, error)
            assert error["field"] == "webhook_url", error
            assert "127.0.0.1" not in json.dumps(error) and "169.254" not in json.dumps(error)
        assert node.http.call("GET", "/jobs/inside")[0] == 404
    finally:
        node.stop_if_running()
    assert receiver.requests == []


def test_delivery_rechecks_the_address_when_the_policy_closed_after_creation(
    tmp_path: Path, receiver: Receiver
) -> None:
    data = tmp_path / "data"
    opened = NodeProcess(data)  # loopback allowed, the integration harness's default
    opened.start()
    try:
        due = round(time.time() + 8, 3)  # well after the restart below has begun
        body = {"id": "inside", "type": "unico", "timestamp": due, "max_attempts": 3,
                "webhook_url": receiver.url("/ok")}  # fmt: skip
        status, _, created = opened.http.call("POST", "/jobs", body)
        assert status == 200, created
    finally:
        assert opened.stop() == 0
    closed = NodeProcess(data, **SHIPPED_DEFAULT)
    closed.start()
    try:

        def finished() -> bool:
            status = closed.http.call("GET", "/jobs/inside/status")[2]
            return bool(status["completed_at"] is not None)

        wait_until(finished, 30, "the job to finish")
        assert closed.http.call("GET", "/jobs/inside/status")[2]["status"] == "failed"
        (attempt,) = closed.http.call("GET", "/jobs/inside/executions")[2]["attempts"]
    finally:
        closed.stop_if_running()
    assert attempt["error_type"] == "connection_error"  # not retried: one attempt of 3
    assert "address not allowed: 127.0.0.1 is a loopback address" in attempt["error_message"]
    assert receiver.requests == []
