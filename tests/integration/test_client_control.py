"""scheduled_db.client and the command line against the endpoints of issue 20 on real
node processes: update (merge patch, If-Match), pause, resume, upcoming, batch, labels
and the list filters, and the executions listing; through a follower too.

The trigger, not on main yet when these were written, is in
test_client_new_endpoints.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.cli.main import main as cli_main
from scheduled_db.client import (
    BadRequest,
    Client,
    Conflict,
    NotFound,
    PreconditionFailed,
)
from scheduled_db.testing.harness import NodeProcess, wait_leader, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import running_cluster


def later(seconds: float = 3600) -> float:
    return round(time.time() + seconds, 3)


def cron_job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "type": "recurrente", "cron_expression": "0 9 * * *", **extra}


def cli(*argv: str) -> tuple[int, Any, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(argv), {})
    text = out.getvalue()
    return code, json.loads(text) if text.strip() else None, err.getvalue()


def test_update_is_a_merge_patch_guarded_by_the_version(node: NodeProcess) -> None:
    client = Client(node.base)
    job = client.create_job(cron_job("u1", labels={"team": "a", "env": "dev"}, payload={"x": 1}))
    assert job.version == 1 and job.labels == {"team": "a", "env": "dev"}
    patch = {"cron_expression": "30 8 * * *", "labels": {"env": None, "tier": "1"}}
    updated = client.update_job("u1", patch, if_match=1)
    assert updated.version == 2 and updated.cron_expression == "30 8 * * *"
    assert updated.labels == {"team": "a", "tier": "1"} and updated.payload == {"x": 1}
    assert updated.next_run_at_ms != job.next_run_at_ms  # recomputed on the new schedule
    with pytest.raises(PreconditionFailed) as stale:
        client.update_job("u1", {"payload": {"x": 2}}, if_match=1)
    assert stale.value.code == "version_mismatch"
    assert client.get_job("u1").payload == {"x": 1}


def test_update_refusals(node: NodeProcess) -> None:
    client = Client(node.base)
    client.create_job(cron_job("u2"))
    with pytest.raises(BadRequest) as caught:
        client.update_job("u2", {"type": "unico"})
    assert caught.value.field == "type"
    with pytest.raises(BadRequest) as caught:
        client.update_job("u2", {"cron_expression": "not cron"})
    assert caught.value.field == "cron_expression"
    with pytest.raises(NotFound):
        client.update_job("ghost", {"payload": {}})
    client.cancel_job("u2")
    with pytest.raises(Conflict) as finished:
        client.update_job("u2", {"payload": {}})
    assert finished.value.code == "job_finished"


def test_pause_and_resume(node: NodeProcess) -> None:
    client = Client(node.base)
    client.create_job(cron_job("p1"))
    paused = client.pause_job("p1")
    assert paused.paused and paused.version == 2
    assert client.pause_job("p1").paused  # a second pause is a no-op 200
    assert client.upcoming("p1").paused
    assert not client.resume_job("p1").paused
    with pytest.raises(NotFound):
        client.pause_job("ghost")


def test_a_paused_job_does_not_fire_until_resumed(node: NodeProcess, receiver: Receiver) -> None:
    client = Client(node.base)
    due = later(1.5)
    url = receiver.url("/ok")
    client.create_job({"id": "p2", "type": "unico", "timestamp": due, "webhook_url": url})
    client.pause_job("p2")
    wait_until(lambda: time.time() > due + 2, 10, "the due time to pass")
    assert receiver.received("/ok") == []  # its status may say in_progress: a claim held
    client.resume_job("p2")  # misfire_policy fire_once: the missed run fires now
    receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=15)
    wait_until(lambda: client.job_status("p2").status == "completed", 10, "completed")


def test_upcoming_runs_in_the_jobs_time_zone(node: NodeProcess) -> None:
    client = Client(node.base)
    client.create_job(cron_job("up", timezone="Europe/Madrid"))
    upcoming = client.upcoming("up", 3)
    assert upcoming.timezone == "Europe/Madrid" and len(upcoming.runs) == 3
    for run in upcoming.runs:
        assert run.datetime.hour == 9 and run.at_ms == run.at * 1000
    assert [r.at for r in upcoming.runs] == sorted(r.at for r in upcoming.runs)
    with pytest.raises(BadRequest) as caught:
        client.upcoming("up", 101)
    assert caught.value.field == "n"


def test_batch_creates_in_order_and_again_idempotently(node: NodeProcess) -> None:
    client = Client(node.base)
    jobs = [{"id": f"b{i}", "type": "unico", "timestamp": later()} for i in range(5)]
    jobs.insert(2, {"id": "bad", "type": "unico"})  # no timestamp
    result = client.batch_create(jobs)
    assert [r.index for r in result.results] == list(range(6))
    assert [j.id for j in result.jobs] == [f"b{i}" for i in range(5)]
    (refused,) = result.errors
    assert (refused.index, refused.status, refused.field) == (2, 400, "timestamp")
    again = client.batch_create(jobs)
    assert [j.raw for j in again.jobs] == [j.raw for j in result.jobs]


def test_labels_and_filters_select_jobs(node: NodeProcess) -> None:
    client = Client(node.base)
    client.create_job(cron_job("l1", labels={"team": "billing", "env": "prod"}))
    client.create_job(cron_job("l2", labels={"team": "billing", "env": "dev"}))
    client.create_job({"id": "l3", "type": "unico", "timestamp": later(), "labels": {"team": "x"}})
    client.pause_job("l2")

    def ids(**filters: Any) -> set[str]:
        return {j.id for j in client.iter_jobs(limit=1, **filters)}

    assert ids(label={"team": "billing"}) == {"l1", "l2"}
    assert ids(label={"team": "billing", "env": "prod"}) == {"l1"}
    assert ids(type="unico") == {"l3"}
    assert ids(paused=True) == {"l2"}
    assert ids(label=["team=billing"], paused=False) == {"l1"}
    code, page, _ = cli(
        "jobs", "list", "--label", "team=billing", "--not-paused", "--url", node.base
    )
    assert code == 0 and [j["id"] for j in page["jobs"]] == ["l1"]


def test_executions_across_jobs(node: NodeProcess, receiver: Receiver) -> None:
    client = Client(node.base)
    ok, bad = receiver.url("/ok"), receiver.url("/status/500")
    client.create_job({"id": "e-ok", "type": "unico", "timestamp": later(1), "webhook_url": ok})
    client.create_job(
        {"id": "e-bad", "type": "unico", "timestamp": later(1), "webhook_url": bad,
         "max_attempts": 1}
    )  # fmt: skip
    wait_until(lambda: client.job_status("e-bad").status == "failed", 20, "the failure")
    wait_until(lambda: client.job_status("e-ok").status == "completed", 20, "the success")
    failed = list(client.iter_executions(status="failed", since=timedelta(hours=1)))
    assert [e.job_id for e in failed] == ["e-bad"] and failed[0].http_status == 500
    every = list(client.iter_executions(limit=1))
    assert {e.job_id for e in every} == {"e-ok", "e-bad"}
    assert every[0].start_time_ms >= every[1].start_time_ms  # type: ignore[operator]
    code, shown, _ = cli("executions", "list", "--status", "failed", "--since", "1h",
                         "--url", node.base)  # fmt: skip
    assert code == 0 and [e["job_id"] for e in shown["executions"]] == ["e-bad"]


def test_the_command_line_changes_jobs(node: NodeProcess) -> None:
    url = ["--url", node.base]
    assert cli("jobs", "create", "--json", json.dumps(cron_job("c1")), *url)[0] == 0
    code, job, _ = cli("jobs", "update", "c1", "--set", "labels.team=ops", "--if-match", "1", *url)
    assert (code, job["labels"], job["version"]) == (0, {"team": "ops"}, 2)
    code, _, err = cli("jobs", "update", "c1", "--set", "max_attempts=2", "--if-match", "1", *url)
    assert code == 1 and json.loads(err)["code"] == "version_mismatch"
    assert cli("jobs", "pause", "c1", *url)[1]["paused"] is True
    assert cli("jobs", "resume", "c1", *url)[1]["paused"] is False
    code, upcoming, _ = cli("jobs", "upcoming", "c1", "-n", "2", *url)
    assert code == 0 and len(upcoming["runs"]) == 2


def test_the_command_line_batch(node: NodeProcess, tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"jobs": [cron_job("bb1"), cron_job("bb2")]}))
    code, result, _ = cli("jobs", "batch", str(path), "--url", node.base)
    assert code == 0 and [r["status"] for r in result["results"]] == [200, 200]
    path.write_text(json.dumps([cron_job("bb3"), {"id": "bb4", "type": "recurrente"}]))
    code, result, err = cli("jobs", "batch", str(path), "--url", node.base)
    assert code == 1 and result["results"][0]["status"] == 200
    assert err == "scheduled-db: jobs batch: 1 of 2 jobs refused (index 1)\n"


def test_changes_through_a_follower_are_forwarded(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as nodes:
        leader = wait_leader(nodes)
        follower = Client(next(n for n in nodes if n is not leader).base)
        follower.create_job(cron_job("f1"))
        assert follower.update_job("f1", {"labels": {"a": "b"}}).labels == {"a": "b"}
        assert follower.pause_job("f1").paused
        assert not follower.resume_job("f1").paused
        assert [j.id for j in follower.batch_create([cron_job("f2")]).jobs] == ["f2"]
        assert {j.id for j in follower.iter_jobs(label={"a": "b"})} == {"f1"}
