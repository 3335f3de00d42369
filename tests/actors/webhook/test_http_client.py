"""actors.webhook.client against real servers on 127.0.0.1 (and ::1) ephemeral ports.

The servers are raw asyncio ones (tests/actors/raw_http_server.py) on the test's own
event loop, so a test controls every byte and sees every connection; nothing is
mocked. Each test runs in its own loop, bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.webhook import client as http_client
from actors.webhook.attempt import classify_error
from actors.webhook.client import (
    DNSError,
    InvalidURLError,
    ProtocolError,
    TLSError,
    WebhookClient,
    parse_url,
)
from scheduled_db.policy.ssrf import DENY
from tests.actors.raw_http_server import (
    Hold,
    Peer,
    RawServer,
    Spawn,
    answer_ok,
    bounded,
    first_peer_then_ok,
    response,
)
from tests.actors.webhook_receiver import LOOPBACK_ALLOWED

pytestmark = pytest.mark.timeout(20)

OK_HEADERS = {"Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def webhook_client(**options: Any) -> AsyncIterator[WebhookClient]:
    options.setdefault("policy", LOOPBACK_ALLOWED)  # the servers are all on loopback
    client = WebhookClient(**options)
    try:
        yield client
    finally:
        await client.close()


async def post(client: WebhookClient, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    reply = await client.post(url, body, OK_HEADERS)
    return reply.status, reply.body


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- keep-alive and the per-origin cap ------------------------------------------------


@bounded
async def test_sequential_posts_reuse_one_connection() -> None:
    async with RawServer(answer_ok) as server, webhook_client() as client:
        for _ in range(50):
            assert await post(client, server.url()) == (200, b"ok")
    assert len(server.peers) == 1
    assert [r.peer for r in server.requests] == [0] * 50


@bounded
async def test_per_origin_cap_holds_concurrent_posts_to_four() -> None:
    hold = Hold()
    async with (
        RawServer(hold) as server,
        RawServer(answer_ok) as other,
        webhook_client(per_origin=4) as client,
        Spawn() as spawn,
    ):
        posts = [spawn(post(client, server.url())) for _ in range(20)]
        await server.wait_until(lambda: hold.held == 4)
        assert len(server.peers) == 4
        # The cap is per origin: another one is not held up behind the first.
        assert await post(client, other.url()) == (200, b"ok")
        assert not any(p.done() for p in posts)
        hold.gate.set()
        assert await asyncio.gather(*posts) == [(200, b"ok")] * 20
    assert hold.max_held == 4
    assert len(server.requests) == 20
    assert len(server.peers) == 4  # a post that got a slot took an idle connection


@bounded
async def test_warming_opens_the_connections_posts_then_use() -> None:
    hold = Hold()
    async with RawServer(hold) as server, webhook_client() as client, Spawn() as spawn:
        assert await client.warm(server.url(), 3) == 3
        await server.wait_until(lambda: len(server.peers) == 3)
        assert await client.warm(server.url(), 3) == 0  # there already
        assert server.requests == []  # connected, nothing sent
        posts = [spawn(post(client, server.url())) for _ in range(3)]
        await server.wait_until(lambda: hold.held == 3)
        assert await client.warm(server.url(), 4) == 1  # three in use, one more wanted
        hold.gate.set()
        assert await asyncio.gather(*posts) == [(200, b"ok")] * 3
    assert sorted(r.peer for r in server.requests) == [0, 1, 2]  # on the warmed ones


@bounded
async def test_warming_a_refused_or_unusable_origin_raises_nothing() -> None:
    async with webhook_client() as client:
        assert await client.warm(f"http://127.0.0.1:{closed_port()}/hook", 2) == 0
        assert await client.warm("ftp://127.0.0.1/hook", 2) == 0
    async with RawServer(answer_ok) as server, webhook_client(policy=DENY) as client:
        assert await client.warm(server.url(), 2) == 0  # loopback: refused, never dialled
    assert server.peers == []


@bounded
async def test_cancelled_post_gives_back_its_slot() -> None:
    async def hang_first(peer: Peer) -> None:
        await peer.read_request()
        await peer.wait_client_close()

    async with (
        RawServer(first_peer_then_ok(hang_first)) as server,
        webhook_client(per_origin=1) as client,
        Spawn() as spawn,
    ):
        stuck = spawn(post(client, server.url()))
        queued = spawn(post(client, server.url()))
        await server.wait_until(lambda: len(server.requests) == 1)
        queued.cancel()  # cancelled while waiting for the only slot
        stuck.cancel()  # cancelled while waiting for a response
        for task in (stuck, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_per_origin_cap_survives_many_other_origins() -> None:
    """The slot table forgets origins once it holds 4096; an origin with requests in
    flight must not be forgotten, or its cap starts afresh."""
    hold = Hold()
    port = closed_port()
    async with (
        RawServer(hold) as server,
        RawServer(answer_ok) as other,
        webhook_client(per_origin=2) as client,
        Spawn() as spawn,
    ):
        first = spawn(post(client, server.url()))
        await server.wait_until(lambda: hold.held == 1)
        for i in range(4096):  # distinct loopback addresses, nothing listening: refused
            with pytest.raises(OSError):
                await post(client, f"http://127.1.{i // 256}.{i % 256 + 1}:{port}/")
        more = [spawn(post(client, server.url())) for _ in range(2)]
        await server.wait_until(lambda: hold.held >= 2)
        # A whole exchange with another server: had the third post got a slot, it
        # would have connected and sent (it started first, and needs no DNS) by now.
        assert await post(client, other.url()) == (200, b"ok")
        assert (hold.held, len(server.peers)) == (2, 2)
        hold.gate.set()
        assert await asyncio.gather(first, *more) == [(200, b"ok")] * 3


@bounded
async def test_most_recently_used_idle_connection_is_taken_first() -> None:
    """The least recently used connection is the likeliest to have hit the server's
    idle timeout, so the most recently used one goes first."""
    gates = [asyncio.Event(), asyncio.Event()]

    async def first_held(peer: Peer) -> None:
        await peer.read_request()
        await gates[peer.index].wait()
        await peer.send(response())
        await answer_ok(peer)

    async with (
        RawServer(first_held) as server,
        webhook_client() as client,
        Spawn() as spawn,
    ):
        posts = {spawn(post(client, server.url())) for _ in range(2)}
        await server.wait_until(lambda: len(server.requests) == 2)
        for gate in reversed(gates):  # connection 1 goes idle first, then connection 0
            gate.set()
            done, posts = await asyncio.wait(posts, return_when=asyncio.FIRST_COMPLETED)
            assert [task.result() for task in done] == [(200, b"ok")]
        for _ in range(2):
            assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests][2:] == [0, 0]


@bounded
async def test_idle_connection_past_its_ttl_is_closed_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client, "IDLE_TTL_S", 0.0)
    async with RawServer(answer_ok) as server, webhook_client() as client:
        for _ in range(2):
            assert await post(client, server.url()) == (200, b"ok")
        await server.wait_until(lambda: server.peers[0].client_closed)
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_idle_connections_beyond_max_idle_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "MAX_IDLE", 1)
    hold = Hold()
    async with (
        RawServer(hold) as server,
        webhook_client() as client,
        Spawn() as spawn,
    ):
        posts = [spawn(post(client, server.url())) for _ in range(2)]
        await server.wait_until(lambda: hold.held == 2)
        hold.gate.set()
        assert await asyncio.gather(*posts) == [(200, b"ok")] * 2
        await server.wait_until(lambda: sum(p.client_closed for p in server.peers) == 1)
        assert await post(client, server.url()) == (200, b"ok")
    kept = next(p.index for p in server.peers if not p.client_closed)
    assert server.requests[-1].peer == kept
    assert len(server.peers) == 2


# --- connections the server closes ----------------------------------------------------


@bounded
async def test_idle_connection_closed_by_server_is_replaced() -> None:
    async def answer_once_then_close(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())  # keep-alive, as far as the headers go

    async with RawServer(answer_once_then_close) as server, webhook_client() as client:
        assert await post(client, server.url()) == (200, b"ok")
        await server.wait_until(lambda: len(server.peers) == 1)
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_keep_alive_race_is_retried_on_a_fresh_connection() -> None:
    """The server closes a kept-alive connection just as the next request arrives on
    it (it read the request, answered nothing): the client sends it again, once."""

    async def answer_then_drop_next(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        await peer.read_request()

    async with (
        RawServer(first_peer_then_ok(answer_then_drop_next)) as server,
        webhook_client() as client,
    ):
        assert await post(client, server.url(), b"one") == (200, b"ok")
        assert await post(client, server.url(), b"two") == (200, b"ok")
    assert [(r.peer, r.body) for r in server.requests] == [(0, b"one"), (0, b"two"), (1, b"two")]


@bounded
async def test_keep_alive_race_is_retried_only_once() -> None:
    async def answer_then_drop_next(peer: Peer) -> None:
        await peer.read_request()
        if peer.index == 0:
            await peer.send(response())
            await peer.read_request()

    async with RawServer(answer_then_drop_next) as server, webhook_client() as client:
        assert await post(client, server.url()) == (200, b"ok")
        with pytest.raises(ProtocolError):
            await post(client, server.url())
    assert [r.peer for r in server.requests] == [0, 0, 1]


@bounded
async def test_fresh_connection_closed_before_a_response_is_not_retried() -> None:
    async def drop(peer: Peer) -> None:
        await peer.read_request()

    async with RawServer(drop) as server, webhook_client() as client:
        with pytest.raises(ProtocolError) as caught:
            await post(client, server.url())
    assert len(server.peers) == 1
    assert classify_error(caught.value, 1000)[:2] == ("connection_error", True)


PARTIAL = {
    "status-line": b"HTTP/1.1 200 OK\r\n",
    "headers": b"HTTP/1.1 200 OK\r\nContent-Len",
    "content-length-body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    "chunked-body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
}


@pytest.mark.parametrize("partial", PARTIAL.values(), ids=PARTIAL.keys())
@bounded
async def test_close_after_part_of_a_response_is_protocol_error_not_retried(
    partial: bytes,
) -> None:
    async def answer_then_cut_short(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        await peer.read_request()
        await peer.send(partial)

    async with (
        RawServer(first_peer_then_ok(answer_then_cut_short)) as server,
        webhook_client() as client,
    ):
        assert await post(client, server.url()) == (200, b"ok")
        with pytest.raises(ProtocolError):
            await post(client, server.url())
        assert [r.peer for r in server.requests] == [0, 0]  # not sent again
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 0, 1]


CUT_SHORT_CLOSE = {
    "http11-close-content-length": b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
    b"Content-Length: 10\r\n\r\nabc",
    "http10-content-length": b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    "http11-close-chunked": b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nab",
}


@pytest.mark.parametrize("partial", CUT_SHORT_CLOSE.values(), ids=CUT_SHORT_CLOSE.keys())
@bounded
async def test_close_cutting_a_delimited_body_short_is_protocol_error(partial: bytes) -> None:
    async def cut_short(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(partial)

    async with RawServer(cut_short) as server, webhook_client() as client:
        with pytest.raises(ProtocolError):
            await post(client, server.url())


@pytest.mark.parametrize("server_closes", [True, False], ids=["server-closes", "server-waits"])
@bounded
async def test_connection_close_response_is_not_reused(server_closes: bool) -> None:
    async def answer_and_close(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(headers=b"Connection: close\r\n"))
        if not server_closes:
            await peer.wait_client_close()  # the client must close it itself

    async with RawServer(answer_and_close) as server, webhook_client() as client:
        for _ in range(5):
            assert await post(client, server.url()) == (200, b"ok")
        if not server_closes:
            await server.wait_until(lambda: all(p.client_closed for p in server.peers))
    assert [r.peer for r in server.requests] == [0, 1, 2, 3, 4]


# --- response bodies -----------------------------------------------------------------


@bounded
async def test_chunked_body_in_pieces_then_reused() -> None:
    async def chunked(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
            await peer.send(b"lo\r\n6\r\n world\r\n")
            await peer.send(b"0\r\n\r\n")

    async with RawServer(chunked) as server, webhook_client() as client:
        assert await post(client, server.url()) == (200, b"hello world")
        assert await post(client, server.url()) == (200, b"hello world")
    assert [r.peer for r in server.requests] == [0, 0]


CLOSE_DELIMITED = {
    "http11-connection-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    "http11-no-length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    "http10": b"HTTP/1.0 200 OK\r\n\r\n",
}


@pytest.mark.parametrize("head", CLOSE_DELIMITED.values(), ids=CLOSE_DELIMITED.keys())
@bounded
async def test_body_delimited_by_the_close(head: bytes) -> None:
    async def until_close(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head + b"first part, ")
        await peer.send(b"second part")

    async with RawServer(until_close) as server, webhook_client() as client:
        for _ in range(2):
            assert await post(client, server.url()) == (200, b"first part, second part")
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_status_and_retry_after() -> None:
    async def unavailable(peer: Peer) -> None:
        while await peer.read_request() is not None:
            headers = b"retry-after: 120\r\nX-Other: 1\r\n"
            await peer.send(response(b"busy", b"503 Service Unavailable", headers))

    async with RawServer(unavailable) as server, webhook_client() as client:
        reply = await client.post(server.url(), b"{}", OK_HEADERS)
    assert (reply.status, reply.retry_after, reply.body) == (503, "120", b"busy")


@bounded
async def test_interim_1xx_response_is_skipped() -> None:
    async def early_hints(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response())

    async with RawServer(early_hints) as server, webhook_client() as client:
        assert await post(client, server.url()) == (200, b"ok")


MIB = 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@bounded
async def test_read_limit_keeps_the_first_bytes_and_drops_the_connection(chunked: bool) -> None:
    big = bytes(i % 251 for i in range(MIB))

    async def huge(peer: Peer) -> None:
        await peer.read_request()
        if chunked:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, MIB, 64 * 1024):
                await peer.send(b"%x\r\n%s\r\n" % (64 * 1024, big[i : i + 64 * 1024]))
            await peer.send(b"0\r\n\r\n")
        else:
            await peer.send(response(big))
        await peer.wait_client_close()

    async with (
        RawServer(first_peer_then_ok(huge)) as server,
        webhook_client(read_limit=1000) as client,
    ):
        assert await post(client, server.url()) == (200, big[:1000])
        await server.wait_until(lambda: server.peers[0].client_closed)
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_body_of_exactly_read_limit_is_whole_and_reused() -> None:
    async def exact(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(response(b"x" * 1000))

    async with RawServer(exact) as server, webhook_client(read_limit=1000) as client:
        for _ in range(2):
            assert await post(client, server.url()) == (200, b"x" * 1000)
    assert [r.peer for r in server.requests] == [0, 0]


# --- malformed responses -------------------------------------------------------------

MALFORMED = {
    "not-http": b"NOT HTTP\r\n\r\n",
    "binary": b"\x00\x01\x02\xff\r\n\r\n",
    "bad-status": b"HTTP/1.1 abc OK\r\n\r\n",
    "bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("garbage", MALFORMED.values(), ids=MALFORMED.keys())
@bounded
async def test_malformed_response_is_protocol_error_and_not_reused(garbage: bytes) -> None:
    async def answer_garbage(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(garbage)
        await peer.wait_client_close()

    async with (
        RawServer(first_peer_then_ok(answer_garbage)) as server,
        RawServer(answer_ok) as good,
        webhook_client() as client,
    ):
        with pytest.raises(ProtocolError) as caught:
            await post(client, server.url())
        await server.wait_until(lambda: server.peers[0].client_closed)
        assert await post(client, server.url()) == (200, b"ok")
        assert await post(client, good.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]
    assert classify_error(caught.value, 1000)[:2] == ("connection_error", True)


@bounded
async def test_upgrade_response_is_no_success_and_not_reused() -> None:
    """A 101 ends the HTTP exchange; whether as a ProtocolError or as the status 101
    (an http_error to the caller), it must not count as a delivery, nor be reused."""

    async def upgrade(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        await peer.wait_client_close()

    async with RawServer(first_peer_then_ok(upgrade)) as server, webhook_client() as client:
        try:
            status = (await client.post(server.url(), b"{}", OK_HEADERS)).status
        except ProtocolError:
            status = None
        assert status in (None, 101)
        await server.wait_until(lambda: server.peers[0].client_closed)
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_bytes_on_an_idle_connection_drop_it() -> None:
    """Bytes nobody asked for leave the connection in no known state."""
    sent = asyncio.Event()

    async def answer_then_junk(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        await sent.wait()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
        await peer.wait_client_close()

    async with (
        RawServer(first_peer_then_ok(answer_then_junk)) as server,
        webhook_client() as client,
    ):
        assert await post(client, server.url()) == (200, b"ok")
        sent.set()  # the first exchange is over: the connection is idle now
        await server.wait_until(lambda: server.peers[0].client_closed)
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_bytes_after_a_complete_response_drop_the_connection() -> None:
    async def trailing_junk(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(response() + b"JUNK")

    async with RawServer(trailing_junk) as server, webhook_client() as client:
        for _ in range(2):
            assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]


# --- the request ---------------------------------------------------------------------


@bounded
async def test_request_bytes_are_exact() -> None:
    async with RawServer(answer_ok) as server, webhook_client() as client:
        headers = {"Content-Type": "application/json", "Idempotency-Key": "k\t1"}
        url = f"http://127.0.0.1:{server.port}/hook/x?a=1&b=%20#fragment"
        reply = await client.post(url, b'{"a":1}', headers)
    assert reply.status == 200
    (request,) = server.requests
    assert request.head == (
        b"POST /hook/x?a=1&b=%20 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + str(server.port).encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Idempotency-Key: k\t1\r\n"
        b"Content-Length: 7\r\n\r\n"
    )
    assert request.body == b'{"a":1}'


@bounded
async def test_empty_body_and_path() -> None:
    async with RawServer(answer_ok) as server, webhook_client() as client:
        await client.post(f"http://127.0.0.1:{server.port}", b"", {})
        await client.post(f"http://127.0.0.1:{server.port}?q=1", b"", {})
    assert [(r.request_line, r.header_lines()[-1], r.body) for r in server.requests] == [
        (b"POST / HTTP/1.1", b"Content-Length: 0", b""),
        (b"POST /?q=1 HTTP/1.1", b"Content-Length: 0", b""),
    ]


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv6_literal_host_header() -> None:
    if not ipv6_loopback():
        pytest.skip("IPv6 loopback (::1) is not available on this machine")

    @bounded
    async def check() -> None:
        async with RawServer(answer_ok, host="::1") as server, webhook_client() as client:
            assert await post(client, server.url()) == (200, b"ok")
        (request,) = server.requests
        assert request.request_line == b"POST /hook HTTP/1.1"
        assert request.header_lines()[0] == b"Host: [::1]:%d" % server.port

    check()


@pytest.mark.parametrize(
    ("url", "host_header", "target"),
    [
        ("http://Example.COM/a", "example.com", "/a"),
        ("http://example.com:80/a", "example.com", "/a"),
        ("http://example.com:443/a", "example.com:443", "/a"),
        ("https://example.com/a", "example.com", "/a"),
        ("https://example.com:443/a", "example.com", "/a"),
        ("https://example.com:80/a", "example.com:80", "/a"),
        ("http://[::1]/a?b", "[::1]", "/a?b"),
        ("https://[2001:db8::1]:8443", "[2001:db8::1]:8443", "/"),
        ("http://user:pw@example.com/a#f", "example.com", "/a"),
    ],
)
def test_host_header_and_target(url: str, host_header: str, target: str) -> None:
    origin, got_target = parse_url(url)
    assert (origin.host_header, got_target) == (host_header, target)


BAD_HEADERS = {
    "crlf-in-value": {"X-A": "v\r\nX-Injected: 1"},
    "lf-in-value": {"X-A": "v\nX-Injected: 1"},
    "cr-in-value": {"X-A": "v\rX"},
    "crlf-in-name": {"X-A\r\nX-Injected": "1"},
    "nul-in-value": {"X-A": "v\x00"},
    "non-ascii-value": {"X-A": "caf\u00e9"},
}


@pytest.mark.parametrize("headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
@bounded
async def test_header_with_control_characters_is_refused_before_sending(
    headers: dict[str, str],
) -> None:
    async with RawServer(answer_ok) as server, webhook_client() as client:
        with pytest.raises(InvalidURLError) as caught:
            await client.post(server.url(), b"{}", {"X-Fine": "1", **headers})
        assert await post(client, server.url()) == (200, b"ok")
    assert len(server.peers) == 1
    (request,) = server.requests
    assert b"X-Injected" not in request.head and b"X-A" not in request.head
    assert classify_error(caught.value, 1000)[:2] == ("connection_error", False)


BAD_URLS = [
    "ftp://127.0.0.1/hook",
    "file:///etc/passwd",
    "127.0.0.1/hook",
    "http://",
    "http:///hook",
    "https://:8080/hook",
    "http://127.0.0.1:99999/hook",
    "http://127.0.0.1:port/hook",
    "http://127.0.0.1/a b",
    "http://127.0.0.1/a?b c",
    "http://exa mple.com/",
    "http://127.0.0.1/a\x00b",
    "http://127.0.0.1/a\x7fb",
    "http://127.0.0.1/a\x1bb",
    "http://caf\u00e9.example/",
]


@pytest.mark.parametrize(
    "url",
    [
        *BAD_URLS,
        # urlsplit would delete these three silently; the client refuses them first.
        "http://127.0.0.1/a\tb",
        "http://127.0.0.1/a\r\nb",
        "http://127.0.0.1/a\nb",
    ],
)
def test_invalid_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidURLError):
        parse_url(url)


@bounded
async def test_invalid_url_is_refused_by_post_without_a_connection() -> None:
    async with RawServer(answer_ok) as server, webhook_client() as client:
        for url in (f"ftp://127.0.0.1:{server.port}/", f"http://127.0.0.1:{server.port}/a b"):
            with pytest.raises(InvalidURLError):
                await post(client, url)
        assert await post(client, server.url()) == (200, b"ok")
    assert len(server.requests) == 1


# --- connecting: DNS, refusal, TLS ----------------------------------------------------


@bounded
async def test_unresolvable_host_is_dns_error() -> None:
    async with webhook_client() as client:
        with pytest.raises(DNSError) as caught:
            await post(client, "http://no-such-host.invalid/hook")
    assert classify_error(caught.value, 1000)[0] == "dns_error"


@bounded
async def test_refused_port_is_a_plain_os_error() -> None:
    async with webhook_client() as client:
        with pytest.raises(OSError) as caught:
            await post(client, f"http://127.0.0.1:{closed_port()}/hook")
    assert isinstance(caught.value, ConnectionRefusedError)
    assert not isinstance(caught.value, DNSError | TLSError | ProtocolError)
    assert classify_error(caught.value, 1000)[:2] == ("connection_error", True)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) for localhost and 127.0.0.1, made by the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    command = [
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_self_signed_certificate_is_tls_error(
    self_signed: tuple[Path, Path], host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):  # the system's trust store only
        monkeypatch.delenv(name, raising=False)

    @bounded
    async def check() -> None:
        tls = server_tls(*self_signed)
        async with RawServer(answer_ok, tls=tls) as server, webhook_client() as client:
            with pytest.raises(TLSError) as caught:
                await post(client, server.url(host=host))
        assert server.requests == []
        assert classify_error(caught.value, 1000)[0] == "tls_error"

    check()


def test_trusted_certificate_works_and_is_reused(
    self_signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read by the default context

    @bounded
    async def check() -> None:
        async with (
            RawServer(answer_ok, tls=server_tls(cert, key)) as server,
            webhook_client() as client,
        ):
            for _ in range(3):
                assert await post(client, server.url(host="localhost")) == (200, b"ok")
        assert [r.peer for r in server.requests] == [0, 0, 0]
        assert server.requests[0].header_lines()[0] == b"Host: localhost:%d" % server.port

    check()


# --- cancellation and timeouts -------------------------------------------------------


async def never_answer_first(peer: Peer) -> None:
    if peer.index > 0:
        await answer_ok(peer)
        return
    await peer.read_request()
    await peer.wait_client_close()


@bounded
async def test_cancelled_post_closes_its_connection() -> None:
    async with (
        RawServer(never_answer_first) as server,
        webhook_client() as client,
        Spawn() as spawn,
    ):
        task = spawn(post(client, server.url()))
        await server.wait_until(lambda: len(server.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.wait_until(lambda: server.peers[0].client_closed)
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]


@bounded
async def test_timeout_around_post_is_prompt_and_closes_the_connection() -> None:
    async with RawServer(never_answer_first) as server, webhook_client() as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.2):
                await post(client, server.url())
        assert time.monotonic() - started < 1.5
        assert len(server.requests) == 1
        await server.wait_until(lambda: server.peers[0].client_closed)
        assert await post(client, server.url()) == (200, b"ok")
    assert [r.peer for r in server.requests] == [0, 1]
    assert classify_error(caught.value, 200) == ("timeout", True, "no response within 200 ms")
