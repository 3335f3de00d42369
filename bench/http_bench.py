"""Cluster writes through HTTP: job creations on 3 scheduled-db nodes beside puts on 3 etcd nodes.

    python -m bench --only http [--quick]

scheduled-db: three ``scheduled-db run`` processes on loopback, one member list;
``POST /jobs`` (a one-time job due in 30 days, a body of about 200 bytes) sent to
the leader.  etcd: three ``etcd`` processes, ``POST /v3/kv/put`` of the same
bytes under a fresh key, sent to its leader.  Both acknowledge a write once a
majority has it on disk (fsync).  Both systems run in the same invocation, one
after the other, on the same machine, under the same load generator
(:mod:`bench.loadgen`).

For each concurrency (1, 8, 32, 128 connections) a closed loop measures
throughput and latency; then an open loop at half the highest throughput
measures latency at a sustainable load.  Targets (issue 18, which lowered issue
6's 1.0x to what a Python node can reach on the same cores): creations/s >= 0.6x
etcd's puts/s at 1, 32 and 128 connections; CPU per create at 32 connections
<= 350 µs on the leader and <= 150 µs on a follower; a 1-connection p50 <= 2.5
ms; p99 create latency <= 20 ms at half the maximum rate.  Batch creation (POST
/jobs/batch) is the control part's figure.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.common import check, ratio, say
from bench.etcd import etcd_binary, etcd_cluster, etcd_leader, etcd_version, put_body
from bench.procs import READY_S, make_cluster
from scheduled_db.testing.harness import running, wait_leader

NAME = "http"
CONCURRENCY = (1, 8, 32, 128)
QUICK_CONCURRENCY = (1, 32)
TARGET_RATIO = 0.6  # at 1, 32 and 128 connections (issue 18)
TARGET_P99_MS = 20.0
TARGET_CPU_US = {"leader": 350, "follower": 150}  # per create, at 32 connections
TARGET_ONE_CONNECTION_P50_MS = 2.5
PAD = "x" * 120  # brings a create body to about 200 bytes
NO_ETCD = "etcd not found (apt-get install etcd-server, or set ETCD_BIN): no ratio"
BATCH_NOTE = "POST /jobs/batch: measured by the control part (bench/control_bench.py)"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def job_body(key: str, due_s: float) -> bytes:
    body = {"id": key, "type": "unico", "timestamp": due_s, "payload": {"pad": PAD}}
    return json.dumps(body, separators=(",", ":")).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def role_cpu(leader: int, followers: list[int]) -> loadgen.CpuProbe:
    """CPU seconds of the leader and of the average follower."""

    def probe() -> dict[str, float]:
        spent = [cpu_seconds(p) for p in followers]
        return {"leader": cpu_seconds(leader), "follower": sum(spent) / max(1, len(spent))}

    return probe


def _measure(
    system: str,
    factory: Callable[[str], loadgen.MakeRequest],
    concurrency: tuple[int, ...],
    measure_s: float,
    warmup_s: float,
    cpu: loadgen.CpuProbe | None = None,
) -> dict[str, Any]:
    """Closed loops at each concurrency, then an open loop at half the best rate."""
    closed = []
    for c in concurrency:
        say(f"http: {system}, {c} connections, {measure_s:g} s")
        closed.append(loadgen.closed_loop(factory(f"c{c}"), c, measure_s, warmup_s, cpu))
        if "server_cpu_us_per_op" in closed[-1]:
            say(f"http: {system}, CPU per write (us): {closed[-1]['server_cpu_us_per_op']}")
    best = max(r["ops_per_s"] for r in closed)
    say(f"http: {system}, open loop at half of {best:,}/s")
    half = loadgen.open_loop(factory("half"), max(1.0, best / 2), measure_s)
    return {"closed_loop": closed, "max_ops_per_s": best, "half_max_open_loop": half}


def scheduled_db(concurrency: tuple[int, ...], measure_s: float, warmup_s: float) -> Any:
    due_s = round(time.time() + 30 * 86_400)
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        running(make_cluster(Path(tmp)), READY_S) as nodes,
    ):
        leader = wait_leader(nodes)
        url = leader.base + "/jobs"
        cpu = role_cpu(_pid(leader), [_pid(n) for n in nodes if n is not leader])

        def factory(label: str) -> loadgen.MakeRequest:
            return lambda i: (url, job_body(f"{label}-{i}", due_s))

        return _measure("scheduled-db", factory, concurrency, measure_s, warmup_s, cpu)


def _pid(node: Any) -> int:
    assert node.proc is not None, "a running node has a process"
    return int(node.proc.pid)


def etcd(binary: str, concurrency: tuple[int, ...], measure_s: float, warmup_s: float) -> Any:
    value = job_body("x" * 12, round(time.time()))  # the same bytes as a create body
    with (
        tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp,
        etcd_cluster(Path(tmp), binary) as members,
    ):
        url = etcd_leader(members).base + "/v3/kv/put"

        def factory(label: str) -> loadgen.MakeRequest:
            return lambda i: (url, put_body(f"bench/{label}/{i}", value))

        return _measure("etcd", factory, concurrency, measure_s, warmup_s)


def compare(ours: dict[str, Any], etcd_figures: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per concurrency: both throughputs and latencies, and ours over etcd's."""
    theirs = {r["connections"]: r for r in (etcd_figures or {}).get("closed_loop", [])}
    rows = []
    for r in ours["closed_loop"]:
        e = theirs.get(r["connections"])
        rows.append(
            {
                "connections": r["connections"],
                "ops_per_s": r["ops_per_s"],
                "etcd_ops_per_s": e["ops_per_s"] if e else None,
                "ratio_ops": ratio(r["ops_per_s"], e["ops_per_s"]) if e else None,
                "p99_ms": r["latency_ms"].get("p99"),
                "etcd_p99_ms": e["latency_ms"].get("p99") if e else None,
                "etcd_p50_ms": e["latency_ms"].get("p50") if e else None,
            }
        )
    return rows


def _at_most(
    what: str, value: float | None, limit: float, unit: str, reference: str | None = None
) -> dict[str, Any]:
    met = None if value is None else value <= limit
    return check(what, f"<= {limit:g} {unit}", value, met, reference=reference)


def checks(
    rows: list[dict[str, Any]], ours: dict[str, Any], theirs: dict[str, Any] | None, why: str | None
) -> list[Any]:
    by_conns = {r["connections"]: r for r in rows}
    found = []
    for conns in (32, 1, 128):
        row = by_conns.get(conns)
        value = row["ratio_ops"] if row else None
        found.append(
            check(
                f"job creations/s at {conns} connection{'s' if conns > 1 else ''},"
                " over etcd's puts/s",
                f">= {TARGET_RATIO}x",
                value,
                None if value is None else value >= TARGET_RATIO,
                reference=f"{row['ops_per_s']:,}/s against etcd {row['etcd_ops_per_s']:,}/s"
                if row and row["etcd_ops_per_s"]
                else None,
                note=why,
            )
        )
    closed = {r["connections"]: r for r in ours["closed_loop"]}
    cpu = closed.get(32, {}).get("server_cpu_us_per_op", {})
    for role, limit in TARGET_CPU_US.items():
        found.append(
            _at_most(f"CPU per create at 32 connections, {role} (µs)", cpu.get(role), limit, "µs")
        )
    one = closed.get(1, {}).get("latency_ms", {}).get("p50")
    their_one = by_conns.get(1, {}).get("etcd_p50_ms")
    found.append(
        _at_most(
            "p50 create latency at 1 connection (ms)", one, TARGET_ONE_CONNECTION_P50_MS, "ms",
            None if their_one is None else f"etcd {their_one} ms",
        )
    )  # fmt: skip
    p99 = ours["half_max_open_loop"]["latency_ms"].get("p99")
    their_p99 = theirs["half_max_open_loop"]["latency_ms"].get("p99") if theirs else None
    found.append(
        _at_most(
            "p99 create latency at half the maximum rate (ms)", p99, TARGET_P99_MS, "ms",
            None if their_p99 is None else f"etcd {their_p99:.1f} ms at half its maximum",
        )
    )  # fmt: skip
    return found


def run(quick: bool) -> dict[str, Any]:
    concurrency = QUICK_CONCURRENCY if quick else CONCURRENCY
    measure_s, warmup_s = (2.0, 0.5) if quick else (15.0, 2.0)
    ours = scheduled_db(concurrency, measure_s, warmup_s)
    binary = etcd_binary()
    reason = None if binary else NO_ETCD
    theirs = etcd(binary, concurrency, measure_s, warmup_s) if binary else None
    if reason:
        say(f"http: {reason}")
    rows = compare(ours, theirs)
    return {
        "measure_s": measure_s,
        "warmup_s": warmup_s,
        "request_body_bytes": len(job_body("c32-123456", 2e9)),
        "scheduled_db": ours,
        "etcd": theirs,
        "etcd_version": etcd_version(binary) if binary else None,
        "etcd_missing": reason,
        "comparison": rows,
        "batch_create": BATCH_NOTE,
        "checks": checks(rows, ours, theirs, reason),
    }
