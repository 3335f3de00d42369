"""A webhook receiver that records when each delivery arrived and what it said.

An aiohttp server on 127.0.0.1 (ephemeral port) on a thread of its own; every POST
is recorded with its arrival time on the wall clock (the nodes' clock too: one
machine), its idempotency key and the term header, then answered 200, after
``delay`` seconds if one is set (a slow receiver).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from aiohttp import web

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Arrival:
    key: str  # "<job_id>:<scheduled_ms>"
    term: int
    attempt: int
    at: float  # epoch seconds, when the request had arrived whole

    @property
    def job_id(self) -> str:
        return self.key.rsplit(":", 1)[0]

    @property
    def scheduled(self) -> float:
        return int(self.key.rsplit(":", 1)[1]) / 1000


class RecordingReceiver:
    """Start with :meth:`start`; always :meth:`stop`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-receiver")
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> RecordingReceiver:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(TIMEOUT_S)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            cleanup.result(TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT_S)
        self._loop.close()

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._hook)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, backlog=2048).start()
        return int(self._runner.addresses[0][1])

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        arrival = Arrival(
            request.headers.get("Idempotency-Key", ""),
            int(request.headers.get("X-Scheduled-DB-Term", "0")),
            int(request.headers.get("X-Scheduled-DB-Attempt", "0")),
            time.time(),
        )
        with self._lock:
            self._arrivals.append(arrival)
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(text="ok")

    # --- what arrived ------------------------------------------------------------------

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def keys(self) -> set[str]:
        return {a.key for a in self.arrivals()}

    def by_key(self) -> dict[str, list[Arrival]]:
        grouped: dict[str, list[Arrival]] = defaultdict(list)
        for a in self.arrivals():
            grouped[a.key].append(a)
        return dict(grouped)
