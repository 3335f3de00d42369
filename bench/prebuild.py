"""Fill a node's data directory with N realistic jobs, as its Raft log would, without a cluster.

    python -m bench.prebuild --dir DIR --node-id ID --voters a,b,c --jobs N --now-ms T
                             [--crash] [--snapshot-at-end]

Creating a million jobs through the API takes a quarter of an hour; the storage
and snapshot benchmarks need them in minutes.  So this bootstraps a ``NodeStore``
for the given voters and feeds it ``CreateJob`` commands exactly as a leader's
log would reach it: ``--per-entry`` jobs in one Batch entry of term 1,
``--per-ready`` entries per Ready, each Ready persisted (one synced batch), then
applied (one batch), with snapshots and log compaction on the default policy.
Every voter's directory built with the same arguments holds the same log, so
they form a consistent cluster that elects a leader in term 2.

Jobs are like a real tenant's: a uuid-like id, a webhook, a payload of a few
hundred bytes, 70% recurring (about 800 bytes per job with its indexes).  None
falls due within a day of ``--now-ms``, so a node started on the directory stays
quiet.  The figures of the ingest go to stdout as one JSON line; ``--crash``
then ends the process with ``os._exit`` (no flush: the next open replays the
write-ahead log, as after a crash).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from actors.storage.store import NodeStore, StoreOptions
from bench.common import Progress
from scheduled_db.jobs.model import JobSpec, JobType, MisfirePolicy
from scheduled_db.raft.messages import Entry, HardState
from scheduled_db.state import commands as c
from scheduled_db.state import queries

DAY_MS = 86_400_000


def job_id(n: int) -> str:
    return f"{n:08x}-7d1c-4b2e-9f3a-{n * 2654435761 % 2**48:012x}"


def make_spec(rng: random.Random, n: int, now_ms: int) -> JobSpec:
    """A job like a real tenant's: a webhook, a payload of a few hundred bytes."""
    jid = job_id(n)
    recurring = rng.random() < 0.7
    tenant = f"tenant-{rng.randrange(5000):04d}"
    return JobSpec(
        id=jid,
        type=JobType.RECURRENTE if recurring else JobType.UNICO,
        timestamp_ms=None if recurring else now_ms + DAY_MS + rng.randrange(30 * DAY_MS),
        cron_expression=rng.choice(("*/5 * * * *", "0 9 * * 1-5", "30 2 * * *"))
        if recurring
        else None,
        timezone=rng.choice(("UTC", "Europe/Madrid", "America/Bogota")),
        last_date_ms=now_ms + 365 * DAY_MS if recurring and rng.random() < 0.3 else None,
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
        # Not drawn from rng (the jobs stay those of earlier runs): job n is in team
        # n % 1000, so a team label selects one job in a thousand.
        labels=(("team", team_label(n)), ("tenant", tenant)),
    )


def team_label(n: int) -> str:
    return f"team-{n % 1000:03d}"


def _ready(rng: random.Random, made: int, index: int, a: argparse.Namespace) -> list[Entry]:
    """The entries of one Ready: up to per_ready Batch entries of per_entry creates."""
    entries: list[Entry] = []
    while made < a.jobs and len(entries) < a.per_ready:
        n = min(a.per_entry, a.jobs - made)
        cmds = tuple(
            c.CreateJob(
                make_spec(rng, made + k, a.now_ms),
                a.now_ms,
                a.now_ms + DAY_MS + rng.randrange(30 * DAY_MS),
            )
            for k in range(n)
        )
        index += 1
        made += n
        entries.append(Entry(1, index, data=c.encode_command(c.Batch(cmds))))
    return entries


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def ingest(a: argparse.Namespace) -> dict[str, Any]:
    options = StoreOptions(keep_entries=0) if a.snapshot_at_end else StoreOptions()
    store = NodeStore.open(a.dir, a.node_id, options=options)
    voters = tuple(a.voters.split(","))
    store.bootstrap(voters)
    rng = random.Random(7)  # the same jobs in every directory built alike
    made, index, in_store, snapshots = 0, 1, 0.0, 0
    progress = Progress(f"{a.node_id}: ingest", a.jobs, " jobs")
    t0 = time.perf_counter()
    while made < a.jobs:
        entries = _ready(rng, made, index, a)
        index = entries[-1].index
        t = time.perf_counter()
        store.persist_ready(HardState(1, voters[0], index), entries)
        out = store.apply(entries)
        if store.should_snapshot():
            snapshots += int(store.create_snapshot() is not None)
        in_store += time.perf_counter() - t
        made += sum(1 for e in out.results for r in e.results if r.changed)
        progress.update(made)
    if a.snapshot_at_end:  # so a new member can only catch up by snapshot
        snapshots += int(store.create_snapshot(force=True) is not None)
    total = time.perf_counter() - t0
    progress.finish()
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
        "disk_mb": round(sum(f.stat().st_size for f in a.dir.rglob("*") if f.is_file()) / 2**20),
        "ingest_peak_rss_mb": round(rss_mb("VmHWM")),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--voters", required=True, help="comma-separated node ids")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--now-ms", type=int, default=int(time.time() * 1000))
    p.add_argument("--per-entry", type=int, default=1000, help="jobs per Batch entry")
    p.add_argument("--per-ready", type=int, default=10, help="entries per Ready")
    p.add_argument("--crash", action="store_true", help="end without closing the store")
    p.add_argument("--snapshot-at-end", action="store_true", help="snapshot, keep no log")
    return p.parse_args(argv)


def command(path: Path, node_id: str, voters: str, jobs: int, now_ms: int) -> list[str]:
    """The command line that builds one directory (in a fresh process)."""
    return [
        sys.executable, "-m", "bench.prebuild", "--dir", str(path), "--node-id", node_id,
        "--voters", voters, "--jobs", str(jobs), "--now-ms", str(now_ms),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    print(json.dumps(ingest(a)), flush=True)
    if a.crash:
        os._exit(0)  # as if killed: no flush, so the next open replays the write-ahead log


if __name__ == "__main__":
    main()
