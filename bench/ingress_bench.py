"""One node's creates/s with the API in its own process and in worker processes.

    python -m bench --only ingress [--quick]       # the suite's part (3 rounds of 5 s)
    python -m bench.ingress_bench [seconds] [--rounds N]   # the same, printed

Issue 18's goal 3 asks whether a node uses more than one core.  One node (no
peers: every create is the node's own fsync), ``POST /jobs`` from ``wrk`` (C:
its own CPU per request is a small fraction of the node's, where a Python
client would take a core of its own) at 32 and 128 connections, ``seconds``
each after 2 s of warm-up, with ``http.workers`` 0 (the node's process serves
the API), 1 and 2; the three alternate, ``rounds`` times, and the medians are
printed, with each process's CPU per create from /proc.  ``api.max_in_flight``
is raised above the connections, so that no run is refused for load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import check, ratio, say
from bench.http_bench import cpu_seconds
from bench.procs import READY_S, Node
from scheduled_db.testing.harness import running, spawned_children, wait_leader

NAME = "ingress"
WORKERS = (0, 1, 2)
CONNECTIONS = (32, 128)
GOAL = 1.6  # issue 18, goal 3: two processes over one


def _wrk(url: str, script: Path, connections: int, seconds: int) -> tuple[float, str]:
    args = ["wrk", "-t1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    out = subprocess.run([*args, "-s", str(script), url], capture_output=True, text=True).stdout
    rate = next(line for line in out.splitlines() if line.startswith("Requests/sec"))
    errors = [line.strip() for line in out.splitlines() if "Non-2xx" in line]
    return float(rate.split()[1]), "; ".join(errors)


def measure(workers: int, seconds: int, root: Path) -> dict[int, dict[str, object]]:
    due = round(time.time() + 30 * 86_400)
    body = json.dumps({"type": "unico", "timestamp": due, "payload": {"pad": "x" * 100}})
    script = root / "post.lua"
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = {json.dumps(body)}\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
    )
    extra = ["--http-workers", str(workers), "--api-max-in-flight", "4096"]
    out: dict[int, dict[str, object]] = {}
    with running([Node(root / f"w{workers}", "node-1", extra)], READY_S) as nodes:
        node = wait_leader(nodes)
        assert node.proc is not None
        url = node.base + "/jobs"
        for connections in CONNECTIONS:
            _wrk(url, script, connections, 2)  # warm-up
            pids = [node.proc.pid, *sorted(spawned_children(node.proc.pid))]
            before = {p: cpu_seconds(p) for p in pids}
            rate, errors = _wrk(url, script, connections, seconds)
            spent = {p: cpu_seconds(p) - before[p] for p in pids}
            ops = rate * seconds
            per_op = [round(1e6 * spent[p] / ops) for p in pids if spent[p] > 0.01 * seconds]
            out[connections] = {"creates_per_s": rate, "cpu_us": per_op, "errors": errors}
    return out


def measure_all(seconds: int, rounds: int) -> dict[str, Any]:
    """Every setting ``rounds`` times, alternated; per connections and workers, the
    runs and their median, and the ratio of each median to one process's."""
    runs: dict[tuple[int, int], list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        for r in range(rounds):
            for workers in WORKERS:
                say(f"ingress: round {r + 1} of {rounds}, http.workers {workers}")
                root = Path(tmp) / f"r{r}"
                root.mkdir(exist_ok=True)
                for connections, figures in measure(workers, seconds, root).items():
                    runs.setdefault((workers, connections), []).append(figures)
    out: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "settings": []}
    for connections in CONNECTIONS:
        base = statistics.median(float(str(f["creates_per_s"])) for f in runs[(0, connections)])
        for workers in WORKERS:
            figures = runs[(workers, connections)]
            rates = [float(str(f["creates_per_s"])) for f in figures]
            median = statistics.median(rates)
            out["settings"].append(
                {
                    "connections": connections,
                    "workers": workers,
                    "creates_per_s": round(median),
                    "creates_per_s_all": [round(x) for x in rates],
                    "over_one_process": ratio(median, base),
                    "cpu_us_per_create": [f["cpu_us"] for f in figures],
                    "errors": [f["errors"] for f in figures if f["errors"]],
                }
            )
    return out


def checks(figures: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in figures["settings"]:
        if s["workers"] != 1:
            continue
        value = s["over_one_process"]
        what = f"one node, {s['connections']} connections: creates/s, 2 processes over 1 (x)"
        met = None if figures.get("quick") else value is not None and value >= GOAL
        out.append(check(what, f">= {GOAL:g}x", value, met))
    return out


def run(quick: bool) -> dict[str, Any]:
    figures = measure_all(1 if quick else 5, 1 if quick else 3)
    figures["quick"] = quick
    figures["checks"] = checks(figures)
    return figures


def main(seconds: int, rounds: int) -> None:
    for s in measure_all(seconds, rounds)["settings"]:
        each = ", ".join(f"{x:,}" for x in s["creates_per_s_all"])
        print(
            f"{s['connections']} connections, http.workers {s['workers']}: "
            f"{s['creates_per_s']:,} creates/s ({s['over_one_process']}x), runs {each}; "
            f"CPU us/create by process {s['cpu_us_per_create']} {s['errors']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.seconds, args.rounds)
