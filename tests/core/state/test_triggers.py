"""Triggered runs in the state machine: one delivery now, beside the job's schedule."""

from __future__ import annotations

import msgpack

from scheduled_db.jobs.model import JobStatus, idempotency_key
from scheduled_db.state import commands as c
from scheduled_db.state import queries
from scheduled_db.state import records as r
from scheduled_db.state.results import ResultCode
from tests.fsm_helpers import Machine, check_invariants, spec

OK = ResultCode.OK
T = 5_000  # when the trigger is asked for


def _job_bytes(m: Machine, job_id: str = "j1") -> bytes | None:
    return m.state.get(r.job_key(job_id))


def _triggered(m: Machine, job_id: str = "j1", at: int = T) -> int:
    res = m.one(c.TriggerJob(job_id, at))
    assert res.code is OK and res.trigger is not None
    return res.trigger.asked_ms


def _claim(job_id: str, at: int, attempt: int = 1, term: int = 1) -> c.ClaimOccurrence:
    return c.ClaimOccurrence(job_id, at, attempt, "n1", term, at + 1, trigger=True)


def _outcome(
    at: int, attempt: int = 1, status: JobStatus = JobStatus.COMPLETED, retry: int | None = None
) -> c.RecordOutcome:
    return c.RecordOutcome(
        "j1", at, attempt, status, at + 20, http_status=200, response_time_ms=10,
        retry_at_ms=retry, trigger=True,
    )  # fmt: skip


def test_a_trigger_runs_once_beside_the_schedule_and_leaves_the_job_as_it_was() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(recurring=True), 10, 3_600_000))
    before = _job_bytes(m)
    asked = _triggered(m)
    assert asked == T and _job_bytes(m) == before
    (due,) = queries.due_occurrences(m.state, T + 1)
    assert (due.occurrence_ms, due.attempts, due.fire_at_ms, due.trigger) == (T, 0, T, True)
    claimed = m.one(_claim("j1", T))
    assert claimed.code is OK and claimed.attempt is not None and claimed.attempt.trigger
    assert queries.open_claims(m.state) == (claimed.attempt,)
    assert queries.due_occurrences(m.state, T + 1) == ()
    done = m.one(_outcome(T))
    assert done.code is OK and done.trigger is None  # final: the run's record is gone
    assert m.state.get(r.trigger_key("j1", T)) is None and queries.open_claims(m.state) == ()
    (a,) = queries.executions(m.state, "j1")
    assert a.trigger and a.status is JobStatus.COMPLETED and a.scheduled_at_ms == T
    assert _job_bytes(m) == before  # status, next run, attempt count: untouched
    check_invariants(m.state)


def test_a_failed_triggered_attempt_is_retried_in_the_same_run() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000_000))
    m.one(c.TriggerJob("j1", T))
    m.one(_claim("j1", T))
    failed = m.one(_outcome(T, status=JobStatus.FAILED, retry=T + 700))
    assert failed.code is OK and failed.trigger is not None
    assert queries.due_occurrences(m.state, T + 700) == ()
    (due,) = queries.due_occurrences(m.state, T + 701)
    assert (due.occurrence_ms, due.attempts, due.fire_at_ms, due.trigger) == (T, 1, T + 700, True)
    assert m.one(_claim("j1", T, attempt=1)).code is ResultCode.STALE
    second = m.one(_claim("j1", T, attempt=2))
    assert second.attempt is not None and second.attempt.start_time_ms == T + 700
    assert m.one(_outcome(T, attempt=2)).code is OK
    attempts = queries.executions(m.state, "j1")
    assert [(a.attempt_num, a.status) for a in attempts] == [
        (1, JobStatus.FAILED),
        (2, JobStatus.COMPLETED),
    ]
    check_invariants(m.state)


def test_a_newer_term_claims_again_an_attempt_left_open_and_an_older_one_cannot() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000_000))
    m.one(c.TriggerJob("j1", T))
    m.one(_claim("j1", T, term=1))
    assert m.one(_claim("j1", T, attempt=2, term=1)).code is ResultCode.STALE
    refire = m.one(_claim("j1", T, attempt=2, term=2))
    assert refire.code is OK and refire.trigger is not None and refire.trigger.claim_term == 2
    assert m.one(_outcome(T, attempt=1)).code is ResultCode.STALE  # the deposed term's
    (open_claim,) = queries.open_claims(m.state)
    assert (open_claim.attempt_num, open_claim.term, open_claim.trigger) == (2, 2, True)
    check_invariants(m.state)


def test_a_trigger_and_a_scheduled_run_in_the_same_millisecond_keep_apart() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(timestamp_ms=T), 10, T))
    m.one(c.TriggerJob("j1", T))
    assert len(queries.due_occurrences(m.state, T + 1)) == 2
    assert m.one(c.ClaimOccurrence("j1", T, 1, "n1", 1, T)).code is OK
    assert m.one(_claim("j1", T)).code is OK
    assert len(queries.open_claims(m.state)) == 2
    assert m.one(_outcome(T, status=JobStatus.FAILED)).code is OK
    scheduled = c.RecordOutcome("j1", T, 1, JobStatus.COMPLETED, T + 30)
    assert m.one(scheduled).code is OK
    attempts = queries.executions(m.state, "j1")
    assert sorted((a.trigger, a.status) for a in attempts) == [
        (False, JobStatus.COMPLETED),
        (True, JobStatus.FAILED),
    ]
    (current,) = queries.current_attempts(m.state, "j1")
    assert not current.trigger
    assert idempotency_key("j1", T) != idempotency_key("j1", T, trigger=True)
    check_invariants(m.state)


def test_two_triggers_in_one_millisecond_are_two_runs() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000_000))
    assert [_triggered(m) for _ in range(3)] == [T, T + 1, T + 2]
    m.one(_claim("j1", T))
    m.one(_outcome(T))
    assert _triggered(m, at=T) == T + 3  # its history keeps T taken once it is done
    check_invariants(m.state)


def test_paused_and_finished_jobs_take_triggers_cancelled_and_unknown_ones_do_not() -> None:
    m = Machine()
    m.one(c.CreateJob(spec("paused"), 10, 1_000_000))
    m.one(c.PauseJob("paused"))
    assert m.one(c.TriggerJob("paused", T)).code is OK
    m.one(c.CreateJob(spec("done"), 10, 1_000))
    m.one(c.ClaimOccurrence("done", 1_000, 1, "n1", 1, 1_000))
    m.one(c.RecordOutcome("done", 1_000, 1, JobStatus.COMPLETED, 1_010))
    m.one(c.CompleteOccurrence("done", 1_000, None, None, 1_010))
    before = _job_bytes(m, "done")
    assert m.one(c.TriggerJob("done", T)).code is OK
    assert m.one(_claim("done", T)).code is OK
    assert _job_bytes(m, "done") == before  # a re-run leaves it completed
    m.one(c.CreateJob(spec("gone"), 10, 1_000_000))
    m.one(c.CancelJob("gone", 20))
    refused = m.one(c.TriggerJob("gone", T))
    assert refused.code is ResultCode.ILLEGAL_TRANSITION and refused.detail == "cancelled"
    assert m.one(c.TriggerJob("nope", T)).code is ResultCode.NOT_FOUND
    check_invariants(m.state)


def test_a_cancel_ends_the_triggered_runs_and_refuses_their_late_outcome() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000_000))
    m.one(c.TriggerJob("j1", T))
    m.one(c.TriggerJob("j1", T + 5))
    m.one(_claim("j1", T))
    assert m.one(c.CancelJob("j1", T + 10)).code is OK
    assert queries.triggers(m.state) == () and queries.due_occurrences(m.state, 10**9) == ()
    assert m.one(_outcome(T)).code is ResultCode.ILLEGAL_TRANSITION
    (a,) = queries.executions(m.state, "j1")
    assert a.trigger and a.status is JobStatus.CANCELLED and a.end_time_ms == T + 10
    check_invariants(m.state)


def test_a_delete_removes_the_runs_and_their_history() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000_000))
    m.one(c.TriggerJob("j1", T))
    m.one(_claim("j1", T))
    m.one(c.TriggerJob("j1", T + 1))
    assert m.one(c.DeleteJob("j1")).code is OK
    assert [k for k, _ in m.state.iter_range(b"", b"\xff") if not k.startswith(b"m/")] == []
    check_invariants(m.state)


def test_prune_keeps_an_open_triggered_attempt_and_drops_a_finished_one() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000_000))
    m.one(c.TriggerJob("j1", T))
    m.one(_claim("j1", T))
    m.one(_outcome(T))
    m.one(c.TriggerJob("j1", T + 100))
    m.one(_claim("j1", T + 100))
    assert m.one(c.PruneHistory(10**9, 10)).count == 1
    (left,) = queries.executions(m.state, "j1")
    assert left.scheduled_at_ms == T + 100 and left.status is JobStatus.IN_PROGRESS
    check_invariants(m.state)


def test_claims_and_outcomes_without_the_flag_encode_as_before_triggers() -> None:
    claim = c.ClaimOccurrence("job-1", 1_800_000_000_000, 1, "n1", 3, 1_799_999_999_000)
    old = [4, "job-1", 1_800_000_000_000, 1, "n1", 3, 1_799_999_999_000]
    assert c.encode_command(claim) == bytes([1]) + msgpack.packb(old, use_bin_type=True)
    outcome = c.RecordOutcome("a", 5, 1, JobStatus.FAILED, 9, retry_at_ms=20)
    old = [5, "a", 5, 1, "failed", 9, None, None, None, None, 20]
    assert c.encode_command(outcome) == bytes([1]) + msgpack.packb(old, use_bin_type=True)
    for cmd in (claim, outcome):
        flagged = c.decode_command(c.encode_command(cmd))
        assert flagged == cmd
    triggered = c.ClaimOccurrence("a", 5, 1, "n1", 3, 4, trigger=True)
    assert c.decode_command(c.encode_command(triggered)) == triggered
    assert c.decode_command(c.encode_command(c.TriggerJob("a", 5))) == c.TriggerJob("a", 5)


def test_due_occurrences_merge_runs_and_schedules_by_fire_time_within_the_limit() -> None:
    m = Machine()
    m.one(c.CreateJob(spec("early"), 10, 1_000))
    m.one(c.CreateJob(spec("late"), 10, 9_000))
    m.one(c.TriggerJob("late", T))
    due = queries.due_occurrences(m.state, 10_000)
    assert [(d.job.id, d.fire_at_ms, d.trigger) for d in due] == [
        ("early", 1_000, False),
        ("late", T, True),
        ("late", 9_000, False),
    ]
    assert [d.fire_at_ms for d in queries.due_occurrences(m.state, 10_000, limit=2)] == [1_000, T]
