"""The forwarder against a scripted leader: a write is sent again only when it was
certainly not made, and never twice by the HTTP client underneath.

The leader is a raw HTTP server (tests/actors/raw_http_server.py) so that it can do
what a real leader does when it dies mid-request: read the request and close.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from actors.api.backend import NodeStatus
from actors.api.errors import error_middleware
from actors.api.forward import FORWARDED_HEADER, Forwarder
from scheduled_db.errors import NotLeader
from tests.actors.raw_http_server import Peer, RawServer, bounded, response

WAIT_S = 0.5  # the forwarder's wait for a leader, kept short


class FollowerBackend:
    """A follower whose leader is at ``address``; every local write is refused."""

    node_id = "node-2"

    def __init__(self, address: str) -> None:
        self.address = address

    async def status(self) -> NodeStatus:
        return NodeStatus("node-2", "follower", "node-1", self.address, 3, 10, 10)


async def refuse(request: web.Request) -> web.Response:
    raise NotLeader("node-1")


@asynccontextmanager
async def follower(address: str) -> AsyncIterator[Callable[..., Awaitable[tuple[int, dict]]]]:
    app = web.Application(middlewares=[error_middleware(1 << 20)])
    Forwarder(FollowerBackend(address), WAIT_S).install(app)  # type: ignore[arg-type]
    app.router.add_route("*", "/jobs/{id}", refuse)
    app.router.add_route("*", "/jobs", refuse)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as client:

        async def call(
            method: str,
            path: str,
            headers: dict[str, str] | None = None,
            raw: list[bytes] | None = None,
        ) -> tuple[int, dict]:
            """The answer's status and body; its headers go into ``headers`` and its
            body as it came into ``raw``, if given."""
            async with client.request(method, f"http://127.0.0.1:{port}{path}") as resp:
                if headers is not None:
                    headers.update(resp.headers)
                body = await resp.read()
                if raw is not None:
                    raw.append(body)
                return resp.status, json.loads(body or b"{}")

        try:
            yield call
        finally:
            await runner.cleanup()


def leader_address(server: RawServer) -> str:
    return f"127.0.0.1:{server.port}"


async def read_then_close(peer: Peer) -> None:
    """A leader that dies after reading the request: the write may have been made."""
    await peer.read_request()
    peer.close()


def answer(
    status: bytes, code: str | None, headers: bytes = b""
) -> Callable[[Peer], Awaitable[None]]:
    body = json.dumps({"error": "x", "code": code}).encode() if code else b"{}"
    head = b"Content-Type: application/json\r\n" + headers

    async def script(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(response(body, status, head))

    return script


@bounded
async def test_a_request_cut_off_after_it_was_sent_is_an_unknown_outcome_sent_once() -> None:
    for method in ("DELETE", "POST"):  # DELETE: aiohttp would resend it by itself
        async with RawServer(read_then_close) as leader, follower(leader_address(leader)) as call:
            status, body = await call(method, "/jobs/x")
            assert (status, body["code"]) == (503, "unknown_outcome"), body
            assert len(leader.requests) == 1, method  # never sent twice
            assert FORWARDED_HEADER.encode() in leader.requests[0].head


@bounded
async def test_a_forwarded_json_answer_comes_back_compact_whatever_the_leader_wrote() -> None:
    """A leader of an older version spaced its JSON; the original's scripts grep
    ``"id":"..."``, so the follower passes the answer on in the API's compact form."""
    spaced = b'{"id": "x", "type": "unico", "note": "a: b, c"}'

    async def old_leader(peer: Peer) -> None:
        while await peer.read_request() is not None:
            head = b"Content-Type: application/json; charset=utf-8\r\n"
            await peer.send(response(spaced, b"200 OK", head))

    async with RawServer(old_leader) as leader, follower(leader_address(leader)) as call:
        bodies: list[bytes] = []
        assert (await call("POST", "/jobs", raw=bodies))[0] == 200
        assert bodies == [b'{"id":"x","type":"unico","note":"a: b, c"}\n']


@bounded
async def test_an_unknown_outcome_from_the_leader_is_passed_on_not_retried() -> None:
    async with (
        RawServer(answer(b"503 Service Unavailable", "unknown_outcome")) as leader,
        follower(leader_address(leader)) as call,
    ):
        status, body = await call("DELETE", "/jobs/x")
        assert (status, body["code"]) == (503, "unknown_outcome")
        assert len(leader.requests) == 1


@bounded
async def test_a_refusal_before_proposing_is_retried_until_the_wait_ends() -> None:
    async with (
        RawServer(answer(b"503 Service Unavailable", "not_leader")) as leader,
        follower(leader_address(leader)) as call,
    ):
        status, body = await call("DELETE", "/jobs/x")
        assert (status, body["code"]) == (503, "not_leader")  # the refusal stands
        assert len(leader.requests) >= 2  # certainly not made: safe to ask again


@bounded
async def test_the_leader_s_answer_comes_back_as_it_is() -> None:
    async with (
        RawServer(answer(b"404 Not Found", "job_not_found")) as leader,
        follower(leader_address(leader)) as call,
    ):
        status, body = await call("DELETE", "/jobs/x")
        assert (status, body["code"]) == (404, "job_not_found")
        assert len(leader.requests) == 1


@bounded
async def test_an_overloaded_leader_s_refusal_comes_back_as_it_is_and_is_not_retried() -> None:
    """The leader refused on arrival (503 overloaded): the client hears that, with the
    leader's Retry-After, at once; asking the leader again would only add to its load."""
    overloaded = answer(b"503 Service Unavailable", "overloaded", b"Retry-After: 1\r\n")
    async with RawServer(overloaded) as leader, follower(leader_address(leader)) as call:
        headers: dict[str, str] = {}
        status, body = await call("POST", "/jobs", headers)
        assert (status, body["code"], headers["Retry-After"]) == (503, "overloaded", "1")
        assert len(leader.requests) == 1


@bounded
async def test_an_unreachable_leader_is_waited_for_then_503() -> None:
    async with RawServer(answer(b"200 OK", None)) as closed:
        address = leader_address(closed)
    async with follower(address) as call:  # nobody listens there any more
        status, body = await call("POST", "/jobs")
        assert (status, body["code"]) == (503, "not_leader")
