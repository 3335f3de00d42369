"""Reads over the state: paging with opaque cursors, status filter, due order."""

from __future__ import annotations

import pytest

from scheduled_db.jobs.model import JobStatus
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
