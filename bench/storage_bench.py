"""Storage at scale: ingest N jobs through the state machine, then reopen cold.

    python -m bench.storage_bench [--jobs N] [--quick] [--crash] [--dir DIR] [--keep]

Phase 1 (this process) bootstraps a NodeStore and feeds it realistic CreateJob
commands the way a leader would: ``--per-entry`` jobs in one Batch entry,
``--per-ready`` entries per Ready, each Ready persisted (one synced batch),
then applied (one batch), with snapshots and log compaction as configured by
default.  Phase 2 reopens the directory in a *fresh* process and reports the
time to open it, the resident memory after opening and after typical reads,
and checks the job count.  With ``--crash`` the ingest ends with ``os._exit``
instead of a clean close, so the reopen must replay RocksDB's write-ahead log
(the restart after a crash).  Targets (issue 3): RSS after restart <= 300 MB,
reopen <= 5 s.  Writes bench/results/storage.json (-crash, -quick variants).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from actors.node_store import NodeStore
from bench.common import write_result
from scheduled_db import commands as c
from scheduled_db import queries
from scheduled_db.jobs import JobSpec, JobType, MisfirePolicy
from scheduled_db.raft.messages import Entry, HardState

RSS_TARGET_MB = 300
REOPEN_TARGET_S = 5.0
NOW_MS = 1_780_000_000_000  # a fixed "now": the bench is reproducible
DAY_MS = 86_400_000
NODE = "bench"


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def job_id(n: int) -> str:
    return f"{n:08x}-7d1c-4b2e-9f3a-{n * 2654435761 % 2**48:012x}"


def make_spec(rng: random.Random, n: int) -> JobSpec:
    """A job like a real tenant's: a webhook, a payload of a few hundred bytes."""
    jid = job_id(n)
    recurring = rng.random() < 0.7
    tenant = f"tenant-{rng.randrange(5000):04d}"
    return JobSpec(
        id=jid,
        type=JobType.RECURRENTE if recurring else JobType.UNICO,
        timestamp_ms=None if recurring else NOW_MS + rng.randrange(30 * DAY_MS),
        cron_expression=rng.choice(("*/5 * * * *", "0 9 * * 1-5", "30 2 * * *"))
        if recurring
        else None,
        timezone=rng.choice(("UTC", "Europe/Madrid", "America/Bogota")),
        last_date_ms=NOW_MS + 365 * DAY_MS if recurring and rng.random() < 0.3 else None,
        webhook_url=f"https://hooks.example.com/{tenant}/jobs/{jid}",
        payload={
            "tenant": tenant,
            "action": rng.choice(("send_report", "sync_inventory", "expire_sessions")),
            "params": {
                "format": "pdf",
                "locale": "es-ES",
                "recipients": [f"ops{rng.randrange(99)}@{tenant}.example.com"],
            },
            "trace_id": f"{rng.getrandbits(128):032x}",
        },
        misfire_policy=MisfirePolicy.FIRE_ONCE if rng.random() < 0.8 else MisfirePolicy.SKIP,
        max_attempts=rng.choice((None, 3, 5)),
    )


def _ready(
    rng: random.Random, made: int, total: int, index: int, a: argparse.Namespace
) -> list[Entry]:
    entries: list[Entry] = []
    while made < total and len(entries) < a.per_ready:
        n = min(a.per_entry, total - made)
        cmds = tuple(
            c.CreateJob(make_spec(rng, made + k), NOW_MS, NOW_MS + rng.randrange(30 * DAY_MS))
            for k in range(n)
        )
        index += 1
        made += n
        entries.append(Entry(1, index, data=c.encode_command(c.Batch(cmds))))
    return entries


def ingest(path: Path, a: argparse.Namespace) -> dict[str, Any]:
    store = NodeStore.open(path, NODE)
    store.bootstrap((NODE,))
    rng = random.Random(7)
    made, index, in_store, snapshots = 0, 1, 0.0, 0
    t0 = time.perf_counter()
    while made < a.jobs:
        entries = _ready(rng, made, a.jobs, index, a)
        index = entries[-1].index
        t = time.perf_counter()
        store.persist_ready(HardState(1, NODE, index), entries)
        out = store.apply(entries)
        if store.should_snapshot():
            snapshots += int(store.create_snapshot() is not None)
        in_store += time.perf_counter() - t
        made += sum(1 for e in out.results for r in e.results if r.changed)
        if made and made % 100_000 < a.per_entry * a.per_ready:
            print(f"  {made:>9,} jobs  {time.perf_counter() - t0:6.1f} s", file=sys.stderr)
    total = time.perf_counter() - t0
    counters = queries.counters(store.view())
    if not a.crash:
        store.close()
    return {
        "ingest_s": round(total, 1),
        "ingest_jobs_per_s": round(a.jobs / total),
        "storage_only_s": round(in_store, 1),
        "storage_only_jobs_per_s": round(a.jobs / in_store),
        "snapshots_taken": snapshots,
        "state_bytes_estimate_mb": round(counters.bytes / 2**20, 1),
        "disk_mb": round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1),
        "ingest_peak_rss_mb": round(rss_mb("VmHWM")),
    }


def reopen(path: Path, jobs: int) -> dict[str, Any]:
    """Phase 2, run in a fresh process: open cold, read, measure."""
    base = rss_mb()
    t0 = time.perf_counter()
    store = NodeStore.open(path, NODE)
    opened = time.perf_counter() - t0
    after_open = rss_mb()
    view = store.view()
    t = time.perf_counter()
    counters = queries.counters(view)
    due = queries.due_before(view, NOW_MS + DAY_MS, limit=1000)
    rng = random.Random(1)
    found = sum(queries.get_job(view, job_id(rng.randrange(jobs))) is not None for _ in range(1000))
    page = queries.list_jobs(view, None, None, 100)
    reads = time.perf_counter() - t
    assert counters.jobs == jobs and found == 1000 and len(page.jobs) == 100, counters
    result = {
        "reopen_s": round(opened, 2),
        "rss_before_open_mb": round(base),
        "rss_after_reopen_mb": round(after_open),
        "rss_after_reads_mb": round(rss_mb()),
        "reads_ms": round(reads * 1000, 1),
        "due_within_a_day_first_1000": len(due),
        "jobs_after_reopen": counters.jobs,
        "log_entries_in_memory": store.log.last_index() - store.log.first_index() + 1,
    }
    store.close()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="20,000 jobs: a smoke run")
    p.add_argument("--per-entry", type=int, default=1000, help="jobs per Batch entry")
    p.add_argument("--per-ready", type=int, default=10, help="entries per Ready")
    p.add_argument("--crash", action="store_true", help="end the ingest without closing")
    p.add_argument("--dir", type=Path, help="data directory (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    p.add_argument("--phase", choices=("ingest", "reopen"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.quick:
        a.jobs = 20_000
    if a.phase:
        run_phase(a)
        return
    root = a.dir or Path(tempfile.mkdtemp(prefix="storage-bench-"))
    try:
        run(root / "node", a)
    finally:
        if not a.keep:
            shutil.rmtree(root / "node" if a.dir else root, ignore_errors=True)


def run_phase(a: argparse.Namespace) -> None:
    """One phase in this (fresh) process; figures go to stdout as one JSON line."""
    if a.phase == "reopen":
        print(json.dumps(reopen(a.dir, a.jobs)), flush=True)
        return
    print(json.dumps(ingest(a.dir, a)), flush=True)
    if a.crash:
        os._exit(0)  # as if killed: no flush, so the reopen replays the write-ahead log


def _phase(name: str, path: Path, a: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.storage_bench", "--phase", name, "--dir", str(path)]
    cmd += ["--jobs", str(a.jobs), "--per-entry", str(a.per_entry), "--per-ready", str(a.per_ready)]
    cmd += ["--crash"] if a.crash else []
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def run(path: Path, a: argparse.Namespace) -> None:
    print(f"ingesting {a.jobs:,} jobs into {path}", flush=True)
    figures: dict[str, Any] = {"jobs": a.jobs, "jobs_per_entry": a.per_entry}
    figures["entries_per_ready"] = a.per_ready
    figures["ingest_ended_by"] = "os._exit (crash)" if a.crash else "close (flush)"
    figures.update(_phase("ingest", path, a))
    figures.update(_phase("reopen", path, a))
    figures["rss_target_mb"], figures["reopen_target_s"] = RSS_TARGET_MB, REOPEN_TARGET_S
    figures["targets_met"] = (
        figures["rss_after_reopen_mb"] <= RSS_TARGET_MB and figures["reopen_s"] <= REOPEN_TARGET_S
    )
    name = "storage" + ("-crash" if a.crash else "") + ("-quick" if a.quick else "")
    result = write_result(name, figures)  # a smoke run never overwrites the real figures
    for k, v in figures.items():
        print(f"  {k:32} {v}")
    print(f"wrote {result}")


if __name__ == "__main__":
    main()
