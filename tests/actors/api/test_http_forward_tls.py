"""Forwarding to a leader whose API serves HTTPS (``api.tls_*``): the leader's
certificate is checked, host name included, and a leader that fails the check is
never sent the write."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from actors.api.errors import error_middleware
from actors.api.forward import FORWARDED_HEADER, Forwarder
from actors.runtime.tls import ApiTls, api_tls
from tests.actors.api.test_http_forward import WAIT_S, FollowerBackend, refuse
from tests.actors.raw_http_server import bounded
from tests.tls_certs import Authority, CertFiles


def tls_of(files: CertFiles, ca: Authority) -> ApiTls:
    return api_tls(str(files.cert), str(files.key), str(ca.ca_file))


@asynccontextmanager
async def https_leader(tls: ApiTls, seen: list[str]) -> AsyncIterator[int]:
    """A leader that accepts every write over HTTPS; its port.  ``seen`` collects
    the paths it was sent."""

    async def accept(request: web.Request) -> web.Response:
        assert request.headers[FORWARDED_HEADER] == "node-2"
        seen.append(request.path)
        return web.json_response({"id": "x"}, status=201)

    app = web.Application()
    app.router.add_post("/jobs", accept)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def post_via_follower(leader_port: int, follower_tls: ApiTls) -> tuple[int, dict]:
    """POST /jobs to a follower (plain HTTP here) that forwards with ``follower_tls``."""
    backend = FollowerBackend(f"127.0.0.1:{leader_port}")
    app = web.Application(middlewares=[error_middleware(1 << 20)])
    Forwarder(backend, WAIT_S, tls=follower_tls.client).install(app)  # type: ignore[arg-type]
    app.router.add_post("/jobs", refuse)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"http://127.0.0.1:{port}/jobs", data=b"{}") as resp,
        ):
            return resp.status, json.loads(await resp.read())
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Authority, Path]:
    root = tmp_path_factory.mktemp("pki")
    return Authority(root, "cluster-ca"), Authority(root, "other-ca"), root


def test_a_write_is_forwarded_over_https_to_a_leader_the_ca_vouches_for(
    pki: tuple[Authority, Authority, Path],
) -> None:
    ca, _, _ = pki
    seen: list[str] = []

    @bounded
    async def run() -> None:
        async with https_leader(tls_of(ca.issue("leader"), ca), seen) as port:
            status, body = await post_via_follower(port, tls_of(ca.issue("follower"), ca))
            assert (status, body) == (201, {"id": "x"})

    run()
    assert seen == ["/jobs"]


@pytest.mark.parametrize("wrong", ["another_ca", "another_name"])
def test_a_leader_that_fails_the_check_is_never_sent_the_write(
    wrong: str, pki: tuple[Authority, Authority, Path], caplog: pytest.LogCaptureFixture
) -> None:
    ca, other, _ = pki
    leader = other.issue("imposter") if wrong == "another_ca" else ca.issue("misnamed", "x.test")
    seen: list[str] = []

    @bounded
    async def run() -> None:
        async with https_leader(tls_of(leader, other if wrong == "another_ca" else ca), seen) as p:
            status, body = await post_via_follower(p, tls_of(ca.issue("follower"), ca))
            assert (status, body["code"]) == (503, "not_leader"), body

    with caplog.at_level(logging.WARNING, logger="actors.api.forward"):
        run()
    assert seen == []
    assert any("certificate" in r.getMessage().lower() for r in caplog.records)
