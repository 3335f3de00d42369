"""Overlap policies and skipped runs end to end: a real node, a real receiver.

A job fires every second at a receiver that holds its first request for three
seconds (the receiver is slower than the period: that hold is the scenario, not a
wait for the node).  With ``skip`` no two runs are ever in flight together and the
runs that came due meanwhile are recorded as one ``skipped`` executions entry and
counted in scheduled_db_occurrences_skipped_total; with ``buffer_one`` the latest of
them fires as soon as the first ends.  A pause records the runs it passed over."""

from __future__ import annotations

import json
import time
from typing import Any

from scheduled_db.client import Client
from scheduled_db.testing.harness import Http, NodeProcess, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.test_delivery import FastNode, _attempts, _create

HOLD_S = 3.2  # how long the receiver holds the first request: over three periods


def _skipped(node: NodeProcess, reason: str) -> float:
    status, _, text = Http(f"http://127.0.0.1:{node.metrics_port}").call("GET", "/metrics")
    assert status == 200
    line = f'scheduled_db_occurrences_skipped_total{{reason="{reason}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def _skip_entries(node: NodeProcess, job_id: str) -> list[dict[str, Any]]:
    return [a for a in _attempts(node, job_id) if a["status"] == "skipped"]


def _first_end_ms(node: NodeProcess, occurrence_ms: int) -> int:
    """When the first run's attempt ended (its response came), from the executions."""
    (attempt,) = [a for a in _attempts(node, "tick") if a["scheduled_at_ms"] == occurrence_ms]
    return int(attempt["end_time_ms"])


def _hold_the_first_run(node: FastNode, receiver: Receiver, **extra: Any) -> float:
    """Create the job, let the receiver hold its first request HOLD_S, release it;
    the time it was released."""
    _create(node, id="tick", type="recurrente", cron_expression="* * * * * *",
            webhook_url=receiver.url("/block"), timeout="30s", **extra)  # fmt: skip
    receiver.wait_until(lambda r: r.in_flight == 1, timeout=10)
    time.sleep(HOLD_S)  # the receiver is slower than the period (the scenario)
    released = time.time()
    receiver.release(100)
    return released


def test_skip_never_overlaps_and_records_the_runs_it_passed_over(
    node: FastNode, receiver: Receiver
) -> None:
    released = _hold_the_first_run(node, receiver)
    receiver.wait_until(lambda r: len(r.received("/block")) >= 3, timeout=10)
    node.http.call("POST", "/jobs/tick/pause")
    first, second = (json.loads(r.body) for r in receiver.received("/block")[:2])
    assert receiver.max_in_flight == 1
    ended = _first_end_ms(node, first["scheduled_at_ms"])
    assert ended >= int(released * 1000)
    # Nothing due while the first was out was fired: the next run after it ended was.
    assert ended < second["scheduled_at_ms"] <= ended + 1000
    wait_until(lambda: _skip_entries(node, "tick"), 10, "the skipped entry")
    (entry,) = _skip_entries(node, "tick")
    assert entry["skip_reason"] == "overlap" and entry["attempt_num"] == 0
    assert entry["scheduled_at_ms"] == first["scheduled_at_ms"] + 1000
    # Every run from the one after the first up to the release: at least three.
    assert entry["skipped_runs"] == (second["scheduled_at_ms"] - entry["scheduled_at_ms"]) // 1000
    assert entry["skipped_runs"] >= 3
    wait_until(lambda: _skipped(node, "overlap") == entry["skipped_runs"], 10, "the count")
    status, _, page = node.http.call("GET", "/executions?status=skipped&job_id=tick")
    assert status == 200 and [e["scheduled_at_ms"] for e in page["executions"]] == [
        entry["scheduled_at_ms"]
    ]
    (typed,) = Client(node.base).list_executions(status="skipped", job_id="tick").items
    assert (typed.skip_reason, typed.skipped_runs) == ("overlap", entry["skipped_runs"])


def test_buffer_one_fires_the_latest_run_that_came_due_at_once(
    node: FastNode, receiver: Receiver
) -> None:
    released = _hold_the_first_run(node, receiver, overlap="buffer_one")
    receiver.wait_until(lambda r: len(r.received("/block")) >= 2, timeout=10)
    node.http.call("POST", "/jobs/tick/pause")
    first, second = receiver.received("/block")[:2]
    kept = json.loads(second.body)["scheduled_at_ms"]
    first_ms = json.loads(first.body)["scheduled_at_ms"]
    assert receiver.max_in_flight == 1
    ended = _first_end_ms(node, first_ms)
    assert ended >= int(released * 1000)
    assert kept <= ended < kept + 1000  # the latest run that came due while it was held
    wait_until(lambda: _skip_entries(node, "tick"), 10, "the skipped entry")
    (entry,) = _skip_entries(node, "tick")
    assert entry["skip_reason"] == "overlap" and entry["scheduled_at_ms"] == first_ms + 1000
    assert entry["skipped_runs"] == (kept - entry["scheduled_at_ms"]) // 1000 >= 2


def test_a_resume_records_the_runs_missed_while_paused_and_fires_one(
    node: FastNode, receiver: Receiver
) -> None:
    _create(node, id="paused", type="recurrente", cron_expression="* * * * * *",
            webhook_url=receiver.url("/ok"))  # fmt: skip
    receiver.wait_until(lambda r: len(r.received("/ok")) >= 1, timeout=10)
    assert node.http.call("POST", "/jobs/paused/pause")[0] == 200
    time.sleep(HOLD_S)  # runs pass while the job is paused (the scenario)
    before = receiver.received("/ok")
    last_ms = json.loads(before[-1].body)["scheduled_at_ms"]  # the last run before the pause
    asked = time.time()
    status, _, job = node.http.call("POST", "/jobs/paused/resume")
    answered = time.time()
    assert status == 200 and job["paused"] is False
    receiver.wait_until(lambda r: len(r.received("/ok")) > len(before), timeout=10)
    fired = json.loads(receiver.received("/ok")[len(before)].body)["scheduled_at_ms"]
    # One run fires for all those missed (a run claimed just before the pause, or the
    # latest one due before the resume); the others are one skipped entry.
    assert last_ms < fired <= answered * 1000
    wait_until(lambda: _skip_entries(node, "paused"), 10, "the skipped entry")
    (entry,) = _skip_entries(node, "paused")
    assert entry["skip_reason"] == "paused"
    missed_low = (int(asked * 1000) - last_ms) // 1000  # runs due by the resume: between
    missed_high = (int(answered * 1000) - last_ms) // 1000
    assert missed_low - 1 <= entry["skipped_runs"] <= missed_high - 1
    assert entry["skipped_runs"] >= 2
    wait_until(lambda: _skipped(node, "paused") == entry["skipped_runs"], 10, "the count")
    assert node.http.call("POST", "/jobs/paused/pause")[0] == 200  # quiet before teardown


def test_allow_fires_every_run_on_time_beside_the_ones_in_flight(
    node: FastNode, receiver: Receiver
) -> None:
    """The receiver holds every request: runs pile up in flight, each on time with its
    own key and no manual-run mark; released, each completes once, none skipped.  The
    series ends by its last_date, so the runs are a fixed set."""
    last = time.time() + 4.5
    _create(node, id="tick", type="recurrente", cron_expression="* * * * * *", last_date=last,
            webhook_url=receiver.url("/block"), timeout="30s", overlap="allow")  # fmt: skip
    receiver.wait_until(lambda r: r.in_flight >= 3, timeout=10)
    receiver.release(100)

    def all_completed() -> bool:
        attempts = _attempts(node, "tick")
        finished = node.http.call("GET", "/jobs/tick")[2]["status"] == "completed"
        return finished and all(a["status"] == "completed" for a in attempts)

    wait_until(all_completed, 15, "the series to end and every run to complete")
    attempts = _attempts(node, "tick")
    times = sorted(a["scheduled_at_ms"] for a in attempts)
    assert len(times) >= 3 and times[-1] <= last * 1000
    assert all(b - a == 1000 for a, b in zip(times, times[1:], strict=False))  # none skipped
    held = receiver.received("/block")
    bodies = [json.loads(r.body) for r in held]
    assert sorted(b["scheduled_at_ms"] for b in bodies) == times  # one request per run
    assert {r.headers["Idempotency-Key"] for r in held} == {f"tick:{t}" for t in times}
    assert not any("trigger" in b for b in bodies) and not any(a["trigger"] for a in attempts)
    for r, b in zip(held, bodies, strict=True):  # each on time, not after the one before
        assert r.at * 1000 - b["scheduled_at_ms"] < 900, (b, r.at)
    assert receiver.max_in_flight >= 3 and not _skip_entries(node, "tick")
