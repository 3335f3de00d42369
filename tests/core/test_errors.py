"""Tests for scheduled_db.errors: messages, JSON bodies and HTTP statuses."""

from __future__ import annotations

import json

import pytest

from scheduled_db.errors import (
    CapacityExceeded,
    InvalidTransition,
    JobConflict,
    JobNotFound,
    NoLeader,
    NotLeaderError,
    Overloaded,
    SchedulerError,
    ValidationError,
    safe_text,
)
from scheduled_db.jobs.model import JobStatus


@pytest.mark.parametrize(
    ("error", "status", "builtin"),
    [
        (ValidationError("timestamp", "must be in the future"), 400, ValueError),
        (JobNotFound("j1"), 404, LookupError),
        (JobConflict("j1"), 409, SchedulerError),
        (InvalidTransition("j1", "cancel", "completed"), 409, SchedulerError),
        (CapacityExceeded("job_count", 10, 10, 1), 507, SchedulerError),
        (NotLeaderError("n2", "10.0.0.2:8080"), 503, SchedulerError),
        (NoLeader(), 503, NotLeaderError),
        (Overloaded("write", 128), 503, SchedulerError),
    ],
)
def test_status_and_base(error: SchedulerError, status: int, builtin: type) -> None:
    assert error.http_status == status
    assert isinstance(error, builtin)
    body = error.to_json()
    assert body["error"] == error.code and body["message"] == str(error)
    json.dumps(body)


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
    assert NotLeaderError("n2", "h:1").details() == {"leader_id": "n2", "leader_address": "h:1"}
    assert NoLeader().to_json()["leader_id"] is None
    assert Overloaded("write", 128).details() == {"limit": 128}
    assert Overloaded("write", 128).retry_after_s == 1
    assert ValidationError("id", "x").to_json() == {
        "error": "validation_error",
        "message": "id: x",
        "field": "id",
    }


def test_client_text_is_one_line_and_bounded() -> None:
    error = ValidationError("a\nb\x00\u2028\ud800", "m" * 1000)
    text = str(error)
    assert "\n" not in text and "\x00" not in text and "\u2028" not in text
    text.encode("utf-8")
    assert error.field == "a\\x0ab\\x00\\u2028\\ud800"
    assert len(text) < 400
    assert safe_text("x" * 300) == "x" * 200 + "..."
    assert safe_text("naïve café") == "naïve café"
