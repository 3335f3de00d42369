"""overlap: allow in the state machine: each occurrence starts as a run of its own
(StartRun), and the job moves on to its next run while it is in flight."""

from __future__ import annotations

from scheduled_db.jobs.model import JobStatus, Overlap, SkipReason
from scheduled_db.state import commands as c
from scheduled_db.state import queries
from scheduled_db.state import records as r
from scheduled_db.state.results import ResultCode
from tests.fsm_helpers import Machine, check_invariants, spec

S = 1_000  # a run every second
T = 1_900_000_000_000
OK = ResultCode.OK


def _allow(m: Machine, **kw: object) -> None:
    every_second = spec(
        "j1", recurring=True, cron_expression="* * * * * *", overlap=Overlap.ALLOW, **kw
    )
    assert m.one(c.CreateJob(every_second, 10, T)).code is OK


def _start(at: int, next_ms: int | None, term: int = 1) -> c.StartRun:
    return c.StartRun("j1", at, "n1", term, at - 100, next_ms)


def _done(at: int, attempt: int = 1, status: JobStatus = JobStatus.COMPLETED) -> c.RecordOutcome:
    return c.RecordOutcome("j1", at, attempt, status, at + 5, http_status=200, trigger=True)


def test_occurrences_start_as_runs_and_overlap_each_under_its_own_key() -> None:
    m = Machine()
    _allow(m)
    first = m.one(_start(T, T + S))
    assert first.code is OK and first.kind is c.CommandKind.START_RUN
    assert first.trigger is not None and first.trigger.scheduled and first.trigger.claim_open
    assert first.attempt is not None and first.attempt.trigger and not first.attempt.manual
    assert first.job is not None and first.job.status is JobStatus.PENDING
    assert first.job.next_run_at_ms == T + S  # the schedule went on at once
    second = m.one(_start(T + S, T + 2 * S))  # while the first is in flight
    assert second.code is OK and second.trigger is not None and second.trigger.scheduled
    open_claims = {(a.scheduled_at_ms, a.manual) for a in queries.open_claims(m.state)}
    assert open_claims == {(T, False), (T + S, False)}
    assert m.one(_done(T + S)).code is OK and m.one(_done(T)).code is OK  # in any order
    assert queries.open_claims(m.state) == () and queries.triggers(m.state) == ()
    done = [(a.scheduled_at_ms, a.status, a.manual) for a in queries.executions(m.state, "j1")]
    assert sorted(done) == [(T, JobStatus.COMPLETED, False), (T + S, JobStatus.COMPLETED, False)]
    check_invariants(m.state)


def test_a_failed_run_retries_as_its_own_and_a_paused_job_starts_and_retries_nothing() -> None:
    m = Machine()
    _allow(m)
    m.one(_start(T, T + S))
    failed = c.RecordOutcome("j1", T, 1, JobStatus.FAILED, T + 5, http_status=503,
                             retry_at_ms=T + 500, trigger=True)  # fmt: skip
    assert m.one(failed).code is OK
    (due,) = queries.due_triggers(m.state, T + 1_000)
    assert (due.occurrence_ms, due.attempts, due.scheduled) == (T, 1, True)
    m.one(c.PauseJob("j1"))
    assert queries.due_triggers(m.state, T + 1_000) == []  # waits for the resume
    retry = c.ClaimOccurrence("j1", T, 2, "n1", 1, T + 500, trigger=True)
    assert m.one(retry).code is ResultCode.STALE
    assert m.one(_start(T + S, T + 2 * S)).code is ResultCode.ILLEGAL_TRANSITION
    m.one(c.ResumeJob("j1"))
    assert m.one(retry).code is OK
    check_invariants(m.state)


def test_the_end_of_the_schedule_completes_the_job_and_its_last_run_goes_on() -> None:
    m = Machine()
    _allow(m)
    last = m.one(_start(T, None))
    assert last.job is not None and last.job.status is JobStatus.COMPLETED
    assert m.one(_done(T)).code is OK
    (a,) = queries.executions(m.state, "j1")
    assert a.status is JobStatus.COMPLETED
    check_invariants(m.state)


def test_a_cancel_ends_the_started_runs() -> None:
    m = Machine()
    _allow(m)
    m.one(_start(T, T + S))
    m.one(c.CancelJob("j1", T + 10))
    assert queries.triggers(m.state) == () and queries.open_claims(m.state) == ()
    (a,) = queries.executions(m.state, "j1")
    assert a.status is JobStatus.CANCELLED
    check_invariants(m.state)


def test_a_manual_run_on_the_same_millisecond_makes_the_occurrence_an_ordinary_claim() -> None:
    m = Machine()
    _allow(m)
    assert m.one(c.TriggerJob("j1", T)).code is OK  # asked for at the occurrence's very ms
    res = m.one(_start(T, T + S))
    assert res.code is OK and res.kind is c.CommandKind.CLAIM and res.trigger is None
    assert res.job is not None and res.job.status is JobStatus.IN_PROGRESS
    check_invariants(m.state)


def test_a_job_that_is_not_allow_is_claimed_the_ordinary_way_and_records_keep_their_bytes() -> None:
    m = Machine()
    assert m.one(c.CreateJob(spec("j1", recurring=True), 10, T)).code is OK
    res = m.one(_start(T, T + S))
    assert res.kind is c.CommandKind.CLAIM and res.trigger is None
    manual = r.Trigger("j1", T, T)
    assert r.decode_trigger(manual.key, r.encode_trigger(manual)) == manual
    assert len(r.encode_trigger(manual)) < len(
        r.encode_trigger(r.Trigger("j1", T, T, scheduled=True))
    )
    started = r.Trigger("j1", T, T, 1, True, "n1", 1, scheduled=True)
    assert r.decode_trigger(started.key, r.encode_trigger(started)) == started
    cmd = c.StartRun("j1", T, "n1", 1, T - 100, T + S, (c.Skip(SkipReason.MISFIRE, T + S, 2),))
    assert c.decode_command(c.encode_command(cmd)) == cmd
