"""The node's own routes (health, cluster, join, metrics), CORS, and error hygiene."""

from __future__ import annotations

import pytest

from scheduled_db.errors import NO_LEADER
from scheduled_db.jobs.model import JobStatus
from tests.actors.http_harness import START_MS, Api, api_test

NOW_S = START_MS // 1000


async def _finish(api: Api, completed: int, failed: int, timed_out: int = 0) -> None:
    """Create jobs and run each to a final status through the state machine."""
    outcomes = [JobStatus.COMPLETED] * completed + [JobStatus.FAILED] * failed
    outcomes += [JobStatus.TIMEOUT] * timed_out
    for i, outcome in enumerate(outcomes):
        await api.create(id=f"f{i}")
        api.backend.run_attempt(f"f{i}", outcome, START_MS + 1_000, final=True)


# --- /health --------------------------------------------------------------------------


@api_test()
async def test_health_reports_role_capacity_and_execution_counts(api: Api) -> None:
    await api.create(id="p")
    await _finish(api, completed=2, failed=1, timed_out=1)
    reply = await api.call("GET", "/health")
    assert reply.status == 200
    body = reply.body
    assert body["status"] == "ok" and body["reason"] is None  # under 10 finished: no rate yet
    assert (body["role"], body["leader"], body["node_id"]) == ("leader", "10.9.8.7:8080", "node-1")
    assert body["leader_id"] == "node-1"
    assert "10.9.8.7:7000" not in reply.text  # a peer's Raft address: not on this open route
    memory = body["memory"]
    assert memory["current_bytes"] > 0 and memory["limit_bytes"] == 512 * 2**20
    assert memory["available_bytes"] == memory["limit_bytes"] - memory["current_bytes"]
    assert 0 <= memory["utilization_percent"] < 1
    jobs = {"count": 5, "limit": 100_000, "available": 99_995, "current_count": 5}
    assert body["jobs"] == jobs
    assert body["execution"] == {
        "pending": 1,
        "in_progress": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
        "timeout": 1,
        "total": 5,
        # The attempts end 25 ms after they start (run_attempt): the latest end.
        "last_executed_at": NOW_S + 1,
        "last_executed_at_ms": START_MS + 1_025,
        "failure_rate": 0.5,
    }


@api_test()
async def test_last_executed_at_is_null_until_a_run_ends_and_survives_its_job(api: Api) -> None:
    await api.create(id="p")
    execution = (await api.call("GET", "/health")).body["execution"]
    assert (execution["last_executed_at"], execution["last_executed_at_ms"]) == (None, None)
    await _finish(api, completed=1, failed=0)
    assert (await api.call("DELETE", "/jobs/f0")).status == 204
    execution = (await api.call("GET", "/health")).body["execution"]
    assert execution["last_executed_at_ms"] == START_MS + 1_025


@pytest.mark.parametrize(
    ("completed", "failed", "expected"),
    [(10, 0, "ok"), (9, 1, "ok"), (8, 2, "degraded"), (5, 5, "degraded"), (4, 6, "degraded")],
)
def test_health_status_follows_the_failure_rate(completed: int, failed: int, expected: str) -> None:
    """The original's rule: failures alone degrade a node, never make it unhealthy."""

    @api_test(config={"health.failure_threshold": 0.1})
    async def scenario(api: Api) -> None:
        await _finish(api, completed, failed)
        reply = await api.call("GET", "/health")
        assert (reply.status, reply.body["status"]) == (200, expected)

    scenario()


async def _fill_memory(api: Api) -> None:
    """Create jobs until the queue's memory is over 90 % of its budget."""
    while (await api.call("GET", "/health")).body["memory"]["utilization_percent"] <= 90:
        reply = await api.call("POST", "/jobs", {"type": "unico", "timestamp": NOW_S + 9})
        assert reply.status == 200, "the limit refused a job before 90% was reached"


@api_test(config={"queue.memory_limit": "2400B"})  # 4 jobs of ~595 bytes: 99 %
async def test_health_is_degraded_near_the_memory_limit(api: Api) -> None:
    await _fill_memory(api)
    health = await api.call("GET", "/health")
    assert (health.status, health.body["status"]) == (200, "degraded")
    assert "memory" in health.body["reason"]
    full = await api.call("POST", "/jobs", {"type": "unico", "timestamp": NOW_S + 9})
    assert full.status == 507 and full.body["type"] == "memory"


@api_test(config={"queue.memory_limit": "12KiB", "health.failure_threshold": 0.1})
async def test_health_is_503_unhealthy_with_memory_high_and_most_runs_failing(api: Api) -> None:
    await _finish(api, completed=4, failed=6)
    assert (await api.call("GET", "/health")).body["status"] == "degraded"
    await _fill_memory(api)
    reply = await api.call("GET", "/health")
    assert (reply.status, reply.body["status"]) == (503, "unhealthy")
    assert reply.body["node_id"] == "node-1"  # the whole health body, as with 200


@api_test()
async def test_health_is_503_unhealthy_while_no_leader_is_known(api: Api) -> None:
    api.backend.follow()
    reply = await api.call("GET", "/health")
    assert (reply.status, reply.body["status"]) == (503, "unhealthy")
    assert reply.body["leader"] is None and "no leader" in reply.body["reason"]
    live = await api.call("GET", "/livez")  # a liveness probe must not restart it for that
    assert (live.status, live.body) == (200, {"status": "ok", "node_id": "node-1"})
    api.backend.follow("node-2", "10.1.1.2:8080", "10.1.1.2:7000")
    assert (await api.call("GET", "/health")).status == 200


@api_test()
async def test_health_of_a_follower_names_the_leader_addresses(api: Api) -> None:
    api.backend.follow("node-2", "10.1.1.2:8080", "10.1.1.2:7000")
    body = (await api.call("GET", "/health")).body
    expected = ("follower", "10.1.1.2:8080", "node-2")
    assert (body["role"], body["leader"], body["leader_id"]) == expected
    api.backend.follow()
    body = (await api.call("GET", "/health")).body
    assert (body["leader"], body["leader_id"]) == (None, None)


# --- /debug/cluster and membership -----------------------------------------------------

SECRET = "a-cluster-secret-of-some-length"
WITH_SECRET = {"cluster.secret": SECRET}
ADMIN = {"Authorization": f"Bearer {SECRET}"}


@api_test()
async def test_debug_cluster_shows_the_raft_view(api: Api) -> None:
    await api.create(id="one")
    reply = await api.call("GET", "/debug/cluster")
    assert reply.body == {
        "node_id": "node-1",
        "is_leader": True,
        "leader": "10.9.8.7:7000",
        "raft_state": "Leader",
        "servers": [{"id": "node-1", "address": "10.9.8.7:7000"}],
        "job_count": 1,
        "role": "leader",
        "leader_id": "node-1",
        "leader_http_address": "10.9.8.7:8080",
        "term": 1,
        "commit_index": 1,
        "applied_index": 1,
        "members": [
            {
                "node_id": "node-1",
                "suffrage": "voter",
                "raft_address": "10.9.8.7:7000",
                "http_address": "10.9.8.7:8080",
                "match_index": 0,
                "last_contact": 0,
            }
        ],
    }
    assert reply.text.count('"id"') == 1  # the original's scripts count servers so


@api_test()
async def test_ready_needs_membership_a_leader_and_the_log_applied(api: Api) -> None:
    reply = await api.call("GET", "/ready")
    assert reply.status == 200 and reply.body == {"ready": True, "node_id": "node-1"}
    api.backend.follow()
    reply = await api.call("GET", "/ready")
    assert reply.status == 503 and reply.body["error"] == "Not ready: no leader known"
    api.backend.follow("node-2", "10.1.1.2:8080")
    assert (await api.call("GET", "/ready")).status == 200
    api.backend.servers = ()
    reply = await api.call("GET", "/ready")
    assert reply.status == 503 and "not a member" in reply.body["error"]


@api_test()
async def test_debug_digest_changes_with_the_state(api: Api) -> None:
    before = (await api.call("GET", "/debug/digest")).body
    await api.create(id="one")
    after = (await api.call("GET", "/debug/digest")).body
    assert before["node_id"] == after["node_id"] == "node-1"
    assert len(after["digest"]) == 64 and after["digest"] != before["digest"]
    assert (await api.call("GET", "/debug/digest")).body == after


@api_test(WITH_SECRET)
async def test_join_adds_a_learner(api: Api) -> None:
    body = {"node_id": "node-4", "address": "10.0.0.4:7000", "http_address": "10.0.0.4:8080"}
    reply = await api.call("POST", "/join", body, headers=ADMIN)
    assert reply.status == 200 and reply.body["suffrage"] == "learner"
    minimal = await api.call(
        "POST", "/join", {"node_id": "node-5", "address": "n5:7000"}, headers=ADMIN
    )
    assert minimal.status == 200 and minimal.body["http_address"] is None
    assert api.backend.learners == [
        ("node-4", "10.0.0.4:7000", "10.0.0.4:8080"),
        ("node-5", "n5:7000", ""),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "h:7000"}, "node_id"),
        ({"node_id": "-bad", "address": "h:7000"}, "node_id"),
        ({"node_id": "n"}, "address"),
        ({"node_id": "n", "address": "no-port"}, "address"),
        ({"node_id": "n", "address": "h:99999"}, "address"),
        ({"node_id": "n", "address": "h:1", "http_address": 5}, "http_address"),
        ({"node_id": "n", "address": "h:1", "role": "voter"}, "role"),
    ],
)
def test_join_validates_its_body(body: dict[str, object], field: str) -> None:
    @api_test(WITH_SECRET)
    async def scenario(api: Api) -> None:
        reply = await api.call("POST", "/join", body, headers=ADMIN)
        assert reply.status == 400 and reply.body["error"].startswith(f"{field}:"), reply
        assert api.backend.learners == []

    scenario()


@api_test(WITH_SECRET)
async def test_join_on_a_follower_is_503(api: Api) -> None:
    body = {"node_id": "node-4", "address": "10.0.0.4:7000"}
    api.backend.follow()
    reply = await api.call("POST", "/join", body, headers=ADMIN)
    assert reply.status == 503 and reply.body["error"] == NO_LEADER
    assert reply.headers["Retry-After"] == "1"
    api.backend.follow("node-2", "10.1.1.2:8080")
    reply = await api.call("POST", "/join", body, headers=ADMIN)
    assert reply.status == 503 and reply.body["leader"] == "node-2"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/join"), ("POST", "/leave"), ("DELETE", "/cluster/members/node-2")],
)
def test_membership_changes_need_the_cluster_secret(method: str, path: str) -> None:
    body = {"node_id": "node-4", "address": "10.0.0.4:7000"} if path == "/join" else None

    @api_test(WITH_SECRET)
    async def with_secret(api: Api) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET}):
            reply = await api.call(method, path, body, headers=headers)
            assert reply.status == 401 and reply.body["code"] == "unauthorized", reply
            assert reply.headers["WWW-Authenticate"] == "Bearer"
            assert SECRET not in str(reply.body)
        assert api.backend.learners == [] and len(api.backend.members) == 3

    @api_test()
    async def without_secret(api: Api) -> None:  # a single node has nothing to join
        reply = await api.call(method, path, body, headers=ADMIN)
        assert reply.status == 403 and "cluster.secret" in reply.body["error"], reply

    with_secret()
    without_secret()


@api_test(WITH_SECRET)
async def test_leave_and_delete_remove_a_member(api: Api) -> None:
    reply = await api.call("DELETE", "/cluster/members/node-3", headers=ADMIN)
    assert reply.status == 200 and reply.body == {"node_id": "node-3", "removed": True}
    reply = await api.call("POST", "/leave", {"node_id": "node-2"}, headers=ADMIN)
    assert reply.status == 200 and reply.body["node_id"] == "node-2"
    reply = await api.call("POST", "/leave", headers=ADMIN)  # no body: this node leaves
    assert reply.status == 200 and reply.body["node_id"] == "node-1"
    assert api.backend.members == []
    reply = await api.call("DELETE", "/cluster/members/node-3", headers=ADMIN)
    assert reply.status == 409 and reply.body["code"] == "membership_conflict"
    assert "not a member" in reply.body["error"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/leave", {"node_id": "-bad"}, "node_id"),
        ("POST", "/leave", {"node": "n"}, "node"),
        ("DELETE", "/cluster/members/-bad", None, "id"),
    ],
)
def test_removal_validates_the_node_id(
    method: str, path: str, body: dict[str, object] | None, field: str
) -> None:
    @api_test(WITH_SECRET)
    async def scenario(api: Api) -> None:
        reply = await api.call(method, path, body, headers=ADMIN)
        assert reply.status == 400 and reply.body["error"].startswith(f"{field}:"), reply
        assert len(api.backend.members) == 3

    scenario()


# --- /metrics ---------------------------------------------------------------------------


@api_test()
async def test_metrics_are_prometheus_text_refreshed_on_scrape(api: Api) -> None:
    await api.create(id="m1")
    await api.call("GET", "/jobs/m1")
    await api.call("GET", "/jobs/nope")
    reply = await api.call("GET", "/metrics")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body
    for name in (
        "scheduled_db_http_requests_total",
        "scheduled_db_http_request_duration_seconds_bucket",
        "scheduled_db_queue_job_limit 100000.0",
        "scheduled_db_queue_memory_usage_bytes",
        "scheduled_db_queue_memory_limit_bytes",
        "scheduled_db_queue_memory_utilization_percent",
        "scheduled_db_raft_term 1.0",
        "scheduled_db_raft_commit_index 1.0",
        "scheduled_db_raft_applied_index",  # kept by the Raft actor's hook: none here
        "scheduled_db_raft_is_leader 1.0",
        "scheduled_db_queue_job_count 1.0",
        'scheduled_db_jobs{status="pending"} 1.0',
        'route="/jobs/{id}",status="404"',
    ):
        assert name in text, name
    assert "m1" not in text and "nope" not in text  # routes are templates, not paths


# --- CORS -------------------------------------------------------------------------------

PREFLIGHT_POST = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}


@api_test()
async def test_any_origin_may_read_by_default_but_not_write(api: Api) -> None:
    origin = {"Origin": "https://ui.example"}
    reply = await api.call("GET", "/jobs", headers=origin)
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    preflight = await api.call(
        "OPTIONS", "/jobs", headers={**origin, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "POST" not in preflight.headers["Access-Control-Allow-Methods"]
    assert (await api.call("OPTIONS", "/jobs", headers=PREFLIGHT_POST)).status == 403
    # An empty-bodied cancel is a "simple" request a browser sends without a preflight.
    await api.create(id="safe")
    refused = await api.call("POST", "/jobs/safe/cancel", headers=origin)
    assert refused.status == 403 and "Cross-origin" in refused.body["error"]
    assert (await api.call("GET", "/jobs/safe")).body["status"] == "pending"
    same_origin = {"Origin": f"http://{api.client.host}:{api.client.port}"}
    assert (await api.call("POST", "/jobs/safe/cancel", headers=same_origin)).status == 200


@api_test(config={"http.cors_origins": "https://ui.example"})
async def test_a_listed_origin_may_write(api: Api) -> None:
    preflight = await api.call("OPTIONS", "/jobs", headers=PREFLIGHT_POST)
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    body = {"type": "unico", "timestamp": NOW_S + 9}
    reply = await api.call("POST", "/jobs", body, headers={"Origin": "https://ui.example"})
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    other = await api.call("GET", "/jobs", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    error = await api.call("GET", "/jobs/ghost", headers={"Origin": "https://ui.example"})
    assert error.status == 404
    assert error.headers["Access-Control-Allow-Origin"] == "https://ui.example"


@api_test(config={"http.cors_origins": ""})
async def test_cors_can_be_turned_off_and_plain_options_lists_methods(api: Api) -> None:
    reply = await api.call("GET", "/jobs", headers={"Origin": "https://ui.example"})
    assert "Access-Control-Allow-Origin" not in reply.headers
    options = await api.call("OPTIONS", "/jobs/x")
    assert options.status == 204 and options.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH"
    assert (await api.call("OPTIONS", "/nowhere")).status == 404


# --- error hygiene ----------------------------------------------------------------------


@api_test(config={"http.max_body": "64KiB"})
async def test_no_error_body_leaks_internals(api: Api) -> None:
    """A battery of bad requests; the harness checks every error body it receives."""
    json_header = {"Content-Type": "application/json"}
    statuses = set()
    for method, path, data in (
        ("POST", "/jobs", b"\xff\xfe\x00"),
        ("POST", "/jobs", b'{"type": "unico", "timestamp": 1e999}'),
        ("POST", "/jobs", b'{"type": "unico", "timestamp": ' + b"9" * 5000 + b"}"),
        ("POST", "/jobs", b'{"payload": {"a": "\\ud800"}, "type": "unico", "timestamp": 9}'),
        ("POST", "/jobs", b"{" * 70_000),
        ("POST", "/jobs", b'{"type": ["unico"]}'),
        ("POST", "/jobs", b'{"id": {"x": 1}, "type": "unico"}'),
        ("POST", "/jobs", b"null"),
        ("POST", "/join", b'{"node_id": "n", "address": "127.0.0.1:notaport"}'),
        ("GET", "/jobs/..%2F..%2Fetc%2Fpasswd", b""),
        ("TRACE", "/jobs", b""),
        ("GET", "/jobs?limit=99999999999999999999", b""),
    ):
        reply = await api.call(method, path, data=data, headers=json_header)
        assert 400 <= reply.status < 500, (path, data[:40], reply)
        statuses.add(reply.status)
    api.backend.read_error = OSError("[Errno 2] No such file: '/root/data/x.sst'")
    assert (await api.call("GET", "/jobs")).status == 500
    api.backend.read_error = None
    api.backend.refuse("unknown_outcome")
    assert (await api.call("DELETE", "/jobs/x")).status == 503
    assert statuses >= {400, 404, 405, 413}
