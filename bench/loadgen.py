"""HTTP load for the throughput benchmarks: closed loop (N connections) and open loop (a rate).

Both systems under comparison get the same generator: the project's own small
HTTP/1.1 client (``actors/webhook/client.py``), whose cost per request is about a
third of aiohttp's, so on a 2-core machine the generator takes as little CPU as
it can from the servers it measures.  Its CPU use is reported beside the figures
(``client_cpu_percent``: 100 means one core): a generator near 100% was the limit,
not the server.

- **Closed loop**: ``connections`` workers each send a request, wait for the
  answer, send the next.  Throughput at that concurrency, and latency.
- **Open loop**: requests start at fixed times (``rate`` per second) whatever the
  answers do; latency counts from the time a request *should* have started, so a
  stalled server cannot hide its queue (no coordinated omission).

While a loop runs, the generator's own cyclic garbage collector is off (:func:`quiet_gc`).
Its full collections walked every task and latency the loop held and stopped the
generator for 25-85 ms: in an open loop that is a pause no server caused, counted
against whichever server was measured, and requests that start late then arrive
together (a burst of its own making).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from actors.webhook.client import WebhookClient
from bench.common import Progress, distribution_ms
from scheduled_db.policy.ssrf import AddressPolicy

# The benchmarks talk to nodes and etcd on loopback, which the webhook client refuses by
# default (the SSRF guard): this client is the load generator's, not a node's.
LOCAL = AddressPolicy(allow_private=True)

HEADERS = {"Content-Type": "application/json"}
REQUEST_TIMEOUT_S = 30.0

# A request factory: the i-th request's URL and body.
MakeRequest = Callable[[int], tuple[str, bytes]]


@dataclass
class Tally:
    """Latencies of the answered requests and the failures, inside the measured window."""

    latencies: list[float] = field(default_factory=list)
    completed: int = 0  # answered successfully inside the window, whenever started
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    # Latencies of the failures that were answers (http_503...), by kind: how soon a
    # refusal came matters as much as that it came (the open loop records them).
    error_latencies: dict[str, list[float]] = field(default_factory=dict)

    def failed(self, kind: str, latency: float | None = None) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        if latency is not None and kind.startswith("http_"):
            self.error_latencies.setdefault(kind, []).append(latency)


async def _one(client: WebhookClient, make: MakeRequest, i: int) -> str | None:
    """Send request i; None when it succeeded, else what went wrong."""
    url, body = make(i)
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            resp = await client.post(url, body, HEADERS)
    except (OSError, TimeoutError) as exc:
        return type(exc).__name__
    return None if resp.status in (200, 201) else f"http_{resp.status}"


def _figures(tally: Tally, seconds: float, cpu_percent: float, **more: Any) -> dict[str, Any]:
    refusals = {k: distribution_ms(v) for k, v in sorted(tally.error_latencies.items())}
    return {
        **more,
        **({"error_latency_ms": refusals} if refusals else {}),
        "seconds": round(seconds, 2),
        "requests": tally.completed,
        "errors": tally.errors,
        "error_kinds": tally.error_kinds,
        "ops_per_s": round(tally.completed / seconds) if seconds else 0,
        "latency_ms": distribution_ms(tally.latencies),
        "client_cpu_percent": round(cpu_percent),
    }


async def _cpu_window(cpu: CpuProbe, begin: float, end: float) -> tuple[dict[str, float], ...]:
    await asyncio.sleep(max(0.0, begin - time.perf_counter()))
    first = cpu()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    return first, cpu()


def _per_op_us(window: tuple[dict[str, float], ...], ops: int) -> dict[str, float]:
    first, last = window
    return {k: round((last[k] - first[k]) * 1e6 / ops) for k in last if k in first and ops}


async def _closed(
    make: MakeRequest,
    connections: int,
    warmup_s: float,
    measure_s: float,
    cpu: CpuProbe | None = None,
) -> Any:
    client = WebhookClient(per_origin=max(connections, 1), policy=LOCAL)
    tally, counter = Tally(), iter(range(10**12))
    start = time.perf_counter()
    begin, end = start + warmup_s, start + warmup_s + measure_s
    progress = Progress(f"{connections} connections", warmup_s + measure_s, " s")

    async def worker() -> None:
        while (now := time.perf_counter()) < end:
            problem = await _one(client, make, next(counter))
            done = time.perf_counter()
            if begin <= done <= end:
                if problem is not None:
                    tally.failed(problem)
                    continue
                tally.completed += 1
                if now >= begin:  # latency of requests wholly inside the window
                    tally.latencies.append(done - now)
            progress.update(done - start)

    window = asyncio.create_task(_cpu_window(cpu, begin, end)) if cpu else None
    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(connections)))
    client_cpu = 100 * (time.process_time() - cpu0) / (time.perf_counter() - start)
    await client.close()
    progress.finish()
    more = {"server_cpu_us_per_op": _per_op_us(await window, tally.completed)} if window else {}
    return _figures(tally, measure_s, client_cpu, **more)


CpuProbe = Callable[[], dict[str, float]]  # cumulative CPU seconds of each server process


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic garbage collection in this process while the block runs (see the
    module docstring): what exists is frozen out of later collections, and garbage
    made meanwhile waits for the end (reference counting still frees the rest)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def closed_loop(
    make: MakeRequest,
    connections: int,
    measure_s: float,
    warmup_s: float = 1.0,
    cpu: CpuProbe | None = None,
) -> dict[str, Any]:
    """``connections`` workers for ``warmup_s`` + ``measure_s``; figures of the second part.

    With ``cpu``, also the servers' CPU per completed request in the measured window
    (``server_cpu_us_per_op``, by the probe's labels), read at its start and end.
    """
    with quiet_gc():
        figures: dict[str, Any] = asyncio.run(_closed(make, connections, warmup_s, measure_s, cpu))
    return {"connections": connections, **figures}


async def _open(make: MakeRequest, rate: float, measure_s: float, max_in_flight: int) -> Any:
    client = WebhookClient(per_origin=max_in_flight, policy=LOCAL)
    tally = Tally()
    total = int(rate * measure_s)
    progress = Progress(f"{rate:,.0f} requests/s", total)

    async def timed(i: int, due: float) -> None:
        problem = await _one(client, make, i)
        if problem is None:
            tally.completed += 1
            tally.latencies.append(time.perf_counter() - due)
        else:
            tally.failed(problem, time.perf_counter() - due)

    tasks = []
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(i, due)))
        progress.update(i + 1)
    sent_s = time.perf_counter() - start  # longer than measure_s: the generator fell behind
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    cpu = 100 * (time.process_time() - cpu0) / elapsed
    await client.close()
    progress.finish()
    return _figures(
        tally, measure_s, cpu, finished_after_s=round(elapsed, 2), sent_in_s=round(sent_s, 2)
    )


def open_loop(
    make: MakeRequest, rate: float, measure_s: float, max_in_flight: int = 256
) -> dict[str, Any]:
    """``rate`` requests a second for ``measure_s``; latency from each one's due time."""
    with quiet_gc():
        figures: dict[str, Any] = asyncio.run(_open(make, rate, measure_s, max_in_flight))
    return {"offered_per_s": round(rate), **figures}
