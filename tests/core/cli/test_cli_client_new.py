"""The client subcommands of issue 20 (``jobs update|pause|resume|trigger|upcoming|batch``,
``jobs list`` filters, ``executions list``) against a stand-in node: the request each
sends, what it prints and the exit code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduled_db.cli.main import main
from tests.core.client.stub import Answer, Stub, stub_node

JOB = {"id": "j1", "type": "recurrente", "status": "pending", "paused": False, "version": 2}


@pytest.fixture
def node() -> Iterator[Stub]:
    with stub_node() as stub:
        yield stub


def cli(capsys: pytest.CaptureFixture[str], node: Stub, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--url", node.url], {})
    out, err = capsys.readouterr()
    return code, out, err


def test_update_with_set_and_if_match(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    node.answer("PATCH", "/jobs/j1", Answer(200, {**JOB, "version": 3}))
    argv = ["--set", "cron_expression=0 * * * *", "--set", "labels.team=ops", "--if-match", "2"]
    code, out, err = cli(capsys, node, "jobs", "update", "j1", *argv)
    assert (code, err, json.loads(out)["version"]) == (0, "", 3)
    (seen,) = node.requests
    assert seen.body == {"cron_expression": "0 * * * *", "labels": {"team": "ops"}}
    assert seen.headers["if-match"] == "2"
    assert seen.headers["content-type"] == "application/merge-patch+json"


def test_update_from_a_file(capsys: pytest.CaptureFixture[str], node: Stub, tmp_path: Path) -> None:
    node.answer("PATCH", "/jobs/j1", Answer(200, JOB))
    path = tmp_path / "patch.json"
    path.write_text('{"payload": {"v": 2}}')
    code, _, _ = cli(capsys, node, "jobs", "update", "j1", "--file", str(path))
    assert (code, node.requests[0].body) == (0, {"payload": {"v": 2}})


def test_a_stale_update_exits_1_with_the_servers_error(
    capsys: pytest.CaptureFixture[str], node: Stub
) -> None:
    error = {"error": "the job is at version 5", "code": "version_mismatch"}
    node.answer("PATCH", "/jobs/j1", Answer(412, error))
    code, out, err = cli(
        capsys, node, "jobs", "update", "j1", "--set", "timezone=UTC", "--if-match", "2"
    )
    assert (code, out, json.loads(err)) == (1, "", error)


def test_update_with_nothing_to_change_sends_nothing(
    capsys: pytest.CaptureFixture[str], node: Stub
) -> None:
    code, out, err = cli(capsys, node, "jobs", "update", "j1")
    assert (code, out, node.requests) == (2, "", [])
    assert err.startswith("scheduled-db: jobs update: give the change as --set")


@pytest.mark.parametrize("action", ["pause", "resume", "trigger"])
def test_pause_resume_trigger(capsys: pytest.CaptureFixture[str], node: Stub, action: str) -> None:
    answer = (
        {"job_id": "j1", "occurrence_ms": 5, "idempotency_key": "j1:t5", "trigger": True}
        if action == "trigger"
        else {**JOB, "paused": action == "pause"}
    )
    node.answer("POST", f"/jobs/j1/{action}", Answer(202 if action == "trigger" else 200, answer))
    code, out, _ = cli(capsys, node, "jobs", action, "j1")
    assert (code, json.loads(out)) == (0, answer)
    assert node.seen() == [("POST", f"/jobs/j1/{action}")]


def test_upcoming(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    runs = [{"at": 1800000000, "at_ms": 1800000000000, "iso": "2027-01-15T09:00:00+01:00"}]
    body = {"job_id": "j1", "timezone": "Europe/Madrid", "paused": False, "runs": runs}
    node.answer("GET", "/jobs/j1/upcoming?n=3", Answer(200, body))
    code, out, _ = cli(capsys, node, "jobs", "upcoming", "j1", "-n", "3")
    assert (code, json.loads(out)) == (0, body)


def test_upcoming_refuses_more_than_100(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    code, _, err = cli(capsys, node, "jobs", "upcoming", "j1", "-n", "101")
    assert (code, node.requests) == (2, []) and "at most 100" in err


@pytest.mark.parametrize("wrapped", [True, False])
def test_batch_from_a_file(
    capsys: pytest.CaptureFixture[str], node: Stub, tmp_path: Path, wrapped: bool
) -> None:
    jobs = [{"id": "a", "type": "unico", "timestamp": 1900000000}]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"jobs": jobs} if wrapped else jobs))
    result = {"results": [{"index": 0, "status": 200, "job": {**JOB, "id": "a"}}]}
    node.answer("POST", "/jobs/batch", Answer(200, result))
    code, out, err = cli(capsys, node, "jobs", "batch", str(path))
    assert (code, err, json.loads(out)) == (0, "", result)
    assert node.requests[0].body == {"jobs": jobs}


def test_a_batch_with_refused_jobs_exits_1_naming_them(
    capsys: pytest.CaptureFixture[str], node: Stub, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{"id": "a"}, {"id": "b"}]))
    result = {
        "results": [
            {"index": 0, "status": 200, "job": {**JOB, "id": "a"}},
            {"index": 1, "status": 400, "error": "type: is required", "code": "validation_error"},
        ]
    }
    node.answer("POST", "/jobs/batch", Answer(200, result))
    code, out, err = cli(capsys, node, "jobs", "batch", str(path))
    assert (code, json.loads(out)) == (1, result)  # the created ones are shown too
    assert err == "scheduled-db: jobs batch: 1 of 2 jobs refused (index 1)\n"


def test_list_filters(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    path = "/jobs?label=team%3Dops&label=env%3Dprod&type=recurrente&status=pending&paused=false"
    page = {"jobs": [JOB], "total": 1, "next_cursor": None}
    node.answer("GET", path, Answer(200, page))
    argv = ["--label", "team=ops", "--label", "env=prod", "--type", "recurrente"]
    code, out, _ = cli(capsys, node, "jobs", "list", *argv, "--status", "pending", "--not-paused")
    assert (code, json.loads(out)) == (0, page)


def test_list_paused(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    node.answer("GET", "/jobs?paused=true", Answer(200, {"jobs": [], "next_cursor": None}))
    assert cli(capsys, node, "jobs", "list", "--paused")[0] == 0


def test_a_label_without_a_value_sends_nothing(
    capsys: pytest.CaptureFixture[str], node: Stub
) -> None:
    code, _, err = cli(capsys, node, "jobs", "list", "--label", "team")
    assert (code, node.requests) == (2, [])
    assert err == "scheduled-db: --label: give KEY=VALUE (got 'team')\n"


def test_executions_list_since_an_hour_ago(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    before = time.time() - 3600
    code, _, _ = cli(capsys, node, "executions", "list", "--status", "failed", "--since", "1h")
    assert code == 1  # the stand-in has no answer scripted for a query it cannot know: 404
    path = node.requests[0].path
    assert path.startswith("/executions?status=failed&since=")
    assert before - 1 <= float(path.split("since=")[1]) <= time.time() - 3600


def test_executions_list_every_page(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    first = {"job_id": "a", "status": "failed", "trigger": False}
    second = {"job_id": "a", "status": "failed", "trigger": True}
    page = "/executions?status=failed&job_id=a&limit=1"
    node.answer("GET", page, Answer(200, {"executions": [first], "next_cursor": "n2"}))
    last = {"executions": [second], "next_cursor": None}
    node.answer("GET", page + "&cursor=n2", Answer(200, last))
    argv = ["--status", "failed", "--job-id", "a", "--limit", "1", "--all"]
    code, out, _ = cli(capsys, node, "executions", "list", *argv)
    assert (code, json.loads(out)) == (0, {"executions": [first, second], "next_cursor": None})


def test_create_with_labels(capsys: pytest.CaptureFixture[str], node: Stub) -> None:
    node.answer("POST", "/jobs", Answer(200, JOB))
    argv = ["--type", "unico", "--label", "team=ops", "--label", "tier=1"]
    assert cli(capsys, node, "jobs", "create", *argv)[0] == 0
    assert node.requests[0].body == {"type": "unico", "labels": {"team": "ops", "tier": "1"}}
