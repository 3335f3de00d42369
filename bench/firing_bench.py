"""Firing at scale: N one-time jobs due in the same second, delivered to a local receiver.

    python -m bench --only firing [--quick]          # 1,000, 10,000 and 50,000 jobs
    python -m bench.firing_bench [--jobs N] [--no-spread] [--concurrency C]
                                 [--claim-ahead 2s] [--aps-workers 20 100]   # one experiment

scheduled-db: a real node process (``python -m scheduled_db run``, one-node Raft
group, RocksDB in a temporary directory) gets N ``unico`` jobs over its REST API
from 32 concurrent connections, well before the second T they are due in; job i
is due at T + i*1000/N ms (``--no-spread``: all at T).  Their webhooks POST to
a receiver in a process of its own (:mod:`bench.firing_receiver`), which stamps
each arrival.

APScheduler 3, in the same run and against the same receiver: a
``BackgroundScheduler`` with a ``MemoryJobStore`` and a ``ThreadPoolExecutor``
(100 threads) runs N ``date`` jobs at the same due times, each POSTing the same
JSON body with ``urllib.request``.

Lateness is arrival at the receiver minus the scheduled time.  Targets (issue 5),
for N = 10,000: all delivered, p50 <= 10 ms, p99 <= 100 ms, >= 5,000 deliveries/s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# APScheduler 3 ships no type information; it is only the reference being measured,
# installed by pip install '.[bench]'.  Without it (a `make build` environment) the
# part measures scheduled-db alone and says why.
try:
    from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
    from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
    from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
        BackgroundScheduler,
    )

    APSCHEDULER_MISSING: str | None = None
except ImportError:
    APSCHEDULER_MISSING = "APScheduler 3 is not installed (pip install '.[bench]')"

from bench.common import check, ratio, say, write_result
from bench.firing_receiver import ReceiverProcess, summarize
from bench.procs import Node, post_jobs
from scheduled_db.testing.harness import WaitTimeout, wait_until

NAME = "firing"
SIZES = (1_000, 10_000, 50_000)
TARGET_SIZE = 10_000  # the size the targets are stated for
TARGETS = {"lateness_p50_ms": 10.0, "lateness_p99_ms": 100.0, "deliveries_per_s": 5000}
# Same-instant bursts (issue 18): N jobs due at the same millisecond, one node; the
# first delivery, p50 and p99 of lateness in ms (None: no target), all delivered once.
BURSTS: dict[int, dict[str, float | None]] = {
    300: {"min": None, "p50": 25.0, "p99": 50.0},
    2_000: {"min": 5.0, "p50": 60.0, "p99": 150.0},
}
BURST_MARGIN_S = 6.0  # from creation to the instant: the claims are made 2 s ahead
APS_WORKERS = 100  # 20 or 100 made no difference in earlier runs (one GIL)
CONNECTIONS = 32  # concurrent clients creating the jobs
DELIVERY_TIMEOUT_S = 180.0  # after T, for every request to arrive
DAY_S = 86_400


def due_times_ms(n: int, t_ms: int, spread: bool) -> list[int]:
    """When each of the n jobs is due: spread uniformly over [T, T+1s), or all at T."""
    return [t_ms + (i * 1000) // n if spread else t_ms for i in range(n)]


def job_ids(n: int, prefix: str) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]


# --- scheduled-db ------------------------------------------------------------------------


def create_jobs(base: str, ids: list[str], due_ms: list[int], url: str) -> float:
    """Create the jobs over HTTP from 32 connections; return the seconds it took."""
    bodies = [
        {"id": i, "type": "unico", "timestamp": d / 1000, "webhook_url": url, "payload": {"n": k}}
        for k, (i, d) in enumerate(zip(ids, due_ms, strict=True))
    ]
    return post_jobs(base, bodies, CONNECTIONS)


def plan_second(node: Node, n: int, url: str, margin_s: float) -> tuple[int, float]:
    """Measure the creation rate with warm-up jobs (due a day later, so they never
    fire here); return T (a whole second, epoch ms) and the rate."""
    warm = min(300, max(50, n // 10))
    tomorrow_ms = int((time.time() + DAY_S) * 1000)
    took = create_jobs(node.base, job_ids(warm, "warmup"), [tomorrow_ms] * warm, url)
    rate = warm / took
    return math.ceil(time.time() + 1.5 * n / rate + margin_s) * 1000, rate


def node_lateness(node: Node) -> dict[str, float]:
    """The node's own firing_lateness_seconds histogram: cumulative counts per bucket."""
    with urllib.request.urlopen(node.base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    prefix = 'scheduled_db_firing_lateness_seconds_bucket{le="'
    buckets = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            le, value = line[len(prefix) :].split('"}')
            buckets[f"le_{le}s"] = float(value)
    return buckets


def completed_count(node: Node, n: int, timeout: float = 60) -> int:
    """Completed jobs as the API lists them, once n are (or when the bounded wait ends)."""
    seen = [0]

    def done() -> bool:
        seen[0] = int(node.call("GET", "/jobs?status=completed&limit=1")[1]["total"])
        return seen[0] >= n

    with contextlib.suppress(WaitTimeout):  # reported as the count, and as a missed target
        wait_until(done, timeout, "every job to complete", poll=0.2)
    return seen[0]


def sampled_statuses(node: Node, ids: list[str], k: int = 50) -> dict[str, int]:
    """Each job's own status, for every (len(ids) // k)-th job: beside the count above."""
    seen: Counter[str] = Counter()
    for job_id in ids[:: max(1, len(ids) // k)]:
        seen[node.call("GET", f"/jobs/{job_id}/status")[1]["status"]] += 1
    return dict(seen)


def run_scheduled_db(n: int, spread: bool, receiver: ReceiverProcess, a: Any) -> Any:
    with tempfile.TemporaryDirectory(prefix="bench-firing-") as tmp:
        node = Node(Path(tmp) / "data", extra=node_flags(a))
        node.start(wait=False)
        try:
            wait_until(node.answers, 60, "the node to serve HTTP")
            return _fire_on_node(node, n, spread, receiver, a.margin)
        finally:
            node.stop()


def _fire_on_node(node: Node, n: int, spread: bool, rec: ReceiverProcess, margin: float) -> Any:
    rec.reset()
    t_ms, rate = plan_second(node, n, rec.url, margin)
    ids, due = job_ids(n, "job"), due_times_ms(n, t_ms, spread)
    took = create_jobs(node.base, ids, due, rec.url)
    lead_s = t_ms / 1000 - time.time()
    say(f"firing: scheduled-db has {n:,} jobs (created in {took:.1f} s), due in {lead_s:.1f} s")
    creation = {"seconds": round(took, 2), "jobs_per_s": round(n / took)}
    creation.update(warmup_jobs_per_s=round(rate), due_after_creation_s=round(lead_s, 1))
    rec.wait_for(n, t_ms / 1000 - time.time() + DELIVERY_TIMEOUT_S)
    figures = summarize(rec.records(), set(ids))
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
    sent = time.time()
    body = {
        "job_id": job_id,
        "type": "unico",
        "scheduled_at": int(scheduled_at),
        "scheduled_at_ms": round(scheduled_at * 1000),
        "executed_at": int(sent),
        "executed_at_ms": round(sent * 1000),
        "attempt": 1,
        "payload": {},
        "timestamp": int(sent),
        "data": {},
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
    t_ms = math.ceil(time.time() + 2 + n / 2000) * 1000
    ids, due = job_ids(n, "aps"), due_times_ms(n, t_ms, spread)
    for job_id, d in zip(ids, due, strict=True):
        when = dt.datetime.fromtimestamp(d / 1000, dt.UTC)
        args = (receiver.url, job_id, d / 1000)
        scheduler.add_job(post_occurrence, "date", run_date=when, args=args, id=job_id)
    scheduler.start()
    lead_s = t_ms / 1000 - time.time()
    say(f"firing: APScheduler ({workers} threads) has {n:,} jobs, due in {lead_s:.1f} s")
    try:
        receiver.wait_for(n, lead_s + DELIVERY_TIMEOUT_S)
    finally:
        scheduler.shutdown(wait=True)
    return {"workers": workers, **summarize(receiver.records(), set(ids))}


# --- one size, both systems --------------------------------------------------------------


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
    late, their_late = ours["lateness_ms"], theirs["lateness_ms"]
    return {
        "lateness_p50": ratio(late.get("p50"), their_late.get("p50")),
        "lateness_p99": ratio(late.get("p99"), their_late.get("p99")),
        "deliveries_per_s": ratio(ours["deliveries_per_s"], theirs["deliveries_per_s"]),
    }


def measure_size(n: int, a: argparse.Namespace) -> dict[str, Any]:
    """scheduled-db, then APScheduler at each pool size, against one receiver."""
    receiver = ReceiverProcess()
    try:
        ours = run_scheduled_db(n, a.spread, receiver, a)
        ours["met"] = verdict(ours)
        workers = [] if APSCHEDULER_MISSING else a.aps_workers
        aps = [run_apscheduler(n, a.spread, receiver, w) for w in workers]
    finally:
        receiver.stop()
    if APSCHEDULER_MISSING:
        say(f"firing: {APSCHEDULER_MISSING}: scheduled-db measured alone")
    return {
        "jobs": n,
        "due": "spread over one second" if a.spread else "all at the same instant",
        "node_flags": node_flags(a),
        "scheduled_db": ours,
        "apscheduler": aps,
        "ratios_scheduled_db_over_apscheduler": {
            f"{x['workers']}_threads": ratios(ours, x) for x in aps
        },
        "apscheduler_missing": APSCHEDULER_MISSING,
    }


Reader = Callable[[dict[str, Any]], Any]
CHECKS: tuple[tuple[str, str, str, Reader], ...] = (  # what, target, verdict() key, figure
    ("10,000 jobs: delivered", "all", "all_delivered", lambda f: f["delivered"]),
    ("10,000 jobs: lateness p50 (ms)", "<= 10 ms", "lateness_p50",
     lambda f: f["lateness_ms"].get("p50")),
    ("10,000 jobs: lateness p99 (ms)", "<= 100 ms", "lateness_p99",
     lambda f: f["lateness_ms"].get("p99")),
    ("10,000 jobs: deliveries/s", ">= 5,000", "deliveries_per_s",
     lambda f: f["deliveries_per_s"]),
)  # fmt: skip


def checks(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue-5 targets, judged on the 10,000-job run (absent from a quick run),
    each with APScheduler's figure from the same run beside it."""
    run10k = next((s for s in sizes if s["jobs"] == TARGET_SIZE), None)
    if run10k is None:
        note = f"the targets are for {TARGET_SIZE:,} jobs, not run in a quick run"
        return [check(what, target, None, None, note=note) for what, target, _, _ in CHECKS]
    ours = run10k["scheduled_db"]
    aps = run10k["apscheduler"][0] if run10k["apscheduler"] else None
    return [
        check(what, target, read(ours), ours["met"][key], aps and f"APScheduler 3: {read(aps)}")
        for what, target, key, read in CHECKS
    ]


def run(quick: bool) -> dict[str, Any]:
    """The suite's part: every size, both systems; then the same-instant bursts."""
    a = parse_args([])
    a.aps_workers, a.margin = [APS_WORKERS], (3.0 if quick else 10.0)
    sizes = []
    for n in (SIZES[0],) if quick else SIZES:
        say(f"firing: {n:,} jobs due within one second")
        sizes.append(measure_size(n, a))
    b = parse_args(["--no-spread", "--margin", str(BURST_MARGIN_S)])
    b.aps_workers = [APS_WORKERS]
    bursts = []
    for n in list(BURSTS)[:1] if quick else BURSTS:
        say(f"firing: {n:,} jobs due at the same instant")
        bursts.append(measure_size(n, b))
    say("firing: the spread burst with and without a delivery worker process")
    runs = 1 if quick else WORKER_RUNS
    workers = compare_workers(SIZES[0] if quick else TARGET_SIZE, runs)
    # 10,000 a second is offered at most: a node that keeps up cannot show more.  The
    # capacities compare where both fall behind (goal 3's figure).
    say("firing: the largest spread burst with and without a delivery worker process")
    capacity = compare_workers(SIZES[0] if quick else SIZES[-1], runs)
    return {
        "targets": TARGETS,
        "target_size": TARGET_SIZE,
        "sizes": sizes,
        "burst_targets": {str(n): t for n, t in BURSTS.items()},
        "bursts": bursts,
        "delivery_workers": workers,
        "delivery_workers_capacity": capacity,
        "checks": checks(sizes) + burst_checks(bursts) + [worker_check(capacity)],
    }


WORKER_RUNS = 3  # of each setting, alternated: a 2-core machine's runs vary by 2x
WORKER_GOAL = 1.6  # issue 18: deliveries/s with a second process over one


def compare_workers(n: int, runs: int) -> dict[str, Any]:
    """The spread burst of ``n`` jobs on a node that sends from its own process
    (``--execution-delivery-workers 0``) and on one with one worker process (the
    default), ``runs`` times each, alternated; medians of each figure."""
    seen: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for _ in range(runs):
        for w in seen:
            a = parse_args(["--delivery-workers", str(w), "--margin", "8", "--aps-workers"])
            seen[w].append(measure_size(n, a)["scheduled_db"])

    def summary(figs: list[dict[str, Any]]) -> dict[str, Any]:
        def med(read: Callable[[dict[str, Any]], Any]) -> Any:
            values = sorted(v for v in map(read, figs) if v is not None)
            return values[len(values) // 2] if values else None

        return {
            "runs": len(figs),
            "deliveries_per_s": med(lambda f: f["deliveries_per_s"]),
            "deliveries_per_s_all": [f["deliveries_per_s"] for f in figs],
            "lateness_p50_ms": med(lambda f: f["lateness_ms"].get("p50")),
            "lateness_p50_ms_all": [f["lateness_ms"].get("p50") for f in figs],
            "lateness_p99_ms": med(lambda f: f["lateness_ms"].get("p99")),
            "delivered_all": all(f["delivered"] == n for f in figs),
        }

    one, two = summary(seen[0]), summary(seen[1])
    return {
        "jobs": n,
        "in_process": one,
        "one_worker": two,
        "ratio_deliveries_per_s": ratio(two["deliveries_per_s"], one["deliveries_per_s"]),
    }


def worker_check(workers: dict[str, Any]) -> dict[str, Any]:
    value = workers["ratio_deliveries_per_s"]
    met = value is not None and value >= WORKER_GOAL and workers["one_worker"]["delivered_all"]
    what = f"{workers['jobs']:,} spread: deliveries/s, 2 processes over 1 (x)"
    return check(what, f">= {WORKER_GOAL:g}x", value, met)


def burst_checks(bursts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 18's burst targets, each with APScheduler's figure from the same run."""
    out = []
    for burst in bursts:
        n, ours = burst["jobs"], burst["scheduled_db"]
        aps = burst["apscheduler"][0] if burst["apscheduler"] else None
        once = ours["delivered"] == n and ours["duplicates"] == 0
        out.append(check(f"{n:,} at one instant: delivered once", "all", ours["delivered"], once))
        names = {"min": "first delivery", "p50": "lateness p50", "p99": "lateness p99"}
        for key, target in BURSTS[n].items():
            if target is None:
                continue
            value = ours["lateness_ms"].get(key)
            theirs = aps and f"APScheduler 3: {aps['lateness_ms'].get(key)}"
            met = value is not None and value <= target
            out.append(check(f"{n:,} at one instant: {names[key]} (ms)", f"<= {target:g} ms",
                             value, met, theirs))  # fmt: skip
    return out


# --- one experiment from the command line ------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument(
        "--spread",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="spread the due times over the second (default) or put all at T",
    )
    p.add_argument("--concurrency", type=int, help="the node's --execution-concurrency")
    p.add_argument("--claim-ahead", help="the node's --scheduler-claim-ahead (e.g. 500ms)")
    p.add_argument("--delivery-workers", type=int, help="the node's --execution-delivery-workers")
    p.add_argument("--aps-workers", type=int, nargs="*", default=[20, 100])
    p.add_argument("--margin", type=float, default=10.0, help="seconds between creation and T")
    return p.parse_args(argv)


def node_flags(a: argparse.Namespace) -> list[str]:
    flags = []
    if a.concurrency is not None:
        flags += ["--execution-concurrency", str(a.concurrency)]
    if a.claim_ahead is not None:
        flags += ["--scheduler-claim-ahead", a.claim_ahead]
    if getattr(a, "delivery_workers", None) is not None:
        flags += ["--execution-delivery-workers", str(a.delivery_workers)]
    return flags


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    figures = measure_size(a.jobs, a)
    for name, f in [
        ("scheduled-db", figures["scheduled_db"]),
        *((f"APScheduler {x['workers']} threads", x) for x in figures["apscheduler"]),
    ]:
        print(f"{name}: {f['delivered']}/{f['expected']} delivered, lateness {f['lateness_ms']},"
              f" {f['deliveries_per_s']}/s")  # fmt: skip
    name = f"firing-run-{a.jobs}" + ("" if a.spread else "-instant")
    name += "".join(f"-{x.lstrip('-')}" for x in node_flags(a))
    print(f"wrote {write_result(name, figures)}")


if __name__ == "__main__":
    main()
