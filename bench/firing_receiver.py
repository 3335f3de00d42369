"""The firing benchmark's webhook receiver, and what it saw, summarised.

    python -m bench.firing_receiver    # prints "port <n>", serves until SIGTERM/SIGINT

The receiver runs in a process of its own, so it never shares a GIL with the
scheduler being measured.  It stamps each request's arrival (``time.time()``)
before anything else, keeps the raw body and answers 200 at once; bodies are
parsed only when the records are fetched, after the run.

Routes: ``POST /hook`` (record), ``GET /count``, ``GET /records`` (JSON list of
``[arrival, job_id, scheduled_at, executed_at]``), ``POST /reset``.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import distribution_ms
from scheduled_db.testing.harness import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 10.0


# --- the server (receiver process) -------------------------------------------------------


class Recorder:
    """Arrival times and raw bodies, in arrival order."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.bodies: list[bytes] = []

    async def hook(self, request: web.Request) -> web.Response:
        arrival = time.time()
        body = await request.read()
        self.arrivals.append(arrival)
        self.bodies.append(body)
        return web.Response()

    async def count(self, request: web.Request) -> web.Response:
        return web.Response(text=str(len(self.arrivals)))

    async def records(self, request: web.Request) -> web.Response:
        rows = []
        for arrival, raw in zip(self.arrivals, self.bodies, strict=True):
            body = json.loads(raw)
            scheduled, executed = body["scheduled_at_ms"] / 1000, body["executed_at_ms"] / 1000
            rows.append([arrival, body["job_id"], scheduled, executed])
        return web.json_response(rows)

    async def reset(self, request: web.Request) -> web.Response:
        self.arrivals, self.bodies = [], []
        return web.Response()


async def serve() -> None:
    rec = Recorder()
    app = web.Application()
    app.router.add_post("/hook", rec.hook)
    app.router.add_get("/count", rec.count)
    app.router.add_get("/records", rec.records)
    app.router.add_post("/reset", rec.reset)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=4096).start()
    print(f"port {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


# --- the handle (benchmark process) ------------------------------------------------------


class ReceiverProcess:
    """Starts the receiver process and talks to it; always :meth:`stop` it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.firing_receiver"],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()  # blocks until the server is bound
        if len(line) != 2 or line[0] != "port":
            self.stop()
            raise RuntimeError(f"receiver did not start (said {line!r})")
        self.base = f"http://127.0.0.1:{line[1]}"
        self.url = self.base + "/hook"

    def _call(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.read()  # type: ignore[no-any-return]

    def count(self) -> int:
        return int(self._call("GET", "/count"))

    def records(self) -> list[list[Any]]:
        return json.loads(self._call("GET", "/records"))  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def wait_for(self, n: int, timeout: float) -> int:
        """Poll (bounded) until ``n`` requests arrived; return how many did."""
        deadline = time.monotonic() + timeout
        got = self.count()
        while got < n and time.monotonic() < deadline:
            time.sleep(0.2)  # polling interval of a bounded wait
            got = self.count()
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(START_TIMEOUT_S)


# --- what the receiver saw ---------------------------------------------------------------


# Lateness histogram bins (ms): fine near zero, where the targets are, coarse beyond.
HISTOGRAM_EDGES_MS = [0, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000]


def histogram_ms(values_s: list[float]) -> dict[str, Any]:
    """Counts per bin of HISTOGRAM_EDGES_MS; the last bin is open-ended."""
    edges = HISTOGRAM_EDGES_MS
    counts = [0] * len(edges)
    for v in values_s:
        counts[max(0, bisect.bisect_right(edges, v * 1000) - 1)] += 1
    return {"edges_ms": list(edges), "counts": counts}


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals within any one-second window."""
    ts = sorted(arrivals)
    best, lo = 0, 0
    for hi, t in enumerate(ts):
        while t - ts[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def summarize(rows: list[list[Any]], expected: set[str]) -> dict[str, Any]:
    """Delivery, lateness and throughput figures of one run.

    Lateness is arrival at the receiver minus the occurrence's scheduled time;
    send lateness is the sender's own ``executed_at`` minus the scheduled time.
    """
    seen = Counter(r[1] for r in rows)
    ours = [r for r in rows if r[1] in expected]
    arrivals = [r[0] for r in ours]
    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else 0.0
    return {
        "expected": len(expected),
        "delivered": len(seen.keys() & expected),
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        "lateness_ms": distribution_ms([r[0] - r[2] for r in ours]),
        "lateness_histogram": histogram_ms([r[0] - r[2] for r in ours]),
        "send_lateness_ms": distribution_ms([r[3] - r[2] for r in ours]),
        "delivery_span_s": round(span, 3),
        "deliveries_per_s": round(len(ours) / span) if span > 0 else None,
        "busiest_second": busiest_second(arrivals),
        "arrivals_per_quarter_s": timeline(
            [r[0] for r in ours], min((r[2] for r in ours), default=0)
        ),
        "sends_per_quarter_s": timeline([r[3] for r in ours], min((r[2] for r in ours), default=0)),
    }


def timeline(times: list[float], start: float, step: float = 0.25) -> list[int]:
    """How many of ``times`` fall in each ``step``-second bucket from ``start``."""
    if not times:
        return []
    counts = [0] * (int((max(times) - start) // step) + 1)
    for t in times:
        counts[max(0, int((t - start) // step))] += 1
    return counts


if __name__ == "__main__":
    asyncio.run(serve())
