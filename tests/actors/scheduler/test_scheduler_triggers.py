"""The SchedulerActor and triggered runs (POST /jobs/{id}/trigger): claimed before
they fire, retried, fired again by a new leader, beside the job's schedule.

Same world as test_scheduler.py: real Raft and Storage actors, an injected clock,
a probe in place of the WebhookActor.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from actors.raft.messages import GetRaftStatus, Leadership
from actors.runtime.replies import wait_reply
from actors.scheduler.messages import Wake
from actors.storage.messages import Read
from actors.webhook.messages import AbortDelivery, Deliver
from scheduled_db.jobs.model import Attempt, JobStatus
from scheduled_db.state import commands as c
from scheduled_db.state.reads import GetExecutions, GetJob
from tests.actors.scheduler.test_scheduler import T0, URL, T, World, _create, _unico


def _trigger(world: World, job_id: str, at: int) -> int:
    out = world.propose(c.TriggerJob(job_id, at))
    (result,) = out.results
    assert result.code.value == "ok" and result.trigger is not None, result
    return result.trigger.asked_ms


def _attempts(world: World, job_id: str) -> tuple[Attempt, ...]:
    found: tuple[Attempt, ...] = wait_reply(
        world.storage, lambda r: Read(0, GetExecutions(job_id), r), T
    ).value
    return found


def _wait_attempts(
    world: World, job_id: str, pred: Callable[[tuple[Attempt, ...]], object]
) -> tuple[Attempt, ...]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = _attempts(world, job_id)
        if pred(got):
            return got
        world.scheduler.ask(Wake())
    raise AssertionError(f"attempts of {job_id} never satisfied the condition: {got}")


def test_a_trigger_fires_now_once_and_leaves_the_schedule_alone(world: World) -> None:
    due = T0 + 3_600_000
    _create(world, _unico("t", due), due)
    before = world.job("t")
    asked = _trigger(world, "t", T0)
    world.at(T0)
    (d,) = world.delivers(1)
    assert (d.job_id, d.scheduled_at_ms, d.attempt, d.trigger, d.url) == ("t", asked, 1, True, URL)
    world.answer(d, ok=True, http_status=200)
    (a,) = _wait_attempts(world, "t", lambda got: got and got[0].end_time_ms is not None)
    assert a.trigger and a.status is JobStatus.COMPLETED
    assert world.job("t") == before
    world.at(T0 + 5_000)
    assert len(world.webhook.of_type(Deliver)) == 1  # once


def test_a_trigger_and_the_scheduled_run_are_in_flight_together(world: World) -> None:
    due = T0 + 1_000
    _create(world, _unico("both", due), due)
    world.at(due)
    (scheduled,) = world.delivers(1)
    _trigger(world, "both", due)
    triggered = world.delivers(2)[1]
    assert (scheduled.trigger, triggered.trigger) == (False, True)
    world.answer(triggered, ok=True, http_status=200)
    world.answer(scheduled, ok=True, http_status=200)
    world.wait_job("both", lambda j: j.status is JobStatus.COMPLETED)
    got = _wait_attempts(world, "both", lambda got: all(a.end_time_ms for a in got))
    assert sorted(a.trigger for a in got) == [False, True]


def test_a_failed_trigger_is_retried_with_the_same_occurrence(world: World) -> None:
    _create(world, _unico("retry", T0 + 3_600_000), T0 + 3_600_000)
    asked = _trigger(world, "retry", T0)
    world.at(T0)
    (first,) = world.delivers(1)
    world.answer(first, ok=False, http_status=503, error_type="http_error", retryable=True)
    _wait_attempts(world, "retry", lambda got: got and got[0].status is JobStatus.FAILED)
    world.at(T0 + 2_000)  # past the backoff (capped at 1 s here)
    second = world.delivers(2)[1]
    assert (second.scheduled_at_ms, second.attempt, second.trigger) == (asked, 2, True)
    assert world.job("retry").status is JobStatus.PENDING  # the schedule never noticed


def test_a_paused_job_still_runs_a_trigger(world: World) -> None:
    due = T0 + 1_000
    _create(world, _unico("paused", due), due)
    assert world.propose(c.PauseJob("paused")).error is None
    _trigger(world, "paused", T0)
    world.at(due + 1_000)
    (d,) = world.delivers(1)
    assert d.trigger  # and the scheduled run did not go
    world.scheduler.ask(Wake())
    assert len(world.webhook.of_type(Deliver)) == 1


def test_a_triggered_claim_left_by_an_older_term_fires_again_with_the_same_key(
    world: World,
) -> None:
    world.scheduler.tell(Leadership("n1", 1, False, False))  # idle while we plant the claim
    _create(world, _unico("lost", T0 + 3_600_000), T0 + 3_600_000)
    asked = _trigger(world, "lost", T0 - 1_000)
    claim = c.ClaimOccurrence("lost", asked, 1, "n0", 0, asked, trigger=True)
    assert world.propose(claim).results[0].code.value == "ok"
    status = wait_reply(world.raft, GetRaftStatus, T)
    world.scheduler.tell(Leadership("n1", status.term, True, True))
    (d,) = world.delivers(1)
    assert (d.scheduled_at_ms, d.attempt, d.trigger) == (asked, 2, True)


def test_cancelling_a_job_aborts_its_triggered_delivery(world: World) -> None:
    _create(world, _unico("stop", T0 + 3_600_000), T0 + 3_600_000)
    _trigger(world, "stop", T0)
    world.at(T0)
    (d,) = world.delivers(1)
    assert world.propose(c.CancelJob("stop", T0 + 10)).error is None
    assert world.webhook.wait_for(AbortDelivery).job_id == "stop"
    world.answer(d, ok=False, error_type="aborted")
    (a,) = _attempts(world, "stop")
    assert a.status is JobStatus.CANCELLED


def test_a_finished_job_re_run_by_a_trigger_is_kept_until_its_run_ends(
    short_memory: World,
) -> None:
    world = short_memory
    due = T0 + 1_000
    _create(world, _unico("old", due), due)
    world.at(due)
    (d,) = world.delivers(1)
    world.answer(d, ok=True, http_status=200)
    world.wait_job("old", lambda j: j.status is JobStatus.COMPLETED)
    late = due + 120_000  # past the retention: a prune would remove the job
    _trigger(world, "old", late)
    world.at(late)
    rerun = world.delivers(2)[1]
    assert rerun.trigger
    world.at(late + 10_001)  # a prune (every 10 s here) runs while the re-run is out
    assert wait_reply(world.storage, lambda r: Read(0, GetJob("old"), r), T).value is not None
    world.answer(rerun, ok=True, http_status=200)
    _wait_attempts(world, "old", lambda got: any(a.trigger and a.end_time_ms for a in got))
    world.at(late + 20_002)  # the run is over: the next prune removes the job
    deadline = time.monotonic() + 10
    while wait_reply(world.storage, lambda r: Read(0, GetJob("old"), r), T).value is not None:
        assert time.monotonic() < deadline, "the finished job was never pruned"
        world.scheduler.ask(Wake())
