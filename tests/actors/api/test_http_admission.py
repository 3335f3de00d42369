"""Admission control of the API (actors/api/admission.py) on a real aiohttp server over
the in-memory node, whose proposals and reads can be held so that requests stay in
flight."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from actors.api.admission import Traffic
from actors.api.app import build_app
from actors.api.workers import node_wide
from actors.runtime.metrics import ApiMetrics
from tests.actors.http_harness import START_MS, Api, FakeClock, Reply, api_test, make_config
from tests.actors.memory_backend import MemoryBackend

BOUNDS = {"api.max_in_flight": 2, "api.max_reads_in_flight": 3}
JOB = {"type": "unico", "timestamp": START_MS // 1000 + 3600}
WAIT_S = 5.0


async def until(cond: Callable[[], bool], what: str) -> None:
    """Wait, a bounded time, for ``cond`` (polled: the requests run on this loop)."""
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def in_flight(api: Api, calls: list[Awaitable[Reply]]) -> list[asyncio.Task[Reply]]:
    """Start ``calls`` and return once each is waiting on the held node."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    await until(lambda: api.backend.waiting == len(tasks), f"{len(tasks)} held requests")
    return tasks


def sample(registry: CollectorRegistry, name: str, kind: str) -> float:
    value = registry.get_sample_value(f"scheduled_db_{name}", {"kind": kind})
    return 0.0 if value is None else value


def check_overloaded(reply: Reply, limit: int) -> None:
    assert reply.status == 503, reply
    assert reply.body["code"] == "overloaded" and reply.body["limit"] == limit
    assert reply.headers["Retry-After"] == "1"


@api_test(BOUNDS)
async def test_writes_past_the_bound_are_refused_at_once_and_never_proposed(api: Api) -> None:
    api.backend.hold()
    held = await in_flight(api, [api.call("POST", "/jobs", JOB) for _ in range(2)])
    registry = api.metrics.registry
    assert sample(registry, "http_requests_in_flight", "write") == 2
    for method, path in (("POST", "/jobs"), ("DELETE", "/jobs/a"), ("POST", "/jobs/a/cancel")):
        body: Any = JOB if path == "/jobs" else None
        check_overloaded(await api.call(method, path, body), limit=2)
    assert api.backend.proposed == []  # refused before anything was proposed
    assert sample(registry, "http_requests_shed_total", "write") == 3
    api.backend.let_go()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
    assert len(api.backend.proposed) == 2
    assert sample(registry, "http_requests_in_flight", "write") == 0
    assert (await api.call("POST", "/jobs", JOB)).status == 200  # room again


@api_test(BOUNDS)
async def test_with_writes_full_reads_probes_preflights_and_membership_still_go_through(
    api: Api,
) -> None:
    api.backend.hold()
    held = await in_flight(api, [api.call("POST", "/jobs", JOB) for _ in range(2)])
    for path in ("/jobs", "/health", "/ready", "/metrics", "/openapi.json", "/debug/cluster"):
        assert (await api.call("GET", path)).status == 200, path
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"}
    assert (await api.call("OPTIONS", "/jobs", headers=preflight)).status < 300
    # Not shed (no cluster secret here, so refused for that, not for load).
    assert (await api.call("POST", "/leave")).status == 403
    api.backend.let_go()
    await asyncio.gather(*held)


@api_test(BOUNDS)
async def test_reads_have_a_bound_of_their_own(api: Api) -> None:
    api.backend.hold(writes=False, reads=True)
    held = await in_flight(api, [api.call("GET", f"/jobs/j{i}") for i in range(3)])
    check_overloaded(await api.call("GET", "/jobs"), limit=3)
    assert (await api.call("GET", "/openapi.json")).status == 200  # never counted
    assert sample(api.metrics.registry, "http_requests_shed_total", "read") == 1
    api.backend.let_go()
    assert [r.status for r in await asyncio.gather(*held)] == [404, 404, 404]
    assert (await api.call("GET", "/jobs")).status == 200


@api_test()
async def test_the_limits_in_force_are_exported(api: Api) -> None:
    registry = api.metrics.registry
    assert sample(registry, "http_admission_limit", "write") == 128
    assert sample(registry, "http_admission_limit", "read") == 1024


def test_api_workers_share_one_node_wide_bound() -> None:
    """With the API in worker processes, the bound holds the sum of every worker's
    requests in flight (counted in shared memory): one worker's held writes refuse
    another's, as one process would refuse them."""
    config = make_config(BOUNDS)
    counts = {t: multiprocessing.get_context("spawn").Value("q", 0) for t in Traffic}
    backend = MemoryBackend()

    async def scenario() -> None:
        metrics = [ApiMetrics(), ApiMetrics()]
        apps = [
            build_app(backend, config, m, FakeClock(), node_wide=node_wide(config, counts, 2))
            for m in metrics
        ]
        async with TestClient(TestServer(apps[0])) as one, TestClient(TestServer(apps[1])) as two:
            backend.hold()
            held = [asyncio.ensure_future(one.post("/jobs", json=JOB)) for _ in range(2)]
            await until(lambda: backend.waiting == 2, "two held writes in the first worker")
            async with two.post("/jobs", json=JOB) as refused:
                assert refused.status == 503
                assert (await refused.json())["limit"] == 2
            limits = [sample(m.registry, "http_admission_limit", "write") for m in metrics]
            assert limits == [1.0, 1.0]  # shares: the node's scrape sums them to 2
            backend.let_go()
            assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
            async with two.post("/jobs", json=JOB) as taken:
                assert taken.status == 200  # room again, in either worker
        assert counts[Traffic.WRITE].value == 0

    asyncio.run(scenario())
