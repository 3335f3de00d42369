"""The test proxy over real loopback sockets: each mode, close, and the mesh Partitioner.

Upstream is either an asyncio echo server or a bare listening socket whose accepted
end the test drives itself.  Waits are bounded waits on a condition; the only
timeouts that are expected to expire are the ones asserting silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import select
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from actors.runtime.loop_thread import LoopThread
from scheduled_db.testing.harness import free_port
from tests.aio_servers import close_server
from tests.integration.partitioner import Partitioner
from tests.integration.tcp_proxy import Mode, TcpProxy

WAIT_S = 5.0  # bound on anything expected to happen
SILENCE_S = 0.3  # how long "nothing arrives" is watched for


class EchoServer:
    """Writes back whatever each connection sends, until it ends."""

    def __init__(self) -> None:
        self._lt = LoopThread("echo-server")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = self._lt.start(self._open(), WAIT_S, self._close)

    async def _open(self) -> int:
        self._server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass  # the proxy reset us: nothing to echo any more
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _close(self) -> None:
        assert self._server is not None
        await close_server(self._server)  # every accepted connection has its writer now
        for w in list(self._writers):
            w.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def close(self) -> None:
        self._lt.stop(self._close, WAIT_S)


class Sockets:
    """Blocking loopback sockets that all get closed at teardown."""

    def __init__(self) -> None:
        self._open: list[socket.socket] = []

    def track(self, s: socket.socket) -> socket.socket:
        s.settimeout(WAIT_S)
        self._open.append(s)
        return s

    def connect(self, port: int) -> socket.socket:
        return self.track(socket.create_connection(("127.0.0.1", port), timeout=WAIT_S))

    def listener(self) -> socket.socket:
        s = self.track(socket.socket())
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        return s

    def accept(self, listener: socket.socket) -> socket.socket:
        return self.track(listener.accept()[0])

    def close(self) -> None:
        for s in self._open:
            s.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def socks() -> Iterator[Sockets]:
    s = Sockets()
    yield s
    s.close()


@pytest.fixture
def echo_proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", echo.port)) as proxy:
        yield proxy


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"connection ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def assert_silent(s: socket.socket) -> None:
    """Nothing arrives within SILENCE_S, and the connection has not ended either."""
    s.settimeout(SILENCE_S)
    try:
        with pytest.raises(TimeoutError):
            data = s.recv(1)
            raise AssertionError(f"expected silence, got {data!r}")
    finally:
        s.settimeout(WAIT_S)


def assert_ended(s: socket.socket) -> None:
    """The connection ends (EOF or reset) within WAIT_S, whatever is still buffered."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if not s.recv(65536):
                return
        except ConnectionResetError:
            return
    raise AssertionError("connection still open")


def assert_dropped(socks: Sockets, port: int) -> None:
    """A connection to ``port`` ends at once; the reset may even beat connect() home."""
    try:
        s = socks.connect(port)
    except ConnectionResetError:
        return
    assert_ended(s)


def assert_carries(src: socket.socket, dst: socket.socket, payload: bytes) -> None:
    src.sendall(payload)
    assert recv_exactly(dst, len(payload)) == payload


def assert_echoes(s: socket.socket, payload: bytes = b"ping") -> None:
    s.sendall(payload)
    assert recv_exactly(s, len(payload)) == payload


# --- pass through ---------------------------------------------------------------------------


def test_pass_through_echoes_bulk_data(echo_proxy: TcpProxy, socks: Sockets) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: many chunks, and backpressure on the way
    client = socks.connect(echo_proxy.port)
    sender = threading.Thread(target=client.sendall, args=(payload,))
    sender.start()
    got = recv_exactly(client, len(payload))
    sender.join(WAIT_S)
    assert got == payload
    stats = echo_proxy.wait_for(lambda s: s.forwarded == 2 * len(payload), WAIT_S)
    assert (stats.accepted, stats.active, stats.up_bytes, stats.lost) == (1, 1, len(payload), 0)


def test_half_close_is_forwarded(socks: Sockets) -> None:
    upstream = socks.listener()
    with TcpProxy(upstream.getsockname()) as proxy:
        client = socks.connect(proxy.port)
        server = socks.accept(upstream)
        client.sendall(b"last words")
        client.shutdown(socket.SHUT_WR)
        assert recv_exactly(server, 10) == b"last words"
        assert server.recv(1) == b""  # the FIN came through
        assert_carries(server, client, b"reply still flows")


def test_traffic_can_be_awaited(echo_proxy: TcpProxy, socks: Sockets) -> None:
    client = socks.connect(echo_proxy.port)
    mark = echo_proxy.forwarded_bytes()
    client.sendall(b"x" * 10)
    stats = echo_proxy.wait_for_traffic(mark, WAIT_S)
    assert stats.forwarded > mark


def test_unreachable_target_resets_the_client(socks: Sockets) -> None:
    nobody = socks.listener()
    port = nobody.getsockname()[1]
    nobody.close()  # the port is now closed: dialling it is refused
    with TcpProxy(("127.0.0.1", port)) as proxy:
        assert_dropped(socks, proxy.port)


# --- blackhole ------------------------------------------------------------------------------


def test_blackhole_silences_both_directions_without_closing(socks: Sockets) -> None:
    upstream = socks.listener()
    with TcpProxy(upstream.getsockname()) as proxy:
        client = socks.connect(proxy.port)
        server = socks.accept(upstream)
        assert_carries(client, server, b"before")
        proxy.blackhole()
        client.sendall(b"up")
        server.sendall(b"down!")
        stats = proxy.wait_for(lambda s: s.lost == 7, WAIT_S, "both writes dropped")
        assert (stats.lost_up_bytes, stats.lost_down_bytes, stats.reset) == (2, 5, 0)
        assert_silent(server)  # silent, not ended: a recv on an ended socket returns b""
        assert_silent(client)
        assert stats.forwarded == proxy.stats().forwarded == 6


def test_blackhole_holds_new_connections_without_dialling(socks: Sockets) -> None:
    upstream = socks.listener()
    with TcpProxy(upstream.getsockname()) as proxy:
        proxy.blackhole()
        client = socks.connect(proxy.port)  # the connect itself succeeds
        client.sendall(b"hello?")
        proxy.wait_for(lambda s: s.lost_up_bytes == 6, WAIT_S, "the held bytes dropped")
        readable, _, _ = select.select([upstream], [], [], SILENCE_S)
        assert readable == []  # the target never saw a connection
        assert_silent(client)


def test_leaving_a_blackhole_resets_broken_streams_and_keeps_quiet_ones(
    echo_proxy: TcpProxy, socks: Sockets
) -> None:
    quiet = socks.connect(echo_proxy.port)
    lossy = socks.connect(echo_proxy.port)
    assert_echoes(quiet)
    assert_echoes(lossy)
    echo_proxy.blackhole()
    held = socks.connect(echo_proxy.port)
    lossy.sendall(b"into the void")
    echo_proxy.wait_for(lambda s: s.accepted == 3 and s.lost_up_bytes == 13, WAIT_S)

    echo_proxy.pass_through()

    assert_ended(lossy)  # a stream with a hole is never resumed
    assert_ended(held)  # a connect made during the partition never completed
    assert echo_proxy.stats().reset == 2
    assert_echoes(quiet, b"still here")
    assert_echoes(socks.connect(echo_proxy.port), b"new")


# --- delay ----------------------------------------------------------------------------------


def test_delay_holds_each_chunk_back_and_keeps_order(socks: Sockets) -> None:
    upstream = socks.listener()
    with TcpProxy(upstream.getsockname()) as proxy:
        client = socks.connect(proxy.port)
        server = socks.accept(upstream)
        proxy.delay(0.3)
        parts = [b"one;", b"two;", b"three;"]
        sent_at = time.monotonic()
        for part in parts:
            client.sendall(part)
        first = server.recv(1)
        waited = time.monotonic() - sent_at
        rest = recv_exactly(server, len(b"".join(parts)) - 1)
        assert waited >= 0.3
        assert first + rest == b"".join(parts)


def test_delay_applies_to_the_reverse_direction_too(socks: Sockets) -> None:
    upstream = socks.listener()
    with TcpProxy(upstream.getsockname()) as proxy:
        client = socks.connect(proxy.port)
        server = socks.accept(upstream)
        proxy.delay(0.2)
        sent_at = time.monotonic()
        server.sendall(b"back")
        assert recv_exactly(client, 4) == b"back"
        assert time.monotonic() - sent_at >= 0.2


def test_ending_a_delay_does_not_let_later_bytes_overtake(socks: Sockets) -> None:
    upstream = socks.listener()
    with TcpProxy(upstream.getsockname()) as proxy:
        client = socks.connect(proxy.port)
        server = socks.accept(upstream)
        proxy.delay(0.3)
        client.sendall(b"first,")
        proxy.wait_for(lambda s: s.read_up_bytes == 6, WAIT_S, "the first part queued")
        proxy.pass_through()
        client.sendall(b"second")
        assert recv_exactly(server, 12) == b"first,second"


def test_delay_rejects_a_negative_time(echo_proxy: TcpProxy) -> None:
    with pytest.raises(ValueError):
        echo_proxy.delay(-1)


# --- cut and drop new -----------------------------------------------------------------------


def test_cut_resets_both_ends_once_then_passes_through(socks: Sockets) -> None:
    upstream = socks.listener()
    with TcpProxy(upstream.getsockname()) as proxy:
        client = socks.connect(proxy.port)
        server = socks.accept(upstream)
        assert_carries(client, server, b"hi")
        proxy.blackhole()

        assert proxy.cut() == 1

        assert_ended(client)
        assert_ended(server)
        assert proxy.mode is Mode.PASS
        again = socks.connect(proxy.port)
        assert_carries(again, socks.accept(upstream), b"reconnected")


def test_drop_new_resets_new_connections_only(echo_proxy: TcpProxy, socks: Sockets) -> None:
    old = socks.connect(echo_proxy.port)
    assert_echoes(old)
    echo_proxy.drop_new()
    assert_dropped(socks, echo_proxy.port)
    assert_echoes(old, b"old one still works")
    echo_proxy.pass_through()
    assert_echoes(socks.connect(echo_proxy.port))


# --- lifecycle ------------------------------------------------------------------------------


def test_close_with_live_connections_is_quick_and_idempotent(
    echo: EchoServer, socks: Sockets
) -> None:
    proxy = TcpProxy(("127.0.0.1", echo.port)).start()
    live = [socks.connect(proxy.port) for _ in range(3)]
    for s in live:
        assert_echoes(s)
    proxy.delay(10)  # bytes queued behind a long delay must not hold close() up
    live[0].sendall(b"stuck")
    proxy.wait_for(lambda s: s.read_up_bytes == 3 * 4 + 5, WAIT_S, "the stuck bytes queued")
    proxy.blackhole()
    live.append(socks.connect(proxy.port))  # a held one too
    proxy.wait_for(lambda s: s.accepted == 4, WAIT_S)
    threads = {t for t in threading.enumerate() if t.name.startswith("tcp-proxy-")}
    assert threads

    started = time.monotonic()
    proxy.close()
    assert time.monotonic() - started < 2.0

    proxy.close()
    assert not any(t.is_alive() for t in threads)
    for s in live:
        assert_ended(s)
    with pytest.raises(RuntimeError):
        proxy.pass_through()


def connect_then_close(
    lt: LoopThread,
    closing: Callable[[], Coroutine[Any, Any, None]],
    port: int,
    socks: Sockets,
    turns: int,
) -> list[socket.socket]:
    """Four connections made while ``lt``'s loop is held (it then meets them all at
    once), and the loop stopped by ``closing`` started ``turns`` loop turns later: at
    each step of their way from the listener to a handler, by ``turns``."""

    async def late() -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
        await closing()

    held = threading.Event()
    lt.call(held.wait, WAIT_S)
    clients = [socks.connect(port) for _ in range(4)]
    closed = asyncio.run_coroutine_threadsafe(late(), lt.loop)
    held.set()
    closed.result(WAIT_S)
    lt.stop(None, WAIT_S)
    return clients


@pytest.mark.parametrize("turns", range(6))
@pytest.mark.parametrize("server", ["proxy", "echo"])
def test_connections_accepted_as_a_server_closes_are_closed_too(
    server: str, turns: int, socks: Sockets
) -> None:
    """A connection the listener accepted just before close() reaches its handler
    some loop turns later; close() must end it all the same, not leave its transport
    open for the garbage collector (a ResourceWarning in some later test)."""
    if server == "proxy":
        proxy = TcpProxy(socks.listener().getsockname()).start()
        assert proxy._lt is not None
        clients = connect_then_close(proxy._lt, proxy._shutdown, proxy.port, socks, turns)
    else:
        echo = EchoServer()
        clients = connect_then_close(echo._lt, echo._close, echo.port, socks, turns)
    for client in clients:
        assert_ended(client)  # a connection left open would still be waiting here
    gc.collect()  # and its transport would warn now, failing this test


def test_port_can_be_chosen(echo: EchoServer) -> None:
    port = free_port()
    with TcpProxy(("127.0.0.1", echo.port), port=port) as proxy:
        assert proxy.port == port
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as client:
            assert_echoes(client)


def test_switching_modes_needs_a_running_proxy() -> None:
    proxy = TcpProxy(("127.0.0.1", 9))
    with pytest.raises(RuntimeError):
        proxy.blackhole()
    proxy.close()


# --- the mesh -------------------------------------------------------------------------------

NODES = ("a", "b", "c")
ALL_PAIRS = {(i, j) for i in NODES for j in NODES if i != j}


@pytest.fixture
def mesh() -> Iterator[Partitioner]:
    with contextlib.ExitStack() as stack:
        servers: dict[str, EchoServer] = {}
        for n in NODES:
            servers[n] = EchoServer()
            stack.callback(servers[n].close)
        with Partitioner({n: s.port for n, s in servers.items()}) as partitioner:
            yield partitioner


def assert_links(mesh: Partitioner, socks: Sockets, cut_off: set[tuple[str, str]]) -> None:
    """Traffic on every link: echoed through the open ones, dropped by the cut-off ones."""
    assert mesh.blackholed() == cut_off
    clients: dict[tuple[str, str], socket.socket] = {}
    for i, j in ALL_PAIRS:
        clients[i, j] = c = socks.connect(mesh.proxy(i, j).port)
        c.sendall(b"hello")
    for pair, client in clients.items():
        proxy = mesh.proxy(*pair)
        if pair in cut_off:
            stats = proxy.wait_for(lambda s: s.lost_up_bytes >= 5, WAIT_S, f"drop on {pair}")
            assert stats.up_bytes == 0
        else:
            assert recv_exactly(client, 5) == b"hello"


def test_partitioner_addresses_are_distinct_proxies(mesh: Partitioner) -> None:
    addresses = {mesh.address(i, j) for i, j in ALL_PAIRS}
    assert len(addresses) == 6
    assert all(a.startswith("127.0.0.1:") for a in addresses)
    assert mesh.address("a", "b") == f"127.0.0.1:{mesh.proxy('a', 'b').port}"
    with pytest.raises(KeyError):
        mesh.address("a", "a")


def test_isolate_cuts_exactly_the_node_s_links(mesh: Partitioner, socks: Sockets) -> None:
    mesh.isolate("a")
    assert_links(mesh, socks, {("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")})


def test_heal_restores_every_link(mesh: Partitioner, socks: Sockets) -> None:
    mesh.isolate("a")
    mesh.heal()
    assert_links(mesh, socks, set())


def test_split_cuts_the_links_across_groups(mesh: Partitioner, socks: Sockets) -> None:
    mesh.split(["a", "b"], ["c"])
    assert_links(mesh, socks, {("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")})


def test_partitions_add_up_until_healed(mesh: Partitioner) -> None:
    mesh.isolate("a")
    mesh.isolate("b")
    assert mesh.blackholed() == ALL_PAIRS
    mesh.heal()
    assert mesh.blackholed() == frozenset()


@pytest.mark.parametrize(
    ("a", "b"),
    [(["a"], ["a", "b"]), (["a"], []), (["a"], ["z"])],
    ids=["overlap", "empty", "unknown"],
)
def test_split_rejects_bad_groups(mesh: Partitioner, a: list[str], b: list[str]) -> None:
    with pytest.raises(ValueError):
        mesh.split(a, b)
