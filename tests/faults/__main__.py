"""``python -m tests.faults [--rounds N] [--only a,b] [--json FILE]``: run the fault
scenarios on real 3-node clusters and print their figures (early deliveries,
missed, duplicates, stale-term deliveries, lost acknowledged writes).  Exits 1 if
any round broke a promise.  Scenarios: handover, pause, kill, cron, hanging, wal."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from tests.faults import scenarios
from tests.faults.figures import Figures
from tests.faults.scenarios import SCENARIOS

COLUMNS = (
    ("scenario", "scenario"),
    ("jobs", "jobs"),
    ("deliveries", "deliveries"),
    ("early", "early"),
    ("missed", "missed"),
    ("duplicated_keys", "dup keys"),
    ("duplicate_bound", "dup bound"),
    ("stale_after_newer_term", "stale"),
    ("late_p50_ms", "late p50 ms"),
    ("late_p99_ms", "late p99 ms"),
    ("lost_acknowledged", "lost acked"),
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="rounds of each scenario")
    p.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    p.add_argument("--json", type=Path, help="also write every round's figures here")
    p.add_argument(
        "--delivery-workers",
        type=int,
        default=0,
        help="every node's --execution-delivery-workers (default 0: in the node's process)",
    )
    a = p.parse_args(argv)
    if a.delivery_workers:
        scenarios.NODE_FLAGS[:] = ["--execution-delivery-workers", str(a.delivery_workers)]
    names = [x for x in a.only.split(",") if x] or list(SCENARIOS)
    unknown = [x for x in names if x not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}")
    runs: list[Figures] = []
    print(" | ".join(title for _, title in COLUMNS), flush=True)
    for name in names:
        for _ in range(a.rounds):
            with tempfile.TemporaryDirectory(prefix=f"faults-{name}-") as tmp:
                fig = SCENARIOS[name](Path(tmp))
            runs.append(fig)
            row = asdict(fig)
            cells = [
                f"{row[key]:.1f}" if isinstance(row[key], float) else str(row[key])
                for key, _ in COLUMNS
            ]
            print(" | ".join(cells), fig.notes or "", flush=True)
            for problem in fig.problems():
                print(f"  BROKEN: {problem}", flush=True)
    if a.json is not None:
        a.json.write_text(json.dumps([asdict(f) for f in runs], indent=1) + "\n")
    broken = sum(1 for f in runs if f.problems())
    print(f"rounds={len(runs)} broken={broken}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
