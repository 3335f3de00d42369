"""A test-only TCP proxy that puts faults between nodes: partitions, delay, resets.

:class:`TcpProxy` splices each connection it accepts on a loopback port to one
target.  Its asyncio loop runs in a daemon thread; the test thread switches the
mode at any time, and a switch holds for every byte handled after it returns.

- **pass through**: forward bytes as they come.
- **blackhole**, a network partition: forward nothing either way and tell nobody.
  Connections stay open while their bytes (and FINs) are dropped; one accepted
  meanwhile is held and never dialled through, so its dialer times out in the
  handshake as a real connect times out on unanswered SYNs.
- **delay(s)**: forward each chunk ``s`` seconds after it was read, in order.
- **drop new**: open connections pass through; each new one is reset at once.
- **cut**, an action: reset every open connection once, then pass through.

Leaving a blackhole resets each connection that lost bytes to it, and each one it
held.  TCP never delivers a stream with a hole: the sender retransmits until it
gives up and the connection fails.  Resuming it would hand the receiver the middle
of a length-prefixed frame, a garbage length to wait on forever.  A connection
that stayed quiet through the partition lost nothing and carries on.  Resets are
RSTs (``SO_LINGER`` 0): the far end sees ``ConnectionResetError``, not EOF.

:class:`Partitioner` puts a proxy on each ordered pair of a mesh (node *i* dials
node *j* through proxy ``(i, j)``) and partitions it by blackholing both
directions of every link across the cut.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from actors.runtime.loop_thread import LoopThread
from tests.aio_servers import close_server

T = TypeVar("T")
Address = tuple[str, int]

CHUNK_BYTES = 64 * 1024
QUEUE_CHUNKS = 256  # per direction: a stalled reader pushes back on the sender, as TCP does
DIAL_TIMEOUT_S = 5.0
CONTROL_TIMEOUT_S = 5.0  # bound on a mode switch and on start/close
_RST_LINGER = struct.pack("ii", 1, 0)  # close() with linger 0 sends RST, not FIN


class Mode(enum.Enum):
    """The proxy's fault mode (see the module docstring)."""

    PASS = "pass"
    BLACKHOLE = "blackhole"
    DELAY = "delay"
    DROP_NEW = "drop_new"


@dataclass(frozen=True)
class ProxyStats:
    """Counters since the proxy started.

    ``up`` is client -> target, ``down`` is target -> client.  ``read_*`` counts
    bytes the proxy took in, ``*_bytes`` those it forwarded and ``lost_*`` those a
    blackhole dropped (the rest are queued, e.g. behind a delay).  ``reset`` counts
    connections the proxy reset on purpose (cut, leaving a blackhole, drop new).
    """

    accepted: int = 0
    active: int = 0
    reset: int = 0
    read_up_bytes: int = 0
    read_down_bytes: int = 0
    up_bytes: int = 0
    down_bytes: int = 0
    lost_up_bytes: int = 0
    lost_down_bytes: int = 0

    @property
    def forwarded(self) -> int:
        return self.up_bytes + self.down_bytes

    @property
    def lost(self) -> int:
        return self.lost_up_bytes + self.lost_down_bytes


class _Counters:
    """:class:`ProxyStats` bumped on the loop thread and awaited from the test thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._now = ProxyStats()

    def bump(self, **deltas: int) -> None:
        with self._cond:
            now = self._now
            self._now = replace(now, **{k: getattr(now, k) + v for k, v in deltas.items()})
            self._cond.notify_all()

    def snapshot(self) -> ProxyStats:
        with self._cond:
            return self._now

    def wait_for(self, pred: Callable[[ProxyStats], bool], timeout: float, what: str) -> ProxyStats:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(self._now), timeout):
                raise AssertionError(f"timed out after {timeout}s waiting for {what}: {self._now}")
            return self._now


@dataclass(eq=False)
class _Link:
    """One accepted connection and, once dialled, its upstream half."""

    client: asyncio.StreamWriter
    handler: asyncio.Task[Any]  # the start_server handler task, which waits on work
    work: asyncio.Task[None] | None = None  # carries the bytes; a reset cancels it
    upstream: asyncio.StreamWriter | None = None
    held: bool = False  # accepted during a blackhole, never dialled through
    lossy: bool = False  # a blackhole dropped bytes or a FIN: the stream has a hole

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]


@dataclass(eq=False)
class _Pipe:
    """One direction of a link: chunks read from ``reader`` wait in ``queue`` until due."""

    link: _Link
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    direction: str  # "up" or "down", as in ProxyStats
    # (due time on the loop clock, chunk); an empty chunk is the end of the stream
    queue: asyncio.Queue[tuple[float, bytes]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_CHUNKS)
    )


def _send_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # already closed: abort() below still releases the transport
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
    writer.transport.abort()


def _reset(link: _Link) -> None:
    for writer in link.writers():
        _send_rst(writer)


class TcpProxy:
    """Forwards connections on ``127.0.0.1:port`` (0 picks a free one) to ``target``.

    :meth:`start` binds and returns once the port is listening (``.port`` is then
    the bound port); :meth:`close` resets every connection, stops the loop and joins
    its thread within a bounded time, and may be called any number of times.  Mode
    switches block until the loop has applied them and raise ``RuntimeError`` if
    the proxy is not running.
    """

    def __init__(self, target: Address, port: int = 0, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = port
        self._lt: LoopThread | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._mode = Mode.PASS
        self._delay_s = 0.0
        self._counters = _Counters()
        self._closed = False

    # --- lifecycle (test thread) -------------------------------------------------------------

    def start(self) -> TcpProxy:
        if self._lt is not None or self._closed:
            raise RuntimeError("a TcpProxy starts once")
        self._lt = LoopThread(f"tcp-proxy-{self.target[0]}:{self.target[1]}")
        self.port = self._lt.start(self._open(), CONTROL_TIMEOUT_S, self._shutdown)
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._lt is not None:
            self._lt.stop(self._shutdown, CONTROL_TIMEOUT_S)

    def __enter__(self) -> TcpProxy:
        return self if self._lt is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- faults (test thread) ----------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    def pass_through(self) -> None:
        """Forward everything; resets the connections a blackhole broke (see module doc)."""
        self._on_loop(lambda: self._set_mode(Mode.PASS))

    def blackhole(self) -> None:
        """Partition: drop all bytes both ways, keep connections open, hold new ones."""
        self._on_loop(lambda: self._set_mode(Mode.BLACKHOLE))

    def delay(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` after it was read, in order per direction."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, got {seconds}")
        self._on_loop(lambda: self._set_mode(Mode.DELAY, seconds))

    def drop_new(self) -> None:
        """Reset each new connection as soon as it is accepted; open ones pass through."""
        self._on_loop(lambda: self._set_mode(Mode.DROP_NEW))

    def cut(self) -> int:
        """Reset every open connection once, then pass through; how many were reset."""
        return self._on_loop(self._cut)

    # --- observing (any thread) --------------------------------------------------------------

    def stats(self) -> ProxyStats:
        return self._counters.snapshot()

    def forwarded_bytes(self) -> int:
        """Bytes forwarded so far, both directions: note it, act, then wait for it to grow."""
        return self._counters.snapshot().forwarded

    def wait_for(
        self, pred: Callable[[ProxyStats], bool], timeout: float, what: str = "proxy stats"
    ) -> ProxyStats:
        """Block until ``pred(stats)`` holds (checked on every change); AssertionError if
        ``timeout`` passes first."""
        return self._counters.wait_for(pred, timeout, what)

    def wait_for_traffic(self, since: int, timeout: float) -> ProxyStats:
        """Block until more than ``since`` bytes (a :meth:`forwarded_bytes`) have flowed."""
        return self.wait_for(lambda s: s.forwarded > since, timeout, f"traffic past {since} bytes")

    def _on_loop(self, fn: Callable[[], T]) -> T:
        lt = self._lt
        if lt is None or self._closed:
            raise RuntimeError("the proxy is not running")

        async def call() -> T:
            return fn()

        future = asyncio.run_coroutine_threadsafe(call(), lt.loop)
        try:
            return future.result(CONTROL_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    # --- the loop thread ---------------------------------------------------------------------

    async def _open(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            await close_server(self._server)  # every accepted connection has its link now
        while self._links:  # a handler may start while we wait on the last batch
            links = list(self._links)
            for link in links:
                self._kill(link, count=False)
            await asyncio.gather(*(k.handler for k in links), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _set_mode(self, mode: Mode, delay_s: float = 0.0) -> None:
        self._mode, self._delay_s = mode, delay_s
        if mode is not Mode.BLACKHOLE:
            for link in list(self._links):
                if link.held or link.lossy:
                    self._kill(link)

    def _cut(self) -> int:
        links = list(self._links)
        for link in links:
            self._kill(link)
        self._mode, self._delay_s = Mode.PASS, 0.0
        return len(links)

    def _kill(self, link: _Link, count: bool = True) -> None:
        _reset(link)
        if link.work is not None:
            link.work.cancel()
        if count:
            self._counters.bump(reset=1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None  # a start_server handler always runs in a task
        link = _Link(writer, handler)
        self._links.add(link)
        self._counters.bump(accepted=1, active=1)
        # The work gets a task of its own for a reset to cancel: Python 3.11 logs an
        # error whenever a start_server handler task ends cancelled.
        link.work = asyncio.create_task(self._carry(link, reader))
        try:
            await asyncio.wait([link.work])
        finally:
            link.work.cancel()  # a no-op once done; only if we ourselves were cancelled
            self._links.discard(link)
            self._counters.bump(active=-1)
            for w in link.writers():
                w.close()  # a no-op after a reset

    async def _carry(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            if self._mode is Mode.DROP_NEW:
                _reset(link)
                self._counters.bump(reset=1)
            elif self._mode is Mode.BLACKHOLE:
                link.held = True
                await self._hold(link, reader)
            else:
                await self._splice(link, reader)
        except* OSError:  # a reset, or the target refused: pass the failure on as a reset
            _reset(link)

    async def _hold(self, link: _Link, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(CHUNK_BYTES):
            self._counters.bump(read_up_bytes=len(data))
            self._lose(link, "up", len(data))
        link.lossy = True  # the dialer's FIN is lost too; hold until healed or closed
        await asyncio.get_running_loop().create_future()

    async def _splice(self, link: _Link, client_reader: asyncio.StreamReader) -> None:
        async with asyncio.timeout(DIAL_TIMEOUT_S):
            up_reader, link.upstream = await asyncio.open_connection(*self.target)
        up = _Pipe(link, client_reader, link.upstream, "up")
        down = _Pipe(link, up_reader, link.client, "down")
        async with asyncio.TaskGroup() as tg:
            for pipe in (up, down):
                tg.create_task(self._read(pipe))
                tg.create_task(self._send(pipe))

    async def _read(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await pipe.reader.read(CHUNK_BYTES)
            self._counters.bump(**{f"read_{pipe.direction}_bytes": len(data)})
            if self._mode is Mode.BLACKHOLE:
                self._lose(pipe.link, pipe.direction, len(data))
            else:
                await pipe.queue.put((loop.time() + self._delay_s, data))
            if not data:
                return

    async def _send(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await pipe.queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if self._mode is Mode.BLACKHOLE:  # in flight when the partition began: lost
                self._lose(pipe.link, pipe.direction, len(data))
            elif data:
                pipe.writer.write(data)
                self._counters.bump(**{f"{pipe.direction}_bytes": len(data)})
                await pipe.writer.drain()
            elif pipe.writer.can_write_eof():
                pipe.writer.write_eof()
            if not data:
                return

    def _lose(self, link: _Link, direction: str, nbytes: int) -> None:
        link.lossy = True  # nbytes == 0 is a lost FIN, a hole all the same
        self._counters.bump(**{f"lost_{direction}_bytes": nbytes})
