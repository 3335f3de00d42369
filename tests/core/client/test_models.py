"""scheduled_db.client's typed answers and errors, read from JSON with plain calls."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from scheduled_db.client import (
    ApiError,
    BatchResult,
    Conflict,
    Execution,
    Job,
    NotFound,
    PreconditionFailed,
    Unavailable,
    UnexpectedAnswer,
    since_param,
)
from scheduled_db.client.errors import api_error

OLD_JOB = {"id": "a", "type": "unico", "status": "pending", "timestamp_ms": 1_900_000_000_000}


def test_a_job_from_a_server_before_labels_and_versions() -> None:
    job = Job.from_raw(OLD_JOB)
    assert (job.labels, job.version, job.paused) == ({}, None, False)
    assert job.timestamp_ms == 1_900_000_000_000 and job.next_run_at is None


def test_instants_read_as_utc_datetimes() -> None:
    job = Job.from_raw({**OLD_JOB, "next_run_at_ms": 1_900_000_000_500})
    assert job.next_run_at == datetime(2030, 3, 17, 17, 46, 40, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([], "a job is not a JSON object"),
        ({"type": "unico", "status": "pending"}, 'a job has no "id" (str)'),
        ({**OLD_JOB, "id": 7}, 'a job has no "id" (str)'),
    ],
)
def test_a_job_that_is_not_one(raw: object, problem: str) -> None:
    with pytest.raises(UnexpectedAnswer, match=re.escape(problem)) as caught:
        Job.from_raw(raw)
    assert caught.value.body == raw


def test_an_optional_field_of_the_wrong_type_reads_as_absent() -> None:
    assert Job.from_raw({**OLD_JOB, "version": "3", "labels": ["x"]}).version is None
    assert Job.from_raw({**OLD_JOB, "version": True}).version is None  # a bool is no count


def test_an_execution_is_a_trigger_only_when_marked() -> None:
    assert not Execution.from_raw({"status": "completed"}).trigger
    assert Execution.from_raw({"status": "completed", "trigger": True}).trigger


def test_a_batch_result_splits_jobs_from_errors() -> None:
    result = BatchResult.from_raw(
        {
            "results": [
                {"index": 0, "status": 200, "job": OLD_JOB},
                {"index": 1, "status": 409, "error": "taken", "code": "job_conflict"},
            ]
        }
    )
    assert [j.id for j in result.jobs] == ["a"]
    assert [(e.index, e.code, e.message) for e in result.errors] == [(1, "job_conflict", "taken")]
    with pytest.raises(UnexpectedAnswer, match='no "results" list'):
        BatchResult.from_raw({"jobs": []})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, NotFound),
        (409, Conflict),
        (412, PreconditionFailed),
        (503, Unavailable),
        (418, ApiError),
    ],
)
def test_the_error_class_follows_the_status(status: int, kind: type[ApiError]) -> None:
    body = {"error": "no", "code": "some_code", "field": "x"}
    error = api_error(status, "Reason", body, "{}", 2.0)
    assert type(error) is kind
    assert (error.status, error.code, error.message, error.field, error.retry_after) == (
        status, "some_code", "no", "x", 2.0,
    )  # fmt: skip
    assert str(error) == f"HTTP {status} some_code: no"


def test_since_as_the_server_takes_it() -> None:
    now = 1_800_000_000.0
    assert since_param(timedelta(hours=1), now) == "1799996400"
    assert since_param(datetime(2027, 1, 15, 8, 0, tzinfo=UTC), now) == "1800000000"
    assert since_param(1_700_000_000.25, now) == "1700000000.250"
    assert since_param("2027-01-15T09:00:00+01:00", now) == "2027-01-15T09:00:00+01:00"
    with pytest.raises(ValueError, match="aware"):
        since_param(datetime(2027, 1, 15), now)
