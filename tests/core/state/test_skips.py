"""Runs not fired, in the state machine: one executions entry per skip decision."""

from __future__ import annotations

from scheduled_db.jobs.model import JobStatus, SkipReason
from scheduled_db.state import commands as c
from scheduled_db.state import queries
from scheduled_db.state import records as r
from scheduled_db.state.results import ResultCode
from tests.fsm_helpers import Machine, check_invariants, spec

HOUR = 3_600_000
T = 1_900_000_000_000 - 1_900_000_000_000 % HOUR
OK = ResultCode.OK


def _ran(m: Machine, at: int = T) -> None:
    assert m.one(c.ClaimOccurrence("j1", at, 1, "n1", 1, at)).code is OK
    done = c.RecordOutcome("j1", at, 1, JobStatus.COMPLETED, at + 10, http_status=200)
    assert m.one(done).code is OK


def test_a_complete_with_skips_writes_one_entry_per_skip_and_never_twice() -> None:
    m = Machine()
    m.one(c.CreateJob(spec("j1", recurring=True), 10, T))
    _ran(m)
    skips = (c.Skip(SkipReason.MISFIRE, T + HOUR, 1), c.Skip(SkipReason.OVERLAP, T + 2 * HOUR, 2))
    res = m.one(c.CompleteOccurrence("j1", T, T + 4 * HOUR, None, T + 4 * HOUR - 5, skips))
    assert res.code is OK and [(a.scheduled_at_ms, a.skipped_runs) for a in res.skips] == [
        (T + HOUR, 1),
        (T + 2 * HOUR, 2),
    ]
    entries = [a for a in queries.executions(m.state, "j1") if a.status is JobStatus.SKIPPED]
    assert [(a.attempt_num, a.skip_reason, a.end_time_ms) for a in entries] == [
        (0, SkipReason.MISFIRE, T + 4 * HOUR - 5),
        (0, SkipReason.OVERLAP, T + 4 * HOUR - 5),
    ]
    raw = m.state.get(r.COUNTERS)
    assert raw is not None and r.decode_counters(raw).last_executed_ms == T + 10  # ran: not a skip
    page = queries.recent_attempts(m.state, status=JobStatus.SKIPPED)
    assert len(page.attempts) == 2
    check_invariants(m.state)


def test_a_resume_records_the_runs_missed_while_paused() -> None:
    m = Machine()
    m.one(c.CreateJob(spec("j1", recurring=True), 10, T))
    m.one(c.PauseJob("j1"))
    resumed = c.ResumeJob("j1", T + 3 * HOUR, (c.Skip(SkipReason.PAUSED, T, 3),), T + 3 * HOUR + 5)
    res = m.one(resumed)
    assert res.code is OK and res.job is not None and res.job.next_run_at_ms == T + 3 * HOUR
    (entry,) = res.skips
    assert (entry.scheduled_at_ms, entry.skip_reason, entry.skipped_runs) == (
        T,
        SkipReason.PAUSED,
        3,
    )
    assert c.decode_command(c.encode_command(resumed)) == resumed
    plain = c.ResumeJob("j1")
    assert c.encode_command(plain) == c.encode_command(c.ResumeJob("j1", None, (), 0))
    check_invariants(m.state)
