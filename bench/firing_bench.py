"""Firing at scale: N one-time jobs due in the same second, delivered to a local receiver.

    python -m bench.firing_bench [--jobs N] [--quick] [--no-spread]
                                 [--concurrency C] [--claim-ahead 200ms] [--aps-workers 20 100]

scheduled-db: a real node process (``python -m scheduled_db run``, one-node Raft
group, RocksDB in a temporary directory) gets N ``unico`` jobs over its REST API
from 32 concurrent connections, well before the second T they are due in; with
``--spread`` (the default) job i is due at T + i*1000/N ms, with ``--no-spread``
all at T.  Their webhooks POST to a receiver in a process of its own
(:mod:`bench.firing_receiver`), which stamps each arrival.

APScheduler 3, in the same run and against the same receiver: a
``BackgroundScheduler`` with a ``MemoryJobStore`` and a ``ThreadPoolExecutor`` of
``--aps-workers`` threads runs N ``date`` jobs at the same due times, each
POSTing the same JSON body with ``urllib.request``.

Lateness is arrival at the receiver minus the scheduled time.  Targets (issue 5):
all delivered, p50 <= 10 ms, p99 <= 100 ms, >= 5,000 deliveries/s.  Writes
bench/results/firing.json (-instant for --no-spread, -quick for --quick, and the
node settings given, e.g. -claim-ahead-2s).  An empty ``--aps-workers`` skips APScheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

# APScheduler 3 ships no type information; it is only the reference being measured.
from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

from bench.common import write_result
from bench.firing_receiver import ReceiverProcess, summarize
from tests.integration.nodeproc import NodeProcess

TARGETS = {"lateness_p50_ms": 10.0, "lateness_p99_ms": 100.0, "deliveries_per_s": 5000}
CONNECTIONS = 32  # concurrent clients creating the jobs
WARMUP_JOBS = 300  # created first, due a day later, to measure the creation rate
MARGIN_S = 10.0  # between the end of creation (as estimated) and T
DELIVERY_TIMEOUT_S = 120.0  # after T, for every request to arrive
DAY_S = 86_400


def due_times_ms(n: int, t_ms: int, spread: bool) -> list[int]:
    """When each of the n jobs is due: spread uniformly over [T, T+1s), or all at T."""
    return [t_ms + (i * 1000) // n if spread else t_ms for i in range(n)]


def job_ids(n: int, prefix: str) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]


# --- scheduled-db ------------------------------------------------------------------------


class BenchNode(NodeProcess):
    """A node with room for the jobs and the delivery settings under test."""

    def __init__(self, data_dir: Path, extra: list[str]) -> None:
        super().__init__(data_dir)
        self.extra = extra

    def args(self) -> list[str]:
        return super().args() + ["--log-level", "WARNING", *self.extra]


async def _create_all(base: str, bodies: list[dict[str, Any]]) -> None:
    todo = iter(bodies)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for body in todo:
                async with session.post(base + "/jobs", json=body) as resp:
                    if resp.status != 200:
                        text = await resp.text()
                        raise RuntimeError(f"create {body['id']}: {resp.status} {text}")

        await asyncio.gather(*(client() for _ in range(CONNECTIONS)))


def create_jobs(base: str, ids: list[str], due_ms: list[int], url: str) -> float:
    """Create the jobs over HTTP; return the seconds it took."""
    bodies = [
        {"id": i, "type": "unico", "timestamp": d / 1000, "webhook_url": url, "payload": {"n": k}}
        for k, (i, d) in enumerate(zip(ids, due_ms, strict=True))
    ]
    start = time.perf_counter()
    asyncio.run(_create_all(base, bodies))
    return time.perf_counter() - start


def plan_second(node: BenchNode, n: int, url: str) -> tuple[int, float]:
    """Measure the creation rate with warm-up jobs (due a day later, so they never
    fire here); return T (a whole second, epoch ms) and the rate."""
    warm = min(WARMUP_JOBS, n)
    tomorrow_ms = int((time.time() + DAY_S) * 1000)
    took = create_jobs(node.http.base, job_ids(warm, "warmup"), [tomorrow_ms] * warm, url)
    rate = warm / took
    t_s = math.ceil(time.time() + 1.5 * n / rate + MARGIN_S)
    return t_s * 1000, rate


def node_lateness(node: BenchNode) -> dict[str, float]:
    """The node's own firing_lateness_seconds histogram: cumulative counts per bucket."""
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    prefix = 'scheduled_db_firing_lateness_seconds_bucket{le="'
    buckets = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            le, value = line[len(prefix) :].split('"}')
            buckets[f"le_{le}s"] = float(value)
    return buckets


def completed_count(node: BenchNode, n: int, timeout: float = 60) -> int:
    """Completed jobs as the API lists them, once n are (or when the bounded wait ends)."""
    deadline = time.monotonic() + timeout
    while True:
        done = int(node.http.call("GET", "/jobs?status=completed&limit=1")[2]["total"])
        if done >= n or time.monotonic() > deadline:
            return done
        time.sleep(0.2)  # polling interval of a bounded wait


def sampled_statuses(node: BenchNode, ids: list[str], k: int = 50) -> dict[str, int]:
    """Each job's own status, for every (len(ids) // k)-th job: beside the count above."""
    seen: Counter[str] = Counter()
    for job_id in ids[:: max(1, len(ids) // k)]:
        seen[node.http.call("GET", f"/jobs/{job_id}/status")[2]["status"]] += 1
    return dict(seen)


def run_scheduled_db(n: int, spread: bool, receiver: ReceiverProcess, extra: list[str]) -> Any:
    with tempfile.TemporaryDirectory(prefix="firing-bench-") as tmp:
        node = BenchNode(Path(tmp) / "data", ["--queue-job-limit", str(2 * n + 1000), *extra])
        node.start()
        try:
            return _fire_on_node(node, n, spread, receiver)
        finally:
            node.stop()


def _fire_on_node(node: BenchNode, n: int, spread: bool, receiver: ReceiverProcess) -> Any:
    receiver.reset()
    t_ms, rate = plan_second(node, n, receiver.url)
    ids, due = job_ids(n, "job"), due_times_ms(n, t_ms, spread)
    took = create_jobs(node.http.base, ids, due, receiver.url)
    lead_s = t_ms / 1000 - time.time()
    print(f"  scheduled-db: created {n:,} jobs in {took:.1f} s; due in {lead_s:.1f} s")
    creation = {
        "seconds": round(took, 2),
        "jobs_per_s": round(n / took),
        "warmup_jobs_per_s": round(rate),
        "due_after_creation_s": round(lead_s, 1),
    }
    receiver.wait_for(n, t_ms / 1000 - time.time() + DELIVERY_TIMEOUT_S)
    figures = summarize(receiver.records(), set(ids))
    completed = completed_count(node, n)
    figures.update(
        completed_via_api=completed,
        all_completed_after_T_s=round(time.time() - t_ms / 1000, 2) if completed >= n else None,
        sampled_statuses=sampled_statuses(node, ids),
        node_lateness_histogram=node_lateness(node),
        creation=creation,
    )
    return figures


# --- APScheduler 3 -----------------------------------------------------------------------


def post_occurrence(url: str, job_id: str, scheduled_at: float) -> None:
    """What each APScheduler job does: the same request body scheduled-db sends."""
    body = {
        "job_id": job_id,
        "type": "unico",
        "scheduled_at": scheduled_at,
        "executed_at": time.time(),
        "attempt": 1,
        "payload": {},
    }
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def run_apscheduler(n: int, spread: bool, receiver: ReceiverProcess, workers: int) -> Any:
    receiver.reset()
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=workers)},
        # Never drop a late run: lateness is what is measured.
        job_defaults={"misfire_grace_time": None, "coalesce": False},
        timezone=dt.UTC,
    )
    t_ms = math.ceil(time.time() + 5 + n / 2000) * 1000
    ids, due = job_ids(n, "aps"), due_times_ms(n, t_ms, spread)
    for job_id, d in zip(ids, due, strict=True):
        when = dt.datetime.fromtimestamp(d / 1000, dt.UTC)
        args = (receiver.url, job_id, d / 1000)
        scheduler.add_job(post_occurrence, "date", run_date=when, args=args, id=job_id)
    scheduler.start()
    lead_s = t_ms / 1000 - time.time()
    print(f"  APScheduler ({workers} threads): {n:,} jobs added; due in {lead_s:.1f} s")
    try:
        receiver.wait_for(n, lead_s + DELIVERY_TIMEOUT_S)
    finally:
        scheduler.shutdown(wait=True)
    return {"workers": workers, **summarize(receiver.records(), set(ids))}


# --- the report --------------------------------------------------------------------------


def verdict(figures: dict[str, Any]) -> dict[str, bool]:
    late = figures["lateness_ms"]
    rate = figures["deliveries_per_s"] or 0
    return {
        "all_delivered": figures["delivered"] == figures["expected"],
        "lateness_p50": late.get("p50", math.inf) <= TARGETS["lateness_p50_ms"],
        "lateness_p99": late.get("p99", math.inf) <= TARGETS["lateness_p99_ms"],
        "deliveries_per_s": rate >= TARGETS["deliveries_per_s"],
    }


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "lateness_p50": ratio(ours["lateness_ms"].get("p50"), theirs["lateness_ms"].get("p50")),
        "lateness_p99": ratio(ours["lateness_ms"].get("p99"), theirs["lateness_ms"].get("p99")),
        "deliveries_per_s": ratio(ours["deliveries_per_s"], theirs["deliveries_per_s"]),
    }


def print_table(rows: list[tuple[str, dict[str, Any]]]) -> None:
    head = ("system", "delivered", "p50 ms", "p90 ms", "p99 ms", "max ms", "per s", "busiest 1s")
    print(" | ".join(f"{h:>12}" for h in head))
    for name, f in rows:
        late = f["lateness_ms"]
        cells = [name, f"{f['delivered']}/{f['expected']}"]
        cells += [late.get(p) for p in ("p50", "p90", "p99", "max")]
        cells += [f["deliveries_per_s"], f["busiest_second"]]
        print(" | ".join(f"{c!s:>12}" for c in cells))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--quick", action="store_true", help="1,000 jobs: a smoke run")
    p.add_argument(
        "--spread",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="spread the due times over the second (default) or put all at T",
    )
    p.add_argument("--concurrency", type=int, help="the node's --execution-concurrency")
    p.add_argument("--claim-ahead", help="the node's --scheduler-claim-ahead (e.g. 500ms)")
    p.add_argument("--aps-workers", type=int, nargs="*", default=[20, 100])
    return p.parse_args(argv)


def node_flags(a: argparse.Namespace) -> list[str]:
    flags = []
    if a.concurrency is not None:
        flags += ["--execution-concurrency", str(a.concurrency)]
    if a.claim_ahead is not None:
        flags += ["--scheduler-claim-ahead", a.claim_ahead]
    return flags


def result_name(a: argparse.Namespace) -> str:
    """firing[-instant][-quick][-concurrency-C][-claim-ahead-D]"""
    name = "firing" + ("" if a.spread else "-instant") + ("-quick" if a.quick else "")
    if a.concurrency is not None:
        name += f"-concurrency-{a.concurrency}"
    if a.claim_ahead is not None:
        name += f"-claim-ahead-{a.claim_ahead}"
    return name


def run_all(a: argparse.Namespace, n: int) -> dict[str, Any]:
    receiver = ReceiverProcess()
    try:
        ours = run_scheduled_db(n, a.spread, receiver, node_flags(a))
        ours["met"] = verdict(ours)
        aps = [run_apscheduler(n, a.spread, receiver, w) for w in a.aps_workers]
    finally:
        receiver.stop()
    return {
        "jobs": n,
        "due": "spread over one second" if a.spread else "all at the same instant",
        "node_flags": node_flags(a),
        "targets": TARGETS,
        "scheduled_db": ours,
        "apscheduler": aps,
        "ratios_scheduled_db_over_apscheduler": {
            f"{x['workers']}_threads": ratios(ours, x) for x in aps
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    a = parse_args(argv)
    n = 1_000 if a.quick else a.jobs
    print(f"firing {n:,} jobs ({'spread over 1 s' if a.spread else 'all at T'})")
    figures = run_all(a, n)
    rows = [("scheduled-db", figures["scheduled_db"])]
    rows += [(f"APS {x['workers']} thr", x) for x in figures["apscheduler"]]
    print_table(rows)
    met = figures["scheduled_db"]["met"]
    said = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items())
    print(f"scheduled-db targets: {said}")
    print(f"wrote {write_result(result_name(a), figures)}")
    return figures


if __name__ == "__main__":
    main()
