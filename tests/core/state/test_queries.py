"""Reads over the state: paging with opaque cursors, status filter, due order."""

from __future__ import annotations

import pytest

from scheduled_db.jobs.model import JobStatus, JobType
from scheduled_db.state import commands as c
from scheduled_db.state import queries
from tests.fsm_helpers import Machine, spec


def _machine_with(n: int) -> Machine:
    m = Machine()
    m.run(c.Batch(tuple(c.CreateJob(spec(f"job-{i:03d}"), 1, 10_000 - i) for i in range(n))))
    return m


def test_list_jobs_pages_through_everything_once() -> None:
    m = _machine_with(25)
    m.run(*(c.PauseJob(f"job-{i:03d}") for i in range(0, 25, 5)))
    m.run(*(c.CancelJob(f"job-{i:03d}", 5) for i in range(0, 25, 3)))
    for status in (None, JobStatus.CANCELLED, JobStatus.PENDING):
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = queries.list_jobs(m.state, status, cursor, limit=4)
            seen.extend(j.id for j in page.jobs)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        expected = [f"job-{i:03d}" for i in range(25)]
        if status is JobStatus.CANCELLED:
            expected = [f"job-{i:03d}" for i in range(0, 25, 3)]
        elif status is JobStatus.PENDING:
            expected = [x for x in expected if int(x[-3:]) % 3]
        assert seen == expected


def test_cursor_resumes_after_the_listed_job_was_deleted() -> None:
    m = _machine_with(6)
    page = queries.list_jobs(m.state, None, None, limit=3)
    assert page.next_cursor is not None
    m.run(c.DeleteJob("job-002"))
    rest = queries.list_jobs(m.state, None, page.next_cursor, limit=10)
    assert [j.id for j in rest.jobs] == ["job-003", "job-004", "job-005"]
    assert rest.next_cursor is None


@pytest.mark.parametrize("cursor", ["!!!not-base64\xff", "%%%", "", "_w"])
def test_invalid_cursor(cursor: str) -> None:
    with pytest.raises(queries.InvalidCursorError):
        queries.list_jobs(_machine_with(1).state, None, cursor, limit=3)


def test_due_before_is_ordered_and_limited() -> None:
    m = _machine_with(10)
    due = queries.due_before(m.state, 9_995, limit=3)
    assert [j.next_run_at_ms for j in due] == [9_991, 9_992, 9_993]
    assert len(queries.due_before(m.state, 10**12)) == 10


def _run_once(m: Machine, job_id: str, at: int, status: JobStatus, attempt: int = 1) -> None:
    m.run(
        c.ClaimOccurrence(job_id, at, attempt, "n1", 1, at + 1),
        c.RecordOutcome(job_id, at, attempt, status, at + 5, retry_at_ms=None),
    )


def test_current_attempts_are_those_of_the_occurrence_the_job_is_at() -> None:
    m = Machine()
    m.run(c.CreateJob(spec("cron", recurring=True), 1, 1_000), c.CreateJob(spec("new"), 1, 1_000))
    assert queries.current_attempts(m.state, "new") == ()
    assert queries.current_attempts(m.state, "missing") == ()
    _run_once(m, "cron", 1_000, JobStatus.FAILED)
    _run_once(m, "cron", 1_000, JobStatus.COMPLETED, attempt=2)
    assert [a.attempt_num for a in queries.current_attempts(m.state, "cron")] == [1, 2]
    m.run(c.CompleteOccurrence("cron", 1_000, 4_600, None, 1_010))  # on to the next run
    assert queries.current_attempts(m.state, "cron") == ()
    assert len(queries.executions(m.state, "cron")) == 2  # the history keeps them


def test_current_attempts_bound_the_occurrence_whatever_its_last_key_byte() -> None:
    m = Machine()
    at = 0x1FF  # u64 key ends in 0xff: the range end must not overflow that byte
    m.run(c.CreateJob(spec("j", timestamp_ms=at), 1, at))
    _run_once(m, "j", at, JobStatus.COMPLETED)
    assert [a.scheduled_at_ms for a in queries.current_attempts(m.state, "j")] == [at]


def test_the_last_execution_is_the_latest_end_of_an_attempt_that_ran() -> None:
    m = Machine()
    m.run(*(c.CreateJob(spec(f"j{i}", timestamp_ms=1_000 * i), 1, 1_000 * i) for i in (1, 2, 3)))
    assert queries.counters(m.state).last_executed_ms is None
    m.run(c.ClaimOccurrence("j1", 1_000, 1, "n1", 1, 1_001))  # in flight: not run yet
    assert queries.counters(m.state).last_executed_ms is None
    m.run(c.RecordOutcome("j1", 1_000, 1, JobStatus.TIMEOUT, 1_400, retry_at_ms=None))
    assert queries.counters(m.state).last_executed_ms == 1_400
    _run_once(m, "j3", 3_000, JobStatus.FAILED)
    _run_once(m, "j2", 2_000, JobStatus.COMPLETED)  # ended earlier than j3's
    assert queries.counters(m.state).last_executed_ms == 3_005
    claimed, cancelled = m.run(
        c.ClaimOccurrence("j1", 1_000, 2, "n1", 1, 9_000), c.CancelJob("j1", 9_500)
    )
    assert claimed.accepted and cancelled.accepted
    m.run(c.DeleteJob("j3"))  # cut short, and gone: neither changes when a run last ended
    assert queries.counters(m.state).last_executed_ms == 3_005


def _all_pages(m: Machine, where: queries.JobFilter, limit: int = 3) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = queries.list_jobs(m.state, None, cursor, limit, where)
        seen.extend(j.id for j in page.jobs)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_filters_combine_with_and_over_every_index_and_page_by_cursor() -> None:
    """Each filter alone and combined (label, type, paused, status, id prefix) gives
    what a scan of every job with the same conditions gives, page after page."""
    m = Machine()
    creates = []
    for i in range(30):
        labels = (("team", "a" if i % 2 else "b"),) + ((("env", "prod"),) if i % 3 == 0 else ())
        job_id = f"{'inv' if i % 5 else 'rep'}-{i:02d}"
        creates.append(c.CreateJob(spec(job_id, i % 4 == 0, labels=labels), 1, 10_000 + i))
    m.run(c.Batch(tuple(creates)))
    m.run(*(c.PauseJob(f"inv-{i:02d}") for i in (1, 2, 3, 7, 11)))
    m.run(c.CancelJob("inv-13", 5))
    every = queries.list_jobs(m.state, None, None, 1000).jobs
    wheres = [
        queries.JobFilter(labels=(("team", "a"),)),
        queries.JobFilter(labels=(("env", "prod"), ("team", "b"))),
        queries.JobFilter(job_type=JobType.RECURRENTE),
        queries.JobFilter(paused=True),
        queries.JobFilter(paused=False, id_prefix="inv-1"),
        queries.JobFilter(status=JobStatus.CANCELLED),
        queries.JobFilter(id_prefix="rep"),
        queries.JobFilter(id_prefix="inv-0", labels=(("team", "a"),), job_type=JobType.UNICO),
        queries.JobFilter(id_prefix="nothing"),
    ]
    for where in wheres:
        expected = [j.id for j in every if where.matches(j)]
        assert _all_pages(m, where) == expected, where
    assert _all_pages(m, queries.JobFilter(id_prefix="rep")) == [
        "rep-00", "rep-05", "rep-10", "rep-15", "rep-20", "rep-25"
    ]  # fmt: skip
