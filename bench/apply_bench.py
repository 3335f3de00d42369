"""What applying a firing costs the storage thread, without the node around it.

    python -m bench.apply_bench [--jobs N] [--batch B] [--rounds R]

A real ``NodeStore`` (RocksDB in a temporary directory) applies what firing N
one-time jobs writes to the Raft log: their creates, then their claims, then
each one's outcome with its completion, B occurrences to an entry, as the
scheduler groups them.  Printed: µs of one thread per occurrence for the claims
and for the outcomes, the fastest of R rounds (each round a fresh store), and how
many job reads the store's memo of written jobs answered.  Entries are decoded
as a follower decodes them (the leader takes its own commands undecoded).  It is
a CPU measurement of pure code on one thread, so it moves far less between runs
than the end-to-end firing figures do (docs/benchmarks-history.md, "Firing:
the apply's share").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from actors.storage.store import NodeStore
from scheduled_db.jobs.model import JobSpec, JobStatus, JobType
from scheduled_db.raft.messages import Entry, EntryType
from scheduled_db.state import commands as c

T0 = 1_900_000_000_000  # when the jobs are created; due 5 s later


def _specs(n: int) -> list[JobSpec]:
    return [
        JobSpec(
            id=f"job-{i:06d}",
            type=JobType.UNICO,
            timestamp_ms=T0 + 5_000,
            webhook_url="http://127.0.0.1:9/hook",
            payload={"n": i},
        )
        for i in range(n)
    ]


def _entries(groups: list[list[c.Command]], first: int) -> list[Entry]:
    return [
        Entry(1, first + i, EntryType.NORMAL, c.encode_command(c.Batch(tuple(g))))
        for i, g in enumerate(groups)
    ]


def one_round(n: int, batch: int) -> tuple[float, float, int]:
    """(claim µs, outcome+completion µs) per occurrence, and the memo's hits."""
    specs = _specs(n)
    due = T0 + 5_000
    chunks = [specs[i : i + batch] for i in range(0, n, batch)]
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        store = NodeStore.open(Path(tmp) / "n1", "n1")
        try:
            store.bootstrap(("n1",))
            index = store.applied()[0] + 1
            creates = [[c.CreateJob(s, T0, due) for s in g] for g in chunks]
            claims = [
                [c.ClaimOccurrence(s.id, due, 1, "n1", 1, due - 50) for s in g] for g in chunks
            ]
            outcomes = [
                [
                    x
                    for s in g
                    for x in (
                        c.RecordOutcome(s.id, due, 1, JobStatus.COMPLETED, due + 3, 200, 2),
                        c.CompleteOccurrence(s.id, due, None, JobStatus.COMPLETED, due + 3),
                    )
                ]
                for g in chunks
            ]
            times = []
            for groups in (creates, claims, outcomes):
                entries = _entries(groups, index)
                index += len(entries)
                started = time.thread_time()
                for entry in entries:
                    store.apply([entry])
                times.append((time.thread_time() - started) / n * 1e6)
            hits = store.memo.hits
        finally:
            store.close()
    return times[1], times[2], hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=5_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    runs = [one_round(args.jobs, args.batch) for _ in range(args.rounds)]
    claim = min(r[0] for r in runs)
    outcome = min(r[1] for r in runs)
    print(
        f"{args.jobs} occurrences, {args.batch} to an entry, best of {args.rounds}: "
        f"claim {claim:.1f} µs, outcome+completion {outcome:.1f} µs, "
        f"together {claim + outcome:.1f} µs an occurrence; memo hits {runs[-1][2]}"
    )


if __name__ == "__main__":
    main()
