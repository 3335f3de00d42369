"""The benchmark page's pictures, drawn from the result JSON with matplotlib (Agg, no display).

Each function takes one part's figures and a path, draws one PNG and returns
whether it drew anything (a part without the data draws nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402 - must follow the backend choice
from matplotlib import ticker  # noqa: E402

OURS, THEIRS = "tab:blue", "tab:orange"
# No software version or date inside the files: a regeneration from the same
# JSON gives the same bytes, so git shows only real changes.
PNG_META = {"Software": None}


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG_META)
    plt.close(fig)


def _positive(value: float | None) -> float:
    return value if value is not None and value > 0 else float("nan")


def http(figures: dict[str, Any], path: Path) -> bool:
    """Throughput and latency percentiles against concurrency, both systems."""
    systems = [("scheduled-db", figures.get("scheduled_db"), OURS)]
    systems.append(("etcd", figures.get("etcd"), THEIRS))
    fig, (rate_ax, late_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, data, color in systems:
        if not data:
            continue
        rows = data["closed_loop"]
        conns = [r["connections"] for r in rows]
        rate_ax.plot(conns, [r["ops_per_s"] for r in rows], "o-", color=color, label=name)
        for pct, style in (("p50", "o-"), ("p99", "s--")):
            # A size where every request failed has no latency: a gap, not a zero
            # (which a log axis cannot draw).
            values = [_positive(r["latency_ms"].get(pct)) for r in rows]
            late_ax.plot(conns, values, style, color=color, label=f"{name} {pct}")
    conns = [r["connections"] for r in figures["scheduled_db"]["closed_loop"]]
    for ax in (rate_ax, late_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(conns, [str(c) for c in conns])
        ax.set_xlabel("concurrent connections")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    rate_ax.set_ylabel("writes/s (closed loop)")
    rate_ax.set_ylim(bottom=0)
    late_ax.set_yscale("log")
    late_ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    late_ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    late_ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    late_ax.set_ylabel("latency (ms)")
    rate_ax.set_title("Throughput: POST /jobs against etcd puts")
    late_ax.set_title("Latency percentiles")
    _save(fig, path)
    return True


def lateness(size: dict[str, Any], path: Path) -> bool:
    """Histogram of firing lateness, scheduled-db beside APScheduler, one size."""
    series = [("scheduled-db", size["scheduled_db"], OURS)]
    series += [(f"APScheduler 3 ({a['workers']} threads)", a, THEIRS) for a in size["apscheduler"]]
    edges = series[0][1]["lateness_histogram"]["edges_ms"]
    labels = [f"{a:g}–{b:g}" for a, b in zip(edges, edges[1:], strict=False)] + [f"≥{edges[-1]:g}"]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(series)
    for k, (name, data, color) in enumerate(series):
        counts = data["lateness_histogram"]["counts"]
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(counts))]
        ax.bar(xs, counts, width=width, color=color, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_xlabel("lateness (ms): arrival at the receiver − scheduled time")
    ax.set_ylabel("jobs")
    ax.set_title(f"Firing lateness, {size['jobs']:,} jobs due within one second")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, path)
    return True


def failover(figures: dict[str, Any], path: Path) -> bool:
    """Writes/s and deliveries/s around the kill whose write gap is the median."""
    kills = sorted(figures.get("kills", []), key=lambda k: k["write_gap_s"])
    if not kills:
        return False
    kill = kills[(len(kills) - 1) // 2]
    step, before = figures["bucket_s"], figures["timeline_starts_before_kill_s"]
    fig, ax = plt.subplots(figsize=(10, 4))
    steady = max(kill["writes_per_bucket"][: int(before / step)], default=1) / step
    top = 3 * steady  # the backlog delivered after recovery would flatten everything else
    for key, name, color in (
        ("writes_per_bucket", "job creations/s", OURS),
        ("deliveries_per_bucket", "webhook deliveries/s", THEIRS),
    ):
        rates = [c / step for c in kill[key]]
        ts = [i * step - before for i in range(len(rates))]
        peak = max(rates, default=0)
        if peak > top:
            name += f" (peak {peak:,.0f}/s, cut off)"
        ax.step(ts, rates, where="post", color=color, label=name)
    ax.set_ylim(0, top)
    ax.axvline(0, color="red", linestyle="--", label="leader SIGKILL")
    ax.axvline(kill["write_gap_s"], color=OURS, linestyle=":", label="first write, new leader")
    ax.axvline(kill["delivery_gap_s"], color=THEIRS, linestyle=":", label="first new delivery")
    ax.set_xlabel("seconds since the kill")
    ax.set_ylabel(f"per second ({step:g} s buckets)")
    ax.set_title(f"Throughput across a failover (the median of {len(kills)} kills)")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(True, alpha=0.3)
    _save(fig, path)
    return True
