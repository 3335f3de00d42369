"""The pure parts of the client subcommands: the patch of ``jobs update``, the file of
``jobs batch``, ``--since`` and ``--label``."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from pathlib import Path

import pytest

from scheduled_db.cli.errors import UsageError
from scheduled_db.cli.job_commands import batch_jobs, label_pair, update_patch
from scheduled_db.cli.listing import since_value


def test_set_builds_a_merge_patch() -> None:
    sets = [
        "cron_expression=*/5 * * * *",
        "max_attempts=5",
        'payload={"a": [1]}',
        "labels.team=billing",
        "labels.old=null",
        'labels.build="42"',
        "last_date=null",
    ]
    assert update_patch(None, None, sets) == {
        "cron_expression": "*/5 * * * *",
        "max_attempts": 5,
        "payload": {"a": [1]},
        "labels": {"team": "billing", "old": None, "build": "42"},
        "last_date": None,
    }


def test_set_lays_over_a_patch_file(tmp_path: Path) -> None:
    path = tmp_path / "patch.json"
    path.write_text('{"timezone": "UTC", "labels": {"a": "1"}}')
    assert update_patch(None, str(path), ["labels.b=2x"]) == {
        "timezone": "UTC",
        "labels": {"a": "1", "b": "2x"},
    }


@pytest.mark.parametrize(
    ("text", "sets", "problem"),
    [
        (None, [], "jobs update: give the change as --set"),
        (None, ["novalue"], "--set: give KEY=VALUE (got 'novalue')"),
        ("[1]", [], "jobs update: the patch must be a JSON object"),
        ('{"labels": 3}', ["labels.a=b"], "--set labels.a: labels is not an object"),
        ("{nope", [], "jobs update: --json is not valid JSON"),
    ],
)
def test_update_usage_errors(text: str | None, sets: list[str], problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        update_patch(text, None, sets)


def test_a_batch_file_is_an_object_with_jobs_or_a_list() -> None:
    jobs = [{"id": "a"}, {"id": "b"}]
    assert batch_jobs({"jobs": jobs}) == jobs
    assert batch_jobs(jobs) == jobs
    for bad in ({"jobs": "x"}, [1], {"items": jobs}):
        with pytest.raises(UsageError, match="must hold"):
            batch_jobs(bad)
    with pytest.raises(UsageError, match="no jobs"):
        batch_jobs([])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1d12h", timedelta(hours=36)),
        ("1.5h", timedelta(minutes=90)),
        ("2026-12-07T03:00:00Z", "2026-12-07T03:00:00Z"),
        ("1800000000", "1800000000"),
    ],
)
def test_since_is_a_duration_ago_or_a_time(text: str, value: object) -> None:
    assert since_value(text) == value


def test_since_must_say_something() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        since_value(" ")


def test_a_label_is_key_equals_value() -> None:
    assert label_pair("team=a=b", "--label") == ("team", "a=b")
    with pytest.raises(UsageError, match="--label: give KEY=VALUE"):
        label_pair("=x", "--label")
