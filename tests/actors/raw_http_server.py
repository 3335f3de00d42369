"""A raw HTTP/1.x server for client tests: asyncio on an ephemeral port, answering each
connection with a script the test writes, so a test can send exactly the bytes a
well-behaved server never would (malformed, cut short, chunked, closed early).

It runs on the test's own event loop. Everything it sees is recorded (the
connections it accepted, every request, which connections the client closed), and
:meth:`RawServer.wait_until` waits, bounded, for a condition on that record.
With it, the small helpers of async tests that use it: :func:`bounded`, :class:`Spawn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

WAIT_S = 5.0  # the longest any condition is waited for
TEST_S = 10.0  # the longest a test run by :func:`bounded` may take

T = TypeVar("T")
AsyncTest = Callable[..., Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Request:
    """One request as it came off the wire."""

    peer: int  # the index of the connection it came on
    head: bytes  # the request line and headers, up to and including the blank line
    body: bytes

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header_lines(self) -> list[bytes]:
        return self.head.split(b"\r\n")[1:-2]


class Peer:
    """One accepted connection, as a script sees it."""

    def __init__(
        self,
        server: RawServer,
        index: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.index = index
        self.reader = reader
        self.writer = writer
        self.client_closed = False  # the server read the end of the stream (or a reset)

    async def read_request(self) -> Request | None:
        """The next request on this connection, or None once the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._mark_closed()
            return None
        request = Request(self.index, head, body)
        self.server.requests.append(request)
        self.server.notify()
        return request

    async def send(self, data: bytes) -> None:
        """Write ``data`` now; a client that went away meanwhile is not an error here."""
        with contextlib.suppress(ConnectionError):
            self.writer.write(data)
            await self.writer.drain()

    async def wait_client_close(self) -> None:
        """Read (and drop) whatever comes until the client closes the connection."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self._mark_closed()

    def close(self) -> None:
        self.writer.close()

    def _mark_closed(self) -> None:
        self.client_closed = True
        self.server.notify()


Script = Callable[[Peer], Awaitable[None]]


class RawServer:
    """Use as ``async with RawServer(script) as server``; each accepted connection runs
    ``script(peer)`` in a task of its own, and is closed when the script returns."""

    def __init__(
        self,
        script: Script,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.script = script
        self.host = host
        self.tls = tls
        self.port = port  # 0: an ephemeral one, known once entered
        self.peers: list[Peer] = []
        self.requests: list[Request] = []
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        name = host or self.host
        if ":" in name:
            name = f"[{name}]"
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{name}:{self.port}{path}"

    def notify(self) -> None:
        """Wake :meth:`wait_until` (scripts call it when state of their own changes)."""
        self._changed.set()

    async def wait_until(self, pred: Callable[[], bool], timeout: float = WAIT_S) -> None:
        """Wait until ``pred()`` holds; AssertionError if it does not within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while not pred():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"server condition not met within {timeout}s") from None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(self, len(self.peers), reader, writer)
        self.peers.append(peer)
        self.notify()
        try:
            await self.script(peer)
        except (ConnectionError, asyncio.CancelledError):
            # Cancelled only by __aexit__, which waits for this task: ending quietly
            # keeps asyncio from logging the cancellation as an error.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


def response(
    body: bytes = b"ok", status: bytes = b"200 OK", headers: bytes = b"", version: bytes = b"1.1"
) -> bytes:
    """A complete response with a Content-Length."""
    head = b"HTTP/%s %s\r\n%sContent-Length: %d\r\n\r\n" % (version, status, headers, len(body))
    return head + body


async def answer_ok(peer: Peer) -> None:
    """A well-behaved keep-alive server: ``200 ok`` to every request."""
    while await peer.read_request() is not None:
        await peer.send(response())


def first_peer_then_ok(first: Callable[[Peer], Any]) -> Callable[[Peer], Any]:
    """A script: connection 0 runs ``first``, every later one answers 200 ok."""

    async def script(peer: Peer) -> None:
        await (first(peer) if peer.index == 0 else answer_ok(peer))

    return script


class Spawn:
    """Tasks a test starts: whatever the test's end, they are cancelled and awaited
    (their errors retrieved) before the client and the servers close."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self.tasks.append(task)
        return task

    async def __aenter__(self) -> Spawn:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Hold:
    """A script that holds every request until :attr:`gate` opens, counting them."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.held = self.max_held = 0

    async def __call__(self, peer: Peer) -> None:
        while await peer.read_request() is not None:
            self.held += 1
            self.max_held = max(self.max_held, self.held)
            peer.server.notify()
            await self.gate.wait()
            self.held -= 1
            await peer.send(response())


def bounded(test: AsyncTest) -> Callable[..., None]:
    """Run an async test on a fresh event loop, within :data:`TEST_S`."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            async with asyncio.timeout(TEST_S):
                await test(*args, **kwargs)

        asyncio.run(main())

    return run
