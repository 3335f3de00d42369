"""The benchmark suite must not rot: its smallest part runs, and its page regenerates.

The full suite takes minutes to an hour (``python -m bench``); here the Raft part
runs at its quick size through the same entry point, and the page is generated
from the committed result files into a temporary directory and compared with
the committed docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.__main__ import main
from bench.common import RESULTS, ROOT
from bench.http_bench import checks as http_checks
from bench.report import TITLES, generate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_quick_raft_part_writes_its_figures_with_machine_and_commit(tmp_path: Path) -> None:
    results = tmp_path / "results"
    code = main(["--quick", "--only", "raft", "--results", str(results), "--no-report"])
    assert code == 0
    rec = json.loads((results / "raft.json").read_text())
    assert rec["name"] == "raft" and rec["quick"] is True
    assert rec["machine"]["cpus"] == os.cpu_count() and rec["machine"]["memory_gib"] > 0
    assert rec["commit"] and rec["dirty"] in (True, False)
    runs = rec["figures"]["runs"]
    assert [r["batch"] for r in runs] == [1, 16, 256]
    assert all(r["entries_per_s"] > 0 for r in runs)
    (target,) = rec["figures"]["checks"]
    assert target["value"] == runs[-1]["entries_per_s"]
    assert target["met"] is (target["value"] >= 100_000)


def test_the_committed_page_is_what_the_committed_results_generate(tmp_path: Path) -> None:
    """docs/benchmarks.md is generated, never edited: regenerating it changes nothing."""
    page = generate(RESULTS, tmp_path)
    assert page.read_text() == (ROOT / "docs" / "benchmarks.md").read_text()
    for name in TITLES:
        assert (RESULTS / f"{name}.json").exists(), f"no committed result for {name}"
    for image in ("bench-http.png", "bench-firing.png", "bench-failover.png"):
        assert (tmp_path / "img" / image).read_bytes().startswith(PNG_MAGIC)
        assert f"(img/{image})" in page.read_text()
        assert (ROOT / "docs" / "img" / image).exists(), f"{image} is not committed"


def test_a_part_without_results_says_how_to_make_them(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(RESULTS / "raft.json", results / "raft.json")
    text = generate(results, tmp_path / "docs").read_text()
    assert "| raft | entries/s with batching" in text
    for name in TITLES:
        if name != "raft":
            assert f"Not run yet: `python -m bench --only {name}`." in text
    assert not (tmp_path / "docs" / "img").exists()  # no data, no plot


def test_without_etcd_the_ratio_is_not_judged_and_says_why() -> None:
    ours = {
        "half_max_open_loop": {"latency_ms": {"p99": 12.5}},
        "closed_loop": [
            {"connections": 1, "latency_ms": {"p50": 2.4}},
            {"connections": 32, "server_cpu_us_per_op": {"leader": 400, "follower": 120}},
        ],
    }
    rows = [
        {"connections": c, "ops_per_s": 900, "etcd_ops_per_s": None, "ratio_ops": None}
        for c in (1, 32)
    ]
    found = {c["what"]: c for c in http_checks(rows, ours, None, "etcd not found")}
    ratio = found["job creations/s at 32 connections, over etcd's puts/s"]
    assert ratio["met"] is None and ratio["value"] is None and ratio["note"] == "etcd not found"
    assert found["job creations/s at 128 connections, over etcd's puts/s"]["met"] is None
    latency = found["p99 create latency at half the maximum rate (ms)"]
    assert latency["met"] is True and latency["value"] == 12.5
    assert found["CPU per create at 32 connections, leader (µs)"]["met"] is False
    assert found["CPU per create at 32 connections, follower (µs)"]["met"] is True
    assert found["p50 create latency at 1 connection (ms)"]["met"] is True


def test_a_quick_run_without_apscheduler_leaves_the_tracked_files_alone() -> None:
    """``make bench-quick`` in a ``make build`` environment: APScheduler is missing
    (it comes with '.[bench]'), and the quick figures go to a scratch directory."""
    tracked = [ROOT / "docs" / "benchmarks.md", *sorted(RESULTS.glob("*.json"))]
    before = {p: p.read_bytes() for p in tracked}
    code = (
        "import sys; sys.modules['apscheduler'] = None\n"  # as if never installed
        "from bench.__main__ import main; sys.exit(main(['--quick', '--only', 'firing']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p: p.read_bytes() for p in tracked} == before
    scratch = Path(re.findall(r"quick run: writing to (\S+),", done.stdout + done.stderr)[0])
    try:
        rec = json.loads((scratch / "results" / "firing.json").read_text())
        (size,) = rec["figures"]["sizes"]
        assert size["apscheduler"] == [] and "not installed" in size["apscheduler_missing"]
        assert size["scheduled_db"]["delivered"] == size["jobs"]
        page = (scratch / "docs" / "benchmarks.md").read_text()
        assert "APScheduler not run: APScheduler 3 is not installed" in page
    finally:
        shutil.rmtree(scratch)
