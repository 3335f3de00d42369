"""Committed entries per second of the pure Raft core: 3 nodes, no I/O.

    python -m bench --only raft [--quick]
    python -m bench.raft_bench [--entries N] [--size BYTES] [--quick]

Three cores exchange messages in memory through the full Ready contract (persist
into MemoryStorage, send, apply, advance).  The leader proposes batches of 1,
16 and 256 entries; the figure is entries committed *and applied on every node*
per second.
Target (issue 2): at least 100,000 entries/s, so consensus is never the node's
bottleneck.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from bench.common import Progress, check, say, write_result
from scheduled_db.raft.core import Raft
from scheduled_db.raft.replication import Config, Role
from scheduled_db.raft.storage import MemoryStorage

NAME = "raft"
TARGET = 100_000
BATCHES = (1, 16, 256)
QUICK_ENTRIES = 20_000


class Cluster:
    def __init__(self, n: int = 3) -> None:
        ids = tuple(f"n{i}" for i in range(1, n + 1))
        self.storage = {i: MemoryStorage() for i in ids}
        for st in self.storage.values():
            st.bootstrap(ids)
        self.nodes = {
            i: Raft(Config(i, max_entries_per_msg=4096), self.storage[i], random.Random(k))
            for k, i in enumerate(ids)
        }
        self.applied = dict.fromkeys(ids, 0)

    def pump(self) -> None:
        busy = True
        while busy:
            busy = False
            for i, r in self.nodes.items():
                if not r.has_ready():
                    continue
                busy = True
                rd = r.ready()
                st = self.storage[i]
                if rd.snapshot is not None:
                    st.apply_snapshot(rd.snapshot)
                st.append(rd.entries)
                if rd.hard_state is not None:
                    st.set_hard_state(rd.hard_state)
                if rd.committed_entries:
                    self.applied[i] = rd.committed_entries[-1].index
                r.advance()
                for m in rd.messages:
                    self.nodes[m.to].step(m)

    def elect(self) -> Raft:
        self.nodes["n1"].campaign()
        self.pump()
        leader = self.nodes["n1"]
        assert leader.role is Role.LEADER
        return leader


def measure(entries: int, batch: int, size: int) -> dict[str, float]:
    cluster = Cluster()
    leader = cluster.elect()
    payload = [bytes(size) for _ in range(batch)]
    rounds = entries // batch
    progress = Progress(f"batch {batch}", rounds * batch, " entries")
    start = time.perf_counter()
    for k in range(rounds):
        leader.propose_batch(payload)
        cluster.pump()
        # compact as a node would, so memory stays flat over long runs
        for st, r in zip(cluster.storage.values(), cluster.nodes.values(), strict=True):
            if r.log.applied - st.first_index() > 50_000:
                st.compact(r.log.applied - 1000)
        if k % 64 == 0:
            progress.update(k * batch)
    elapsed = time.perf_counter() - start
    progress.finish()
    target = leader.log.last_index()
    assert all(a == target for a in cluster.applied.values()), cluster.applied
    return {
        "entries": rounds * batch,
        "batch": batch,
        "entry_bytes": size,
        "seconds": round(elapsed, 3),
        "entries_per_s": round(rounds * batch / elapsed),
    }


def run(quick: bool, entries: int = 1_000_000, size: int = 100) -> dict[str, Any]:
    """The suite's part: entries/s at 1, 16 and 256 proposals per batch."""
    if quick:
        entries = QUICK_ENTRIES
    runs = []
    for batch in BATCHES:
        say(f"raft: {entries:,} entries of {size} bytes, {batch} per proposal")
        runs.append(measure(entries, batch, size))
    best = runs[-1]["entries_per_s"]
    return {
        "runs": runs,
        "reference": None,  # no other consensus core runs in this process
        "checks": [
            check(
                f"entries/s with batching ({BATCHES[-1]} per proposal)",
                f">= {TARGET:,}",
                best,
                best >= TARGET,
            )
        ],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="a smaller run for smoke tests")
    a = p.parse_args(argv)
    figures = run(a.quick, a.entries, a.size)
    for r in figures["runs"]:
        print(
            f"batch={r['batch']:>4}: {r['entries_per_s']:>9,} entries/s "
            f"({r['entries']:,} entries in {r['seconds']} s)"
        )
    print(f"wrote {write_result(NAME, figures, a.quick)}")


if __name__ == "__main__":
    main()
