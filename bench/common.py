"""What every benchmark shares: the record around its figures, progress output, percentiles.

A result file (``bench/results/<name>.json``) holds the figures of one part
together with what is needed to judge them: the machine (cores, memory, the load
average when the part started, since a busy machine distorts every figure), the
date, the git commit and whether the checkout had uncommitted changes, and
whether it was a ``--quick`` smoke run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=ROOT)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def git_commit() -> str:
    return _git("rev-parse", "--short", "HEAD") or "unknown"


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout)."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out)


def record(name: str, figures: dict[str, Any], quick: bool, started: float) -> dict[str, Any]:
    """The figures of one part wrapped with the machine, date and commit."""
    return {
        "name": name,
        "quick": quick,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "dirty": git_dirty(),
        "machine": machine(),
        "duration_s": round(time.monotonic() - started, 1),
        "figures": figures,
    }


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def write_result(name: str, figures: dict[str, Any], quick: bool = False) -> Path:
    """For the standalone scripts: wrap and write in one step."""
    return write_json(RESULTS / f"{name}.json", record(name, figures, quick, time.monotonic()))


# --- progress ----------------------------------------------------------------------------

# When the suite started (wall clock, so the parts' child processes stamp their
# lines on the same scale: the suite exports it).
T0_ENV = "BENCH_T0"
_T0 = float(os.environ.setdefault(T0_ENV, str(time.time())))


def say(text: str) -> None:
    """One progress line on stderr, stamped with the seconds since the suite started."""
    print(f"[{time.time() - _T0:6.1f}s] {text}", file=sys.stderr, flush=True)


class Progress:
    """A progress bar on a terminal, else a line every ``every_s`` seconds (logs, CI)."""

    def __init__(self, label: str, total: float, unit: str = "", every_s: float = 5.0) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.every_s = every_s
        self.tty = sys.stderr.isatty()
        self.last = time.monotonic()
        self.done = 0.0

    def update(self, done: float) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else self.every_s) or done >= self.total:
            return  # the last line is finish()'s
        self.last = now
        self._show(end="")

    def _show(self, end: str) -> None:
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        count = f"{self.done:,.0f}/{self.total:,.0f}{self.unit}"
        if self.tty:
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r  {self.label} [{bar:<30}] {count}" + end)
            sys.stderr.flush()
        else:
            say(f"  {self.label}: {count} ({frac:.0%})")

    def finish(self) -> None:
        self.done = self.total
        self._show(end="\n")


# --- statistics --------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def distribution_ms(values_s: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99, min and max of durations given in seconds, in milliseconds."""
    ms = sorted(v * 1000 for v in values_s)
    if not ms:
        return {}
    stats = {f"p{p}": percentile(ms, p) for p in (50, 90, 99)}
    stats.update(min=ms[0], max=ms[-1])
    return {k: round(v, 2) for k, v in stats.items()}


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


def verdict(c: dict[str, Any]) -> str:
    """How a check reads: met, not met, not measured (a quick run), or no target at all."""
    if c["met"] is None:
        return "no target" if c.get("target") == NO_TARGET else "not measured"
    return "met" if c["met"] else "NOT met"


NO_TARGET = "none set by the issues"


def check(
    what: str,
    target: str,
    value: Any,
    met: bool | None,
    reference: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One target and whether this run met it (``None``: not measured, or no target).

    ``reference``: the reference system's figure from the same run, as shown.
    """
    return {"what": what, "target": target, "value": value, "met": met,
            "reference": reference, "note": note}  # fmt: skip
