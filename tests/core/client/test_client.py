"""scheduled_db.client.Client against a stand-in node (tests/core/client/stub.py): the
requests each method sends, how answers become results and errors, and the retries."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from scheduled_db.client import (
    NO_RETRY,
    BadCaFile,
    BadRequest,
    Client,
    Conflict,
    NotFound,
    PreconditionFailed,
    RetryPolicy,
    Unavailable,
    UnexpectedAnswer,
    Unreachable,
)
from tests.core.client.stub import Answer, Stub, stub_node

JOB = {"id": "j1", "type": "unico", "status": "pending", "paused": False, "version": 3}
FAST = RetryPolicy(attempts=4, max_wait_s=2, max_retry_after_s=0.01, backoff_s=0.01)
NO_LEADER = Answer(503, {"error": "No leader available", "code": "no_leader"}, {"Retry-After": "1"})
UNKNOWN = Answer(503, {"error": "outcome unknown", "code": "unknown_outcome"}, {"Retry-After": "1"})


@pytest.fixture
def node() -> Iterator[Stub]:
    with stub_node() as stub:
        yield stub


@pytest.fixture
def client(node: Stub) -> Client:
    return Client(node.url, token="t0k", retry=FAST)


def closed_port_url() -> tuple[socket.socket, str]:
    """A bound socket that does not listen: connecting to its port is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- what each method sends ---------------------------------------------------------------


def test_create_sends_the_body_and_the_token_and_reads_the_job(node: Stub, client: Client) -> None:
    node.answer("POST", "/jobs", Answer(200, {**JOB, "labels": {"team": "a"}, "new": 1}))
    job = client.create_job({"id": "j1", "type": "unico", "timestamp": 1900000000})
    (seen,) = node.requests
    assert seen.body == {"id": "j1", "type": "unico", "timestamp": 1900000000}
    assert seen.headers["authorization"] == "Bearer t0k"
    assert seen.headers["content-type"] == "application/json"
    assert (job.id, job.version, job.labels, job.paused) == ("j1", 3, {"team": "a"}, False)
    assert job.raw["new"] == 1  # a field this client does not know is kept


def test_an_id_is_one_path_segment(node: Stub, client: Client) -> None:
    node.answer("GET", "/jobs/a%2Fb%3Fc%23%25", Answer(200, {**JOB, "id": "a/b?c#%"}))
    assert client.get_job("a/b?c#%").id == "a/b?c#%"


def test_update_sends_a_merge_patch_with_if_match(node: Stub, client: Client) -> None:
    node.answer("PATCH", "/jobs/j1", Answer(200, {**JOB, "version": 4}))
    job = client.update_job("j1", {"labels": {"team": None}}, if_match=3)
    (seen,) = node.requests
    assert seen.headers["content-type"] == "application/merge-patch+json"
    assert seen.headers["if-match"] == "3"
    assert (seen.body, job.version) == ({"labels": {"team": None}}, 4)


def test_a_stale_version_is_precondition_failed(node: Stub, client: Client) -> None:
    error = {"error": "version is 5, not 3", "code": "version_mismatch"}
    node.answer("PATCH", "/jobs/j1", Answer(412, error))
    with pytest.raises(PreconditionFailed) as caught:
        client.update_job("j1", {"max_attempts": 2}, if_match=3)
    assert (caught.value.status, caught.value.code) == (412, "version_mismatch")


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_and_resume(node: Stub, client: Client, action: str) -> None:
    node.answer("POST", f"/jobs/j1/{action}", Answer(200, {**JOB, "paused": action == "pause"}))
    job = getattr(client, f"{action}_job")("j1")
    assert job.paused is (action == "pause")
    assert node.requests[0].body == {}


def test_trigger(node: Stub, client: Client) -> None:
    answer = {"job_id": "j1", "occurrence": 1, "occurrence_ms": 1500, "idempotency_key": "j1:m1"}
    node.answer("POST", "/jobs/j1/trigger", Answer(202, {**answer, "trigger": True}))
    trigger = client.trigger_job("j1")
    assert (trigger.job_id, trigger.occurrence_ms, trigger.idempotency_key) == ("j1", 1500, "j1:m1")


def test_cancel_sends_its_reason(node: Stub, client: Client) -> None:
    answer = {"job_id": "j1", "status": "cancelled", "cancelled_at_ms": 5, "reason": "why"}
    node.answer("POST", "/jobs/j1/cancel", Answer(200, answer))
    cancelled = client.cancel_job("j1", "why")
    assert (node.requests[0].body, cancelled.reason, cancelled.status) == (
        {"reason": "why"},
        "why",
        "cancelled",
    )


def test_list_jobs_sends_every_filter(node: Stub, client: Client) -> None:
    path = (
        "/jobs?label=team%3Dbilling&label=env%3Dprod&type=recurrente&status=pending"
        "&paused=true&limit=2&cursor=c1"
    )
    node.answer("GET", path, Answer(200, {"jobs": [JOB], "total": 9, "next_cursor": "c2"}))
    page = client.list_jobs(
        label={"team": "billing", "env": "prod"},
        type="recurrente",
        status="pending",
        paused=True,
        limit=2,
        cursor="c1",
    )
    assert ([j.id for j in page.items], page.total, page.next_cursor) == (["j1"], 9, "c2")


def test_iter_jobs_follows_the_cursors(node: Stub, client: Client) -> None:
    node.answer(
        "GET", "/jobs?label=a%3D1&limit=1", Answer(200, {"jobs": [JOB], "next_cursor": "x"})
    )
    last = {"jobs": [{**JOB, "id": "j2"}], "next_cursor": None}
    node.answer("GET", "/jobs?label=a%3D1&limit=1&cursor=x", Answer(200, last))
    assert [j.id for j in client.iter_jobs(label=["a=1"], limit=1)] == ["j1", "j2"]


def test_iteration_stops_on_a_repeated_cursor(node: Stub, client: Client) -> None:
    node.answer("GET", "/jobs", Answer(200, {"jobs": [], "next_cursor": "again"}))
    node.answer("GET", "/jobs?cursor=again", Answer(200, {"jobs": [], "next_cursor": "again"}))
    with pytest.raises(UnexpectedAnswer, match="repeated the cursor 'again'"):
        list(client.iter_jobs())


def test_list_executions_since_a_duration_ago(node: Stub, client: Client) -> None:
    attempt = {"job_id": "j1", "status": "failed", "trigger": True, "error_type": "timeout"}
    node.answer("GET", "/executions", Answer(404, {"error": "unscripted"}))
    before = int(time.time()) - 3600
    with pytest.raises(NotFound):
        client.list_executions(status="failed", since=timedelta(hours=1), job_id="j1")
    path = node.requests[0].path
    query = dict(pair.split("=") for pair in path.split("?")[1].split("&"))
    assert query["status"] == "failed" and query["job_id"] == "j1"
    assert before <= float(query["since"]) <= time.time() - 3600 + 1
    node.answer("GET", path, Answer(200, {"executions": [attempt], "next_cursor": None}))
    # The same hour, asked as an aware datetime: the same query.
    since = datetime.fromtimestamp(float(query["since"]), tz=UTC)
    (execution,) = client.list_executions(status="failed", since=since, job_id="j1").items
    assert (execution.job_id, execution.trigger, execution.error_type) == ("j1", True, "timeout")


def test_upcoming(node: Stub, client: Client) -> None:
    run = {"at": 1800000000, "at_ms": 1800000000000, "iso": "2027-01-15T09:00:00+01:00"}
    body = {"job_id": "j1", "timezone": "Europe/Madrid", "paused": False, "runs": [run]}
    node.answer("GET", "/jobs/j1/upcoming?n=1", Answer(200, body))
    upcoming = client.upcoming("j1", 1)
    assert upcoming.timezone == "Europe/Madrid"
    assert upcoming.runs[0].datetime.utcoffset() == timedelta(hours=1)
    assert upcoming.runs[0].datetime.timestamp() == 1800000000


def test_batch_results_in_order(node: Stub, client: Client) -> None:
    results = [
        {"index": 0, "status": 200, "job": JOB},
        {"index": 1, "status": 400, "error": "type: is required", "code": "validation_error",
         "field": "type"},
    ]  # fmt: skip
    node.answer("POST", "/jobs/batch", Answer(200, {"results": results}))
    result = client.batch_create([{"id": "j1", "type": "unico"}, {"id": "j2"}])
    assert node.requests[0].body == {"jobs": [{"id": "j1", "type": "unico"}, {"id": "j2"}]}
    assert [j.id for j in result.jobs] == ["j1"]
    (refused,) = result.errors
    assert (refused.index, refused.status, refused.code, refused.field) == (
        1, 400, "validation_error", "type",
    )  # fmt: skip


def test_health_of_an_unhealthy_node_is_a_report(node: Stub, client: Client) -> None:
    node.answer("GET", "/health", Answer(503, {"status": "unhealthy", "reason": "no leader"}))
    health = client.health()
    assert (health.healthy, health.reason) == (False, "no leader")
    assert len(node.requests) == 1  # a report, not a refusal: not retried


def test_ready_not_ready_is_a_report(node: Stub, client: Client) -> None:
    body = {"ready": False, "node_id": "n1", "error": "Not ready: no leader known"}
    node.answer("GET", "/ready", Answer(503, body))
    ready = client.ready()
    assert (ready.ready, ready.reason) == (False, "Not ready: no leader known")


# --- errors -------------------------------------------------------------------------------


def test_errors_carry_status_code_message_and_field(node: Stub, client: Client) -> None:
    error = {"error": "timezone: unknown zone", "code": "validation_error", "field": "timezone"}
    node.answer("POST", "/jobs", Answer(400, error))
    with pytest.raises(BadRequest) as caught:
        client.create_job({"type": "recurrente", "timezone": "Mars/Olympus"})
    e = caught.value
    assert (e.status, e.code, e.message, e.field) == (
        400,
        "validation_error",
        error["error"],
        "timezone",
    )
    assert isinstance(e, ValueError)


def test_not_found_is_a_lookup_error(node: Stub, client: Client) -> None:
    with pytest.raises(LookupError):
        client.get_job("ghost")


def test_a_conflict(node: Stub, client: Client) -> None:
    error = {"error": "an attempt is in flight", "code": "job_in_progress"}
    node.answer("PATCH", "/jobs/j1", Answer(409, error))
    with pytest.raises(Conflict, match="job_in_progress"):
        client.update_job("j1", {"payload": {}})
    assert len(node.requests) == 1


def test_a_body_that_is_not_the_endpoints_shape(node: Stub, client: Client) -> None:
    node.answer("GET", "/jobs/j1", Answer(200, b"<html>hello</html>"))
    with pytest.raises(UnexpectedAnswer, match="not a JSON object"):
        client.get_job("j1")


def test_an_error_page_that_is_not_json(node: Stub, client: Client) -> None:
    node.answer("GET", "/jobs/j1", Answer(502, b"<html>\n<h1>Bad Gateway</h1></html>"))
    with pytest.raises(Exception) as caught:
        client.get_job("j1")
    assert (caught.value.status, caught.value.code) == (502, "")  # type: ignore[attr-defined]
    assert caught.value.message == "<html> <h1>Bad Gateway</h1></html>"  # type: ignore[attr-defined]


def test_a_bad_url_and_a_bad_ca_file_are_refused_at_once(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        Client("localhost:8080")
    with pytest.raises(BadCaFile, match="cannot use /no/such.pem"):
        Client("https://localhost:8080", ca="/no/such.pem")


# --- retries ------------------------------------------------------------------------------


def test_a_write_refused_unmade_is_retried_even_a_trigger(node: Stub, client: Client) -> None:
    answer = {"job_id": "j1", "occurrence_ms": 1, "idempotency_key": "k"}
    node.answer("POST", "/jobs/j1/trigger", NO_LEADER, Answer(202, answer))
    assert client.trigger_job("j1").idempotency_key == "k"
    assert len(node.requests) == 2


def test_a_trigger_of_unknown_outcome_is_not_sent_again(node: Stub, client: Client) -> None:
    node.answer("POST", "/jobs/j1/trigger", UNKNOWN, Answer(202, {}))
    with pytest.raises(Unavailable) as caught:
        client.trigger_job("j1")
    assert caught.value.code == "unknown_outcome" and len(node.requests) == 1


def test_a_create_without_an_id_is_not_sent_again_after_a_doubt(node: Stub, client: Client) -> None:
    node.answer("POST", "/jobs", UNKNOWN, Answer(200, JOB))
    with pytest.raises(Unavailable):
        client.create_job({"type": "unico", "timestamp": 1900000000})
    assert len(node.requests) == 1


def test_a_create_with_an_id_is_sent_again_after_a_doubt(node: Stub, client: Client) -> None:
    node.answer("POST", "/jobs", UNKNOWN, Answer(200, JOB))
    assert client.create_job({"id": "j1", "type": "unico", "timestamp": 1900000000}).id == "j1"
    assert len(node.requests) == 2


def test_a_patch_with_if_match_is_not_sent_again_after_a_doubt(node: Stub, client: Client) -> None:
    node.answer("PATCH", "/jobs/j1", UNKNOWN, UNKNOWN, Answer(200, JOB))
    with pytest.raises(Unavailable):
        client.update_job("j1", {"max_attempts": 2}, if_match=3)
    assert len(node.requests) == 1
    assert client.update_job("j1", {"max_attempts": 2}).id == "j1"  # without: it is
    assert len(node.requests) == 3


def test_a_delete_that_finds_its_own_earlier_try_done_succeeds(node: Stub, client: Client) -> None:
    node.answer("DELETE", "/jobs/j1", UNKNOWN, Answer(404, {"code": "job_not_found"}))
    client.delete_job("j1")  # no NotFound: the first try deleted it
    assert len(node.requests) == 2
    with pytest.raises(NotFound):  # asked once, and not there: NotFound
        client.delete_job("j1")


def test_retries_stop_after_the_policys_tries(node: Stub, client: Client) -> None:
    node.answer("GET", "/jobs/j1", NO_LEADER)
    with pytest.raises(Unavailable) as caught:
        client.get_job("j1")
    assert caught.value.retry_after == 1 and len(node.requests) == FAST.attempts
    with pytest.raises(Unavailable):
        client.with_retry(NO_RETRY).get_job("j1")
    assert len(node.requests) == FAST.attempts + 1


def test_retry_after_is_waited(node: Stub) -> None:
    client = Client(node.url, retry=RetryPolicy(max_retry_after_s=0.3))
    node.answer("GET", "/jobs/j1", NO_LEADER, Answer(200, JOB))
    start = time.monotonic()
    client.get_job("j1")
    assert time.monotonic() - start >= 0.3  # the server's 1 s, cut to the policy's 0.3 s


def test_a_refused_connection_moves_on_to_the_next_node(node: Stub) -> None:
    sock, down = closed_port_url()
    with sock:
        client = Client([down, node.url], retry=FAST)
        node.answer("GET", "/jobs/j1", Answer(200, JOB))
        assert client.get_job("j1").id == "j1"
        assert client.url == node.url  # and stays there


def test_a_node_that_stays_down_is_unreachable_after_the_backoff() -> None:
    sock, down = closed_port_url()
    with sock:
        client = Client(down, retry=RetryPolicy(attempts=3, backoff_s=0.05))
        start = time.monotonic()
        with pytest.raises(Unreachable, match="connection refused") as caught:
            client.trigger_job("j1")
    assert caught.value.refused and isinstance(caught.value, ConnectionError)
    assert time.monotonic() - start >= 0.05 + 0.1  # two waits: it did try three times


def test_probes_are_tried_once() -> None:
    sock, down = closed_port_url()
    with sock:
        client = Client(down, retry=RetryPolicy(backoff_s=1))
        start = time.monotonic()
        for probe in (client.health, client.ready, client.livez):
            with pytest.raises(Unreachable):
                probe()
    assert time.monotonic() - start < 1  # no backoff waited


def test_without_retries_the_next_call_goes_to_the_next_node(node: Stub) -> None:
    sock, down = closed_port_url()
    with sock:
        client = Client([down, node.url], retry=NO_RETRY)
        node.answer("GET", "/jobs/j1", Answer(200, JOB))
        with pytest.raises(Unreachable):
            client.get_job("j1")
        assert client.get_job("j1").id == "j1"
