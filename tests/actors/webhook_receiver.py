"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1 (ephemeral port),
on a thread and event loop of its own, recording every request it gets.

Routes (all POST):

- ``/ok``: 200.
- ``/status/{code}``: that status; ``?body=`` sets the body, ``?retry_after=`` the
  Retry-After header, ``?location=`` the Location header.
- ``/block``: records the request, then waits until the test lets it through with
  :meth:`Receiver.release` (one request per token) or until the receiver stops; 200.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from scheduled_db.policy.ssrf import AddressPolicy
from tests.aio_servers import close_server

TIMEOUT_S = 10.0
# What tests that deliver to receivers on loopback run under: the shipped default
# refuses loopback, so they open exactly that, as an operator would.
LOOPBACK_ALLOWED = AddressPolicy(
    allow_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
)


@dataclass(frozen=True)
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes
    at: float = 0.0  # wall-clock time it arrived (its body read)
    method: str = "POST"


class Receiver:
    """Start with :meth:`start`, always :meth:`stop` (it closes the runner and the loop)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.requests: list[Received] = []
        self.in_flight = 0  # /block requests being held
        self.max_in_flight = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver")
        self._runner: web.AppRunner | None = None
        self._gate: asyncio.Condition | None = None
        self._tokens = 0
        self._open = False
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Receiver:
        self._thread.start()
        self.port = self._run(self._start())
        return self

    def stop(self) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT_S)
        assert not self._thread.is_alive(), "receiver loop did not stop"
        self._loop.close()

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/ok", self._ok)
        app.router.add_post("/status/{code}", self._status)
        app.router.add_post("/block", self._block)
        app.router.add_post("/seq/{name}", self._seq)
        app.router.add_route("*", "/any", self._ok)  # any method (a job's own)
        self._gate = asyncio.Condition()
        self._runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        await self._let_through(open_gate=True)  # held requests end before the cleanup
        if self._runner is not None:
            # A node may still be delivering: stop accepting before the cleanup, so a
            # connection accepted as it stops is not left open (tests/aio_servers.py).
            for site in self._runner.sites:
                server = getattr(site, "_server", None)  # aiohttp's: not public
                if isinstance(server, asyncio.Server):
                    await close_server(server)
            await self._runner.cleanup()

    # --- the test's side ---------------------------------------------------------------

    def release(self, n: int = 1) -> None:
        """Let ``n`` held (or future) ``/block`` requests through."""
        self._run(self._let_through(tokens=n))

    def wait_until(self, pred: Callable[[Receiver], bool], timeout: float = TIMEOUT_S) -> None:
        """Wait (bounded) until ``pred(self)`` holds; AssertionError if it never does."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver condition not met within {timeout}s")
                self._cond.wait(left)

    def received(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def _run(self, coro: Coroutine[Any, Any, int | None]) -> int:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return int(future.result(TIMEOUT_S) or 0)

    # --- handlers (loop thread) --------------------------------------------------------

    async def _record(self, request: web.Request) -> None:
        body = await request.read()
        with self._cond:
            headers = CIMultiDict(request.headers)
            received = Received(request.path, headers, body, time.time(), request.method)
            self.requests.append(received)
            self._cond.notify_all()

    async def _ok(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="ok")

    async def _status(self, request: web.Request) -> web.Response:
        await self._record(request)
        headers: dict[str, str] = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        if "location" in request.query:
            headers["Location"] = request.query["location"]
        status = int(request.match_info["code"])
        return web.Response(status=status, text=request.query.get("body", ""), headers=headers)

    async def _seq(self, request: web.Request) -> web.Response:
        """Answer the n-th request to ``/seq/<name>`` with the n-th of ``?codes=`` (the
        last one repeats): a scripted receiver, e.g. ``codes=500,500,200``."""
        await self._record(request)
        codes = [int(x) for x in request.query["codes"].split(",")]
        n = len(self.received(request.path)) - 1
        return web.Response(status=codes[min(n, len(codes) - 1)], text="seq")

    async def _block(self, request: web.Request) -> web.Response:
        await self._record(request)
        self._count(+1)
        try:
            await self._pass_gate()
        finally:
            self._count(-1)
        return web.Response(text="released")

    def _count(self, delta: int) -> None:
        with self._cond:
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._cond.notify_all()

    async def _pass_gate(self) -> None:
        assert self._gate is not None
        async with self._gate:
            await self._gate.wait_for(lambda: self._open or self._tokens > 0)
            if not self._open:
                self._tokens -= 1

    async def _let_through(self, tokens: int = 0, open_gate: bool = False) -> None:
        assert self._gate is not None
        async with self._gate:
            self._tokens += tokens
            self._open = self._open or open_gate
            self._gate.notify_all()
