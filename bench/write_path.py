"""A short look at the write path: creates/s, latency and CPU per create by role.

    python -m bench.write_path [seconds] [--open RATE]

A local 3-node cluster, ``POST /jobs`` to the leader in closed loops at 1 and 32
connections (``seconds`` each, 5 by default, after 1 s of warm-up), and the CPU
the leader and the average follower spent per create in the measured window;
with ``--open``, then an open loop at RATE creates/s for ``seconds`` (latency
from each request's due time, as the suite's open loop at half the maximum).  It
is the scheduled-db half of the suite's http part, short enough to run once per
commit when comparing changes (docs/benchmarks-history.md, "Write path levers");
the suite's part adds etcd and the open loop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import loadgen
from bench.http_bench import _pid, job_body, role_cpu
from bench.procs import READY_S, make_cluster
from scheduled_db.testing.harness import running, wait_leader


def main(seconds: float, open_rate: float | None = None) -> None:
    due_s = round(time.time() + 30 * 86_400)
    with (
        tempfile.TemporaryDirectory(prefix="bench-write-") as tmp,
        running(make_cluster(Path(tmp)), READY_S) as nodes,
    ):
        leader = wait_leader(nodes)
        url = leader.base + "/jobs"
        cpu = role_cpu(_pid(leader), [_pid(n) for n in nodes if n is not leader])
        for c in (1, 32):
            r = loadgen.closed_loop(
                lambda i, c=c: (url, job_body(f"w{c}-{i}", due_s)), c, seconds, 1.0, cpu
            )
            lat = r["latency_ms"]
            print(
                f"{c} connections: {r['ops_per_s']:,} creates/s, p50 {lat['p50']} ms, "
                f"p99 {lat['p99']} ms, CPU per create (us) {r['server_cpu_us_per_op']}"
            )
        if open_rate:
            before, start = cpu(), time.perf_counter()
            r = loadgen.open_loop(lambda i: (url, job_body(f"o-{i}", due_s)), open_rate, seconds)
            after, spent = cpu(), time.perf_counter() - start
            lat = r["latency_ms"]
            busy = {k: round(100 * (after[k] - before[k]) / spent) for k in after}
            print(
                f"open loop at {open_rate:,.0f}/s: {r['ops_per_s']:,} answered/s, "
                f"p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, "
                f"errors {r['errors']}, CPU % of a core {busy}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A short look at the write path.")
    parser.add_argument("seconds", nargs="?", type=float, default=5.0)
    parser.add_argument("--open", type=float, metavar="RATE", help="then an open loop")
    args = parser.parse_args()
    main(args.seconds, args.open)
