"""Run the benchmark suite, write ``bench/results/<part>.json``, regenerate docs/benchmarks.md.

    python -m bench                     # every part, full size (about 20 minutes on 2 cores)
    python -m bench --quick             # every part, smoke size (about 2 minutes), to a
                                        # scratch directory unless --results/--docs say where
    python -m bench --only http,firing  # some parts (--only may also repeat)
    python -m bench --report-only       # regenerate the page and plots from the JSON

Each part is a module with ``NAME`` and ``run(quick) -> figures``.  A part that
fails is reported and leaves its previous result file alone; the others still
run, and the exit code is 1.

A quick run's figures are not the published ones: unless told where (``--results``,
``--docs``), it writes its JSON and its page into a fresh scratch directory and
leaves bench/results and docs/benchmarks.md as they are.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import RESULTS, ROOT, record, say, verdict, write_json

PARTS = {
    "raft": "bench.raft_bench",
    "http": "bench.http_bench",
    "firing": "bench.firing_bench",
    "failover": "bench.failover_bench",
    "storage": "bench.storage_bench",
    "snapshot": "bench.snapshot_bench",
    "overload": "bench.overload_bench",
    "control": "bench.control_bench",
    "ingress": "bench.ingress_bench",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke sizes: the suite in minutes")
    p.add_argument("--only", action="append", default=[], help="parts, comma-separated")
    p.add_argument("--list", action="store_true", help="list the parts and exit")
    p.add_argument("--results", type=Path, help="where the JSON goes (bench/results)")
    p.add_argument("--docs", type=Path, help="where the page goes (docs)")
    p.add_argument("--no-report", action="store_true", help="do not regenerate the page")
    p.add_argument("--report-only", action="store_true", help="only regenerate the page")
    return p.parse_args(argv)


def selected(only: list[str]) -> list[str]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part {unknown[0]!r}; parts: {', '.join(PARTS)}")
    return [n for n in PARTS if n in names] if names else list(PARTS)


def run_part(name: str, quick: bool, results: Path) -> bool:
    """Run one part and write its result file; False if it failed."""
    say(f"== {name}{' (quick)' if quick else ''}")
    started = time.monotonic()
    try:
        module = importlib.import_module(PARTS[name])
        figures = module.run(quick)
    except Exception:  # one broken part must not cost the others' figures
        traceback.print_exc()
        say(f"== {name} FAILED after {time.monotonic() - started:.0f} s")
        return False
    path = write_json(results / f"{name}.json", record(name, figures, quick, started))
    for c in figures.get("checks", []):
        say(f"   {c['what']}: {c['value']} (target {c['target']}): {verdict(c)}")
    say(f"== {name} done in {time.monotonic() - started:.0f} s -> {path}")
    return True


def destinations(a: argparse.Namespace) -> None:
    """Fill in ``a.results`` and ``a.docs``: the published places, or for a quick run
    not told otherwise, a scratch directory (said on the way)."""
    page = not (a.no_report or a.list)
    if a.quick and (a.results is None or (a.docs is None and page)):
        scratch = Path(tempfile.mkdtemp(prefix="scheduled-db-bench-quick-"))
        a.results = a.results or scratch / "results"
        a.docs = a.docs or scratch / "docs"
        say(f"quick run: writing to {scratch}, not bench/results or docs (--results, --docs)")
    a.results = a.results or RESULTS
    a.docs = a.docs or ROOT / "docs"


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.list:
        print("\n".join(PARTS))
        return 0
    destinations(a)
    ok = True
    if not a.report_only:
        started = time.monotonic()
        for name in selected(a.only):
            ok = run_part(name, a.quick, a.results) and ok
        say(f"suite done in {time.monotonic() - started:.0f} s")
    if not a.no_report:
        from bench.report import generate  # matplotlib only when a page is wanted

        page = generate(a.results, a.docs)
        say(f"wrote {page}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
