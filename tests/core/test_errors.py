"""Tests for scheduled_db.errors: messages, details, codes and HTTP statuses."""

from __future__ import annotations

import pytest

from scheduled_db.errors import (
    CapacityExceeded,
    DiskFull,
    InvalidTransition,
    JobConflict,
    JobNotFound,
    NotLeader,
    Overloaded,
    ProposalDropped,
    SchedulerError,
    UnknownOutcome,
    ValidationError,
    safe_text,
)
from scheduled_db.jobs.model import JobStatus


@pytest.mark.parametrize(
    ("error", "status", "code", "builtin"),
    [
        (ValidationError("timestamp", "in the past"), 400, "validation_error", ValueError),
        (JobNotFound("j1"), 404, "job_not_found", LookupError),
        (JobConflict("j1"), 409, "job_conflict", SchedulerError),
        (InvalidTransition("j1", "cancel", "completed"), 400, "invalid_transition", SchedulerError),
        (CapacityExceeded("job_count", 10, 10, 1), 507, "capacity_exceeded", SchedulerError),
        (NotLeader("n2"), 503, "not_leader", ProposalDropped),
        (NotLeader(), 503, "no_leader", ProposalDropped),
        (ProposalDropped("leadership transfer in progress"), 503, "no_leader", SchedulerError),
        (UnknownOutcome("entry was replaced"), 503, "unknown_outcome", SchedulerError),
        (DiskFull(), 507, "disk_full", SchedulerError),
        (Overloaded("write", 128), 503, "overloaded", SchedulerError),
    ],
)
def test_each_error_has_its_status_code_and_nearest_base(
    error: SchedulerError, status: int, code: str, builtin: type
) -> None:
    assert (error.http_status, error.code) == (status, code)
    assert isinstance(error, builtin)


def test_a_refusal_tells_the_client_who_leads_and_keeps_its_reason_for_the_log() -> None:
    assert str(NotLeader("n2")) == "This node is not the leader; the leader is n2"
    assert NotLeader("n2").details() == {"leader": "n2"}
    assert str(NotLeader()) == "No leader available" and NotLeader().details() == {}
    dropped = ProposalDropped("leadership transfer in progress")
    assert str(dropped) == "No leader available"
    assert dropped.why == "leadership transfer in progress"
    assert (NotLeader().retry_after_s, DiskFull().retry_after_s) == (1, 5)


def test_messages() -> None:
    assert str(ValidationError("timestamp", "must be in the future")) == (
        "timestamp: must be in the future"
    )
    assert str(JobNotFound("j1")) == "Job not found: j1"
    assert str(InvalidTransition("j1", "cancel", "completed")) == "Cannot cancel completed job"
    assert str(InvalidTransition("j1", "cancel", JobStatus.COMPLETED)) == (
        "Cannot cancel completed job"
    )
    assert CapacityExceeded("memory", 90, 100, 20).details() == {
        "type": "memory",
        "current": 90,
        "limit": 100,
        "requested": 20,
    }
    assert Overloaded("write", 128).details() == {"limit": 128}
    assert Overloaded("write", 128).retry_after_s == 1
    assert ValidationError("id", "x").details() == {"field": "id"}


def test_client_text_is_one_line_and_bounded() -> None:
    error = ValidationError("a\nb\x00\u2028\ud800", "m" * 1000)
    text = str(error)
    assert "\n" not in text and "\x00" not in text and "\u2028" not in text
    text.encode("utf-8")
    assert error.field == "a\\x0ab\\x00\\u2028\\ud800"
    assert len(text) < 400
    assert safe_text("x" * 300) == "x" * 200 + "..."
    assert safe_text("naïve café") == "naïve café"
