"""POST /jobs/{id}/trigger end to end: real node processes, a real local receiver.

A trigger is one delivery now, outside the schedule, with an idempotency key of its
own, recorded in the job's executions with ``"trigger": true``; the schedule (status,
next run, attempt count) is untouched.  Waits are bounded conditions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.policy.auth import token_digest
from scheduled_db.testing.harness import NodeProcess, wait_leader, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import running_cluster
from tests.integration.test_delivery import _create

SCHEDULE_FIELDS = ("status", "next_run_at_ms", "attempt_count", "completed_at_ms", "paused")


# The node fixture: tests/integration/conftest.py (one node on the defaults).


def _trigger(node: NodeProcess, job_id: str, headers: dict[str, str] | None = None) -> Any:
    return node.http.call("POST", f"/jobs/{job_id}/trigger", headers=headers)


def _schedule(node: NodeProcess, job_id: str) -> tuple[Any, ...]:
    """What the schedule keeps of a job, from its view and its status."""
    job = node.http.call("GET", f"/jobs/{job_id}")[2]
    job |= node.http.call("GET", f"/jobs/{job_id}/status")[2]
    return tuple(job[f] for f in SCHEDULE_FIELDS)


def _attempts(node: NodeProcess, job_id: str) -> list[dict[str, Any]]:
    return node.http.call("GET", f"/jobs/{job_id}/executions")[2]["attempts"]  # type: ignore[no-any-return]


def _wait_trigger_done(node: NodeProcess, job_id: str) -> dict[str, Any]:
    def done() -> bool:
        return any(a["trigger"] and a["end_time_ms"] for a in _attempts(node, job_id))

    wait_until(done, 20, f"the triggered run of {job_id} to be recorded")
    (attempt,) = [a for a in _attempts(node, job_id) if a["trigger"]]
    return attempt


def test_a_trigger_delivers_once_with_its_own_key_and_leaves_the_schedule(
    node: NodeProcess, receiver: Receiver
) -> None:
    _create(node, id="report", type="recurrente", cron_expression="0 9 * * *",
            webhook_url=receiver.url("/ok"), payload={"n": 1})  # fmt: skip
    before = _schedule(node, "report")
    status, _, answer = _trigger(node, "report")
    assert status == 202, answer
    assert answer["trigger"] is True and answer["job_id"] == "report"
    assert answer["idempotency_key"] == f"report:t{answer['occurrence_ms']}"
    assert answer["occurrence"] == answer["occurrence_ms"] // 1000
    receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=15)
    (req,) = receiver.received("/ok")
    assert req.headers["Idempotency-Key"] == answer["idempotency_key"]
    body = json.loads(req.body)
    assert body["trigger"] is True and body["payload"] == {"n": 1}
    assert body["scheduled_at_ms"] == answer["occurrence_ms"]
    attempt = _wait_trigger_done(node, "report")
    assert attempt["status"] == "completed" and attempt["http_status"] == 200
    assert attempt["scheduled_at_ms"] == answer["occurrence_ms"]
    assert _schedule(node, "report") == before
    (listed,) = node.http.call("GET", "/executions?job_id=report")[2]["executions"]
    assert listed["trigger"] is True and listed["job_id"] == "report"
    # Its outcome is committed: nothing sends it again.
    assert len(receiver.received("/ok")) == 1
    assert node.http.call("GET", "/jobs/report/status")[2]["attempts"] == []  # the schedule's


def test_a_completed_one_time_job_runs_again_and_stays_completed(
    node: NodeProcess, receiver: Receiver
) -> None:
    _create(node, id="once", type="unico", timestamp=round(time.time() + 1, 3),
            webhook_url=receiver.url("/ok"))  # fmt: skip
    wait_until(lambda: _schedule(node, "once")[0] == "completed", 20, "the run to complete")
    before = _schedule(node, "once")
    first, second = (_trigger(node, "once")[2] for _ in range(2))
    assert first["idempotency_key"] != second["idempotency_key"]
    receiver.wait_until(lambda r: len(r.received("/ok")) == 3, timeout=15)
    keys = [r.headers["Idempotency-Key"] for r in receiver.received("/ok")]
    assert len(set(keys)) == 3 and sorted(keys[1:]) == sorted(
        [first["idempotency_key"], second["idempotency_key"]]
    )
    wait_until(lambda: all(a["end_time_ms"] for a in _attempts(node, "once")), 20, "outcomes")
    assert [a["trigger"] for a in _attempts(node, "once")] == [False, True, True]
    assert _schedule(node, "once") == before


def test_a_paused_job_takes_a_trigger_and_its_schedule_stays_paused(
    node: NodeProcess, receiver: Receiver
) -> None:
    _create(node, id="held", type="recurrente", cron_expression="0 9 * * *",
            webhook_url=receiver.url("/ok"))  # fmt: skip
    paused, _, body = node.http.call("POST", "/jobs/held/pause")
    if paused in (404, 405):  # the pause route is not in this build
        pytest.skip("POST /jobs/{id}/pause is not served here")
    assert paused == 200, body
    before = _schedule(node, "held")
    assert _trigger(node, "held")[0] == 202
    assert _wait_trigger_done(node, "held")["status"] == "completed"
    assert len(receiver.received("/ok")) == 1
    assert _schedule(node, "held") == before


def test_unknown_and_cancelled_jobs_are_refused(node: NodeProcess) -> None:
    assert _trigger(node, "nobody")[0] == 404
    _create(node, id="stopped", type="unico", timestamp=round(time.time() + 3600))
    assert node.http.call("POST", "/jobs/stopped/cancel")[0] == 200
    status, _, body = _trigger(node, "stopped")
    assert (status, body["code"]) == (409, "job_cancelled")
    status, _, body = node.http.call("POST", "/jobs/stopped/trigger", {"when": "now"})
    assert (status, body["field"]) == (400, "when")  # a trigger takes no fields


def test_a_trigger_needs_the_write_role(tmp_path: Path, receiver: Receiver) -> None:
    tokens = f"r:{token_digest('read-tok')}:read,w:{token_digest('write-tok')}:write"
    node = NodeProcess(tmp_path / "data", API_TOKENS=tokens)
    node.start()
    try:
        write = {"Authorization": "Bearer write-tok"}
        status, _, body = node.http.call(
            "POST", "/jobs", {"id": "j", "type": "unico", "timestamp": round(time.time() + 3600),
                              "webhook_url": receiver.url("/ok")}, headers=write,
        )  # fmt: skip
        assert status == 200, body
        assert _trigger(node, "j")[0] == 401
        assert _trigger(node, "j", {"Authorization": "Bearer read-tok"})[0] == 403
        assert _trigger(node, "j", write)[0] == 202
        receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=15)
    finally:
        node.stop_if_running()


def test_a_trigger_sent_to_a_follower_is_made_by_the_leader(
    tmp_path: Path, receiver: Receiver
) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = wait_leader(cluster)
        follower = next(n for n in cluster if n is not leader)
        _create(leader, id="far", type="unico", timestamp=round(time.time() + 3600),
                webhook_url=receiver.url("/ok"))  # fmt: skip
        status, _, answer = _trigger(follower, "far")
        assert status == 202, answer
        receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=20)
        (req,) = receiver.received("/ok")
        assert req.headers["Idempotency-Key"] == answer["idempotency_key"]
        assert _wait_trigger_done(leader, "far")["node_id"] == leader.node_id
        assert len(receiver.received("/ok")) == 1
