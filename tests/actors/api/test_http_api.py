"""The REST API over a real aiohttp server; only the node behind it is a twin.

Every error reply is checked by the harness for the JSON shape and for leaked
internals (see ``tests.actors.http_harness.check_error_body``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from unittest import mock

import pytest

from actors.api import jobs as jobs_module
from scheduled_db.errors import NO_LEADER
from scheduled_db.jobs.model import JobSpec, JobStatus, JobType
from scheduled_db.jobs.schedule import first_fire
from scheduled_db.state.commands import CreateJob
from tests.actors.http_harness import START_MS, Api, api_test

NOW_S = START_MS // 1000
JSON = {"Content-Type": "application/json"}
_ONE_TIME = {"type": "unico", "timestamp": NOW_S + 60}

# --- POST /jobs ------------------------------------------------------------------------


@api_test()
async def test_create_one_time_job_echoes_it_with_times_in_epoch_seconds(api: Api) -> None:
    job = await api.create(
        id="job-1", webhook_url="https://example.com/hook", payload={"k": [1, 2]}, timeout="30s"
    )
    assert job["id"] == "job-1" and job["type"] == "unico" and job["status"] == "pending"
    assert job["created_at"] == NOW_S
    assert job["timestamp"] == job["next_run_at"] == NOW_S + 3600
    assert job["payload"] == {"k": [1, 2]} and job["timeout"] == 30
    stored = await api.call("GET", "/jobs/job-1")
    assert stored.status == 200 and stored.body == job
    (command,) = api.backend.proposed
    assert isinstance(command, CreateJob) and command.created_at_ms == START_MS


@api_test()
async def test_create_recurring_job_computes_its_first_run(api: Api) -> None:
    body = {
        "id": "rec",
        "type": "recurrente",
        "cron_expression": "30 0 9 * * MON-FRI",  # six fields: seconds first
        "timezone": "Europe/Madrid",
        "last_date": "2028-01-01T00:00:00Z",
    }
    reply = await api.call("POST", "/jobs", body)
    assert reply.status == 200
    spec = JobSpec(
        "rec",
        JobType.RECURRENTE,
        cron_expression="30 0 9 * * MON-FRI",
        timezone="Europe/Madrid",
        last_date_ms=1830297600_000,
    )
    expected = first_fire(spec, START_MS)
    assert expected is not None and reply.body["next_run_at"] == expected / 1000
    assert reply.body["timestamp"] is None and reply.body["last_date"] == 1830297600
    macro = await api.call("POST", "/jobs", {"type": "recurrente", "cron_expression": "@hourly"})
    assert macro.status == 200 and macro.body["next_run_at"] == NOW_S + 3600


@api_test()
async def test_create_without_id_gets_a_uuid4(api: Api) -> None:
    job = await api.create()
    assert uuid.UUID(job["id"]).version == 4


@api_test()
async def test_generated_ids_are_drawn_from_a_pool_not_one_random_read_each(api: Api) -> None:
    """CPython gives up the GIL around each read of random bytes, and on a busy node
    taking it back cost the HTTP thread ~200 µs (actors/api/ids.py): ids come from a
    pool, one read for many."""
    reads = []
    real = os.urandom

    def counted(n: int) -> bytes:
        reads.append(n)
        return real(n)

    ids = []
    with mock.patch.object(os, "urandom", counted):
        for _ in range(10):
            ids.append((await api.create())["id"])
        batch = await api.call("POST", "/jobs/batch", {"jobs": [_ONE_TIME] * 10})
        ids += [r["job"]["id"] for r in batch.body["results"]]
        await api.create(id="chosen")  # a client's id takes nothing from the pool
    assert len(set(ids)) == 20 and all(uuid.UUID(i).version == 4 for i in ids)
    assert len(reads) <= 1, reads


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"type": "unico", "timestamp": NOW_S - 1}, "timestamp", "must be in the future"),
        ({"timestamp": NOW_S + 60}, "type", "required"),
        ({"type": "unico", "timestamp": 10**60}, "body", "too large"),
        ({"type": "unico", "timestamp": "soon"}, "timestamp", "RFC 3339"),
        ({"type": "unico", "timestamp": NOW_S + 60, "id": "a/b"}, "id", "'/'"),
        ({"type": "unico", "timestamp": NOW_S + 60, "id": "a\tb"}, "id", "U+0009"),
        ({"type": "unico", "timestamp": NOW_S + 60, "id": ""}, "id", "1 to 256"),
        ({"type": "unico", "timestamp": NOW_S + 60, "id": "x" * 257}, "id", "256"),
        ({"type": "unico", "timestamp": NOW_S + 60, "webhook_url": "ftp://x"}, "webhook_url", ""),
        ({"type": "unico", "timestamp": NOW_S + 60, "payload": [1]}, "payload", "object"),
        ({"type": "unico", "timestamp": NOW_S + 60, "colour": "red"}, "colour", "unknown"),
        ({"type": "recurrente", "cron_expression": "61 * * * *"}, "cron_expression", ""),
        ({"type": "recurrente", "cron_expression": "* * * * *", "timezone": "Mars/Base"}, "", ""),
        ({"type": "unico", "timestamp": True}, "timestamp", "boolean"),
    ],
)
def test_invalid_job_bodies_are_400_naming_the_field(
    body: dict[str, object], field: str, words: str
) -> None:
    @api_test()
    async def scenario(api: Api) -> None:
        reply = await api.call("POST", "/jobs", body)
        assert reply.status == 400, reply
        assert reply.body["error"].startswith(field) and words in reply.body["error"]
        assert api.backend.proposed == []

    scenario()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"type": "unico",', "malformed JSON at line 1"),
        (b'{"type": "\xff\xfe"}', "UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"", "required"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"timestamp": NaN}', "NaN"),
        (b'{"type": "unico", "timestamp": 1e400}', "out of range"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_400(data: bytes, words: str) -> None:
    @api_test()
    async def scenario(api: Api) -> None:
        reply = await api.call("POST", "/jobs", data=data, headers=JSON)
        assert reply.status == 400 and words in reply.body["error"], reply

    scenario()


@api_test()
async def test_a_json_null_body_is_not_an_absent_one(api: Api) -> None:
    """Found by schemathesis: ``-d null`` cancelled a job as if no body had been sent."""
    await api.create(id="kept")
    reply = await api.call("POST", "/jobs/kept/cancel", data=b"null", headers=JSON)
    assert reply.status == 400 and reply.body["error"] == "body: must be a JSON object"
    assert (await api.call("GET", "/jobs/kept")).body["status"] == "pending"
    assert (await api.call("POST", "/jobs/kept/cancel")).status == 200  # no body at all


@api_test()
async def test_wrong_content_type_is_415(api: Api) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        reply = await api.call("POST", "/jobs", data="{}", headers={"Content-Type": content_type})
        assert reply.status == 415 and "JSON" in reply.body["error"]
    latin = {"Content-Type": "application/json; charset=latin-1"}
    assert (await api.call("POST", "/jobs", data="{}", headers=latin)).status == 415
    vendor = {"Content-Type": "application/merge-patch+json"}
    assert (await api.call("POST", "/jobs", data="[]", headers=vendor)).status == 400


@api_test(config={"http.max_body": "1KiB"})
async def test_body_over_the_limit_is_413_whether_sized_or_chunked(api: Api) -> None:
    big = b'{"payload": "' + b"x" * 2000 + b'"}'
    reply = await api.call("POST", "/jobs", data=big, headers=JSON)
    assert reply.status == 413 and "1024 bytes" in reply.body["error"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * 600

    async with api.client.post("/jobs", data=chunks(), headers=JSON) as resp:
        assert resp.status == 413
        assert "1024 bytes" in (await resp.json())["error"]


@api_test()
async def test_retry_with_the_same_body_returns_the_job_and_another_body_is_409(api: Api) -> None:
    body = {"id": "same", "type": "unico", "timestamp": NOW_S + 60, "payload": {"n": 1}}
    first = await api.call("POST", "/jobs", body)
    api.clock.now_ms += 3_600_000  # the timestamp is in the past for the retry
    retry = await api.call("POST", "/jobs", body)
    assert first.status == retry.status == 200 and retry.body == first.body
    other = await api.call("POST", "/jobs", {**body, "payload": {"n": 2}})
    assert other.status == 409 and "already exists" in other.body["error"]
    assert other.body["job_id"] == "same"
    assert len(api.backend.proposed) == 1


@api_test(config={"queue.job_limit": 2})
async def test_create_past_the_job_limit_is_507(api: Api) -> None:
    await api.create(id="a")
    await api.create(id="b")
    reply = await api.call("POST", "/jobs", {"type": "unico", "timestamp": NOW_S + 9})
    assert reply.status == 507 and reply.body["type"] == "job_count"
    # A retry of a create that made a job is still answered with it when full.
    retry = await api.call("POST", "/jobs", {"type": "unico", "timestamp": NOW_S + 3600, "id": "a"})
    assert retry.status == 200 and retry.body["id"] == "a"


@api_test(config={"queue.job_limit": 10})
async def test_admission_reads_the_counters_again_only_near_a_limit(api: Api) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs_module, "COUNTERS_FRESH_S", 3600.0)  # no read goes stale
        for i in range(10):
            await api.create(id=f"c{i}")
    # The first create read them; then what was admitted since is counted on, up to
    # 90% of the limit (9 jobs), past which each admission reads them again.
    assert api.backend.reads.count("GetCounters") == 2
    reply = await api.call("POST", "/jobs", {"type": "unico", "timestamp": NOW_S + 9})
    assert reply.status == 507 and reply.body["type"] == "job_count"
    assert api.backend.reads.count("GetCounters") == 3


# --- Raft refusals and internal errors -----------------------------------------------


@api_test()
async def test_no_leader_is_503_with_retry_after(api: Api) -> None:
    api.backend.follow()
    for method, path in (("POST", "/jobs/x/cancel"), ("DELETE", "/jobs/x")):
        reply = await api.call(method, path)
        assert reply.status == 503 and reply.body["error"] == NO_LEADER
        assert reply.headers["Retry-After"] == "1"
    api.backend.refuse("dropped")
    assert (await api.call("DELETE", "/jobs/x")).body["error"] == NO_LEADER
    api.backend.follow("node-2", "10.1.1.2:8080")
    reply = await api.call("POST", "/jobs", {"type": "unico", "timestamp": NOW_S + 9})
    assert reply.status == 503 and reply.body["leader"] == "node-2"


@api_test()
async def test_a_timed_out_write_is_an_unknown_outcome_and_a_timed_out_read_is_no_leader(
    api: Api,
) -> None:
    api.backend.time_out = True
    reply = await api.call("DELETE", "/jobs/x")  # proposed: it may still commit
    assert reply.status == 503 and reply.body["code"] == "unknown_outcome"
    assert reply.headers["Retry-After"] == "1"
    reply = await api.call("GET", "/jobs/x")
    assert reply.status == 503 and reply.body["error"] == NO_LEADER
    assert reply.headers["Retry-After"] == "1"


@api_test()
async def test_unknown_outcome_is_503_and_the_retry_is_safe(api: Api) -> None:
    api.backend.refuse("unknown_outcome", applied=True)
    body = {"id": "maybe", "type": "unico", "timestamp": NOW_S + 60}
    reply = await api.call("POST", "/jobs", body)
    assert reply.status == 503 and "may or may not" in reply.body["error"]
    assert "retry is safe" in reply.body["error"]
    api.backend.refusal = None
    assert (await api.call("POST", "/jobs", body)).status == 200


@api_test()
async def test_a_full_disk_refuses_writes_with_507_disk_full_and_reads_go_on(api: Api) -> None:
    body = {"id": "kept", "type": "unico", "timestamp": NOW_S + 60}
    assert (await api.call("POST", "/jobs", body)).status == 200
    api.backend.refuse("disk_full")
    reply = await api.call("POST", "/jobs", {**body, "id": "refused"})
    assert reply.status == 507 and reply.body["code"] == "disk_full"
    assert "disk" in reply.body["error"] and reply.headers["Retry-After"] == "5"
    assert (await api.call("DELETE", "/jobs/kept")).status == 507
    assert (await api.call("GET", "/jobs/kept")).status == 200


@api_test()
async def test_unexpected_exception_is_a_bare_500_logged_server_side(api: Api) -> None:
    api.backend.read_error = RuntimeError('boom in File "/usr/lib/x.py" from 127.0.0.1:7000')
    reply = await api.call("GET", "/jobs/abc")
    assert reply.status == 500 and reply.body == {
        "error": "internal error",
        "code": "internal_error",
    }


def test_unexpected_exception_logs_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    @api_test()
    async def scenario(api: Api) -> None:
        api.backend.read_error = RuntimeError("secret detail")
        assert (await api.call("GET", "/health")).status == 500

    with caplog.at_level(logging.ERROR, logger="actors.api.errors"):
        scenario()
    assert "secret detail" in caplog.text and "Traceback" in caplog.text


# --- routes and methods -------------------------------------------------------------


@api_test()
async def test_unknown_route_is_json_404_and_wrong_method_json_405(api: Api) -> None:
    for path in ("/nope", "/jobs/a/b/c", "/"):
        reply = await api.call("GET", path)
        assert reply.status == 404 and reply.body["error"] == "Not found"
    reply = await api.call("PUT", "/jobs")
    assert reply.status == 405 and "POST" in reply.headers["Allow"]
    assert (await api.call("PUT", "/jobs/x")).status == 405
    assert (await api.call("POST", "/health")).status == 405


@api_test()
async def test_unknown_jobs_are_404(api: Api) -> None:
    for method, path in (
        ("GET", "/jobs/ghost"),
        ("GET", "/jobs/ghost/status"),
        ("GET", "/jobs/ghost/executions"),
        ("DELETE", "/jobs/ghost"),
        ("POST", "/jobs/ghost/cancel"),
        ("GET", "/jobs/%FF%00"),
        ("DELETE", "/jobs/" + "x" * 300),
    ):
        reply = await api.call(method, path)
        assert reply.status == 404 and reply.body["error"].startswith("Job not found"), path


# --- reading, deleting, cancelling a job ----------------------------------------------


@api_test()
async def test_delete_is_204_then_the_job_is_gone(api: Api) -> None:
    await api.create(id="doomed")
    reply = await api.call("DELETE", "/jobs/doomed")
    assert reply.status == 204 and reply.body == ""
    assert (await api.call("GET", "/jobs/doomed")).status == 404
    assert (await api.call("DELETE", "/jobs/doomed")).status == 404


@api_test()
async def test_status_and_executions_follow_the_attempts(api: Api) -> None:
    await api.create(id="run")
    status = await api.call("GET", "/jobs/run/status")
    assert status.body == {
        "job_id": "run",
        "status": "pending",
        "attempt_count": 0,
        "created_at": NOW_S,
        "created_at_ms": START_MS,
        "first_attempt_at": None,
        "first_attempt_at_ms": None,
        "last_attempt_at": None,
        "last_attempt_at_ms": None,
        "completed_at": None,
        "completed_at_ms": None,
        "cancelled_at": None,
        "cancelled_at_ms": None,
        "executing_node_id": None,
        "next_run_at": NOW_S + 3600,
        "next_run_at_ms": START_MS + 3_600_000,
        "attempts": [],
        "cancellation_reason": None,
    }
    api.backend.run_attempt("run", JobStatus.FAILED, START_MS + 1_000, final=True)
    status = await api.call("GET", "/jobs/run/status")
    assert status.body["status"] == "failed" and status.body["attempt_count"] == 1
    assert status.body["first_attempt_at"] == NOW_S + 1
    assert (status.body["completed_at"], status.body["completed_at_ms"]) == (
        NOW_S + 1,  # whole seconds, rounded down
        START_MS + 1_030,
    )
    assert status.body["executing_node_id"] == "node-1"
    executions = await api.call("GET", "/jobs/run/executions")
    (attempt,) = executions.body["attempts"]
    assert executions.body["job_id"] == "run"
    assert attempt == {
        "attempt_num": 1,
        "scheduled_at": NOW_S + 3600,
        "scheduled_at_ms": START_MS + 3_600_000,
        "start_time": NOW_S + 1,
        "start_time_ms": START_MS + 1_000,
        "end_time": NOW_S + 1,
        "end_time_ms": START_MS + 1_025,
        "node_id": "node-1",
        "status": "failed",
        "http_status": 500,
        "response_time_ms": 25,
        "error_message": "upstream said no",
        "error_type": "http_error",
        "trigger": False,
    }
    assert status.body["attempts"] == [attempt]  # the run's attempts, as the original's state


@api_test()
async def test_status_shows_the_attempts_of_the_current_run_only(api: Api) -> None:
    """A recurring job's next run starts with no attempts, as the original's state
    (re-created for every run) did; the history keeps them all."""
    await api.create(id="cron", type="recurrente", cron_expression="@hourly", timestamp=None)
    job = (await api.call("GET", "/jobs/cron")).body
    api.backend.run_attempt("cron", JobStatus.COMPLETED, job["next_run_at_ms"], final=False)
    assert len((await api.call("GET", "/jobs/cron/status")).body["attempts"]) == 1
    api.backend.next_run("cron")
    status = (await api.call("GET", "/jobs/cron/status")).body
    assert status["status"] == "pending" and status["attempts"] == []
    assert len((await api.call("GET", "/jobs/cron/executions")).body["attempts"]) == 1


@api_test()
async def test_cancel_with_or_without_a_body(api: Api) -> None:
    await api.create(id="c1")
    await api.create(id="c2")
    api.clock.now_ms += 1_500
    reply = await api.call("POST", "/jobs/c1/cancel")  # no body, no content type
    assert reply.body == {
        "job_id": "c1",
        "status": "cancelled",
        "cancelled_at": NOW_S + 1,
        "cancelled_at_ms": START_MS + 1_500,
    }
    api.clock.now_ms += 1_000
    again = await api.call("POST", "/jobs/c1/cancel", {})
    assert again.status == 200 and again.body["cancelled_at_ms"] == START_MS + 1_500
    status = (await api.call("GET", "/jobs/c1/status")).body
    assert (status["cancelled_at"], status["cancelled_at_ms"]) == (NOW_S + 1, START_MS + 1_500)
    with_reason = await api.call("POST", "/jobs/c2/cancel", {"reason": "no longer needed"})
    assert with_reason.status == 200 and with_reason.body["reason"] == "no longer needed"
    assert (await api.call("GET", "/jobs/c2")).body["status"] == "cancelled"


@api_test()
async def test_cancel_bodies_are_checked(api: Api) -> None:
    await api.create(id="c")
    assert (await api.call("POST", "/jobs/c/cancel", {"reason": 7})).status == 400
    assert (await api.call("POST", "/jobs/c/cancel", {"why": "x"})).status == 400
    assert (await api.call("POST", "/jobs/c/cancel", [1])).status == 400
    text = {"Content-Type": "text/plain"}
    assert (await api.call("POST", "/jobs/c/cancel", data="stop", headers=text)).status == 415
    assert (await api.call("GET", "/jobs/c")).body["status"] == "pending"


@api_test()
async def test_cancel_of_a_finished_job_is_400(api: Api) -> None:
    await api.create(id="done")
    api.backend.run_attempt("done", JobStatus.COMPLETED, START_MS + 1_000, final=True)
    reply = await api.call("POST", "/jobs/done/cancel")
    assert reply.status == 400 and reply.body["error"] == "Cannot cancel completed job"


# --- listing ---------------------------------------------------------------------------


@api_test()
async def test_list_pages_through_every_job_with_a_cursor(api: Api) -> None:
    for i in range(7):
        await api.create(id=f"job-{i}")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "/jobs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        reply = await api.call("GET", query)
        assert reply.status == 200 and reply.body["total"] == 7
        seen += [j["id"] for j in reply.body["jobs"]]
        pages += 1
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [f"job-{i}" for i in range(7)]


@api_test()
async def test_list_filters_by_status_and_counts_that_status(api: Api) -> None:
    for i in range(4):
        await api.create(id=f"j{i}")
    await api.call("POST", "/jobs/j1/cancel")
    await api.call("POST", "/jobs/j3/cancel")
    reply = await api.call("GET", "/jobs?status=cancelled&limit=1")
    assert [j["id"] for j in reply.body["jobs"]] == ["j1"] and reply.body["total"] == 2
    after = await api.call("GET", f"/jobs?status=cancelled&cursor={reply.body['next_cursor']}")
    assert [j["id"] for j in after.body["jobs"]] == ["j3"] and after.body["next_cursor"] is None
    pending = await api.call("GET", "/jobs?status=pending")
    assert pending.body["total"] == 2 and len(pending.body["jobs"]) == 2
    empty = await api.call("GET", "/jobs?status=timeout")
    assert empty.body == {"jobs": [], "total": 0, "next_cursor": None}


@api_test()
async def test_list_rejects_bad_parameters(api: Api) -> None:
    reply = await api.call("GET", "/jobs?status=bogus")
    assert reply.status == 400 and "Invalid status value" in reply.body["error"]
    for query in ("limit=0", "limit=1001", "limit=ten", "cursor=%25%25", "cursor=_w"):
        reply = await api.call("GET", f"/jobs?{query}")
        assert reply.status == 400, query
        assert reply.body["error"].startswith(query.split("=")[0])


# --- ?consistent=true ----------------------------------------------------------------------


@api_test()
async def test_consistent_reads_wait_for_a_read_index_first(api: Api) -> None:
    await api.create(id="one")
    paths = ["/jobs/one", "/jobs/one/status", "/jobs/one/executions", "/jobs"]
    for path in paths:
        plain = await api.call("GET", path)
        assert plain.status == 200 and api.backend.read_indexes == 0
    for n, path in enumerate(paths, 1):
        sep = "&" if "?" in path else "?"
        reply = await api.call("GET", f"{path}{sep}consistent=true")
        assert reply.status == 200 and api.backend.read_indexes == n
        assert reply.body == (await api.call("GET", path)).body
    assert (await api.call("GET", "/jobs/one?consistent=false")).status == 200
    assert api.backend.read_indexes == len(paths)


@api_test()
async def test_consistent_must_be_true_or_false(api: Api) -> None:
    await api.create(id="one")
    for value in ("yes", "1", "TRUE", ""):
        reply = await api.call("GET", f"/jobs/one?consistent={value}")
        assert reply.status == 400 and reply.body["error"].startswith("consistent:"), reply
    assert api.backend.read_indexes == 0


@api_test()
async def test_a_consistent_read_without_a_leader_is_503(api: Api) -> None:
    await api.create(id="one")
    api.backend.follow()
    reply = await api.call("GET", "/jobs/one?consistent=true")
    assert reply.status == 503 and reply.body["error"] == NO_LEADER
    assert reply.headers["Retry-After"] == "1"
    assert (await api.call("GET", "/jobs/one")).status == 200  # a plain read still answers


@api_test()
async def test_a_retried_create_is_answered_by_raft_or_confirmed_through_read_index(
    api: Api,
) -> None:
    body = {"id": "twice", "type": "unico", "timestamp": NOW_S + 60}
    first = await api.call("POST", "/jobs", body)
    again = await api.call("POST", "/jobs", body)
    assert first.status == again.status == 200 and again.body == first.body
    # A body that validates goes to Raft: the state machine answers it, in log order,
    # from the state every replica has (no read first, none to confirm).
    assert api.backend.read_indexes == 0
    api.clock.now_ms += 3_600_000  # its timestamp has passed: refused, so looked up
    late = await api.call("POST", "/jobs", body)
    assert late.status == 200 and late.body == first.body
    assert api.backend.read_indexes == 1  # found locally: confirmed before answering
    api.backend.follow()  # no leader to confirm with: no answer from stale state
    reply = await api.call("POST", "/jobs", body)
    assert reply.status == 503 and reply.body["error"] == NO_LEADER


@api_test()
async def test_update_and_resume_catch_up_before_they_read_the_job(api: Api) -> None:
    """PATCH and resume decide from the job as stored (its version, spec, missed run):
    on a follower that lags the client's last write that would be a stale answer, so
    each waits for a ReadIndex first (refused without a leader: then forwarded)."""
    await api.create(id="r", type="recurrente", cron_expression="0 9 * * *")
    before = api.backend.read_indexes
    assert (await api.call("PATCH", "/jobs/r", {"payload": {"a": 1}})).status == 200
    assert api.backend.read_indexes == before + 1
    assert (await api.call("POST", "/jobs/r/pause")).status == 200
    assert (await api.call("POST", "/jobs/r/resume")).status == 200
    assert api.backend.read_indexes == before + 2
