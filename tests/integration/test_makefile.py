"""The Makefile has the workflow targets the original's users know, and
``make create-jobs`` really creates its example jobs on a real node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from scheduled_db.testing.harness import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
TARGETS = [
    "build", "test", "run", "cluster", "create-jobs", "dev-up", "dev-down", "dev-logs",
    "k8s-deploy", "k8s-delete", "bench", "bench-quick", "help", "faults",
]  # fmt: skip


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_every_workflow_target() -> None:
    listed = set(re.findall(r"^  (\S+)", make("help").stdout, re.MULTILINE))
    assert set(TARGETS) <= listed, set(TARGETS) - listed


def test_every_target_is_a_real_recipe() -> None:
    for target in TARGETS:
        dry = make("-n", target, "URL=http://127.0.0.1:1")
        assert dry.returncode == 0, (target, dry.stderr)


def test_create_jobs_creates_the_examples(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data")
    node.start()
    try:
        url = f"http://127.0.0.1:{node.http_port}"
        done = make("create-jobs", f"URL={url}", env={"PYTHON": sys.executable})
        assert done.returncode == 0, done.stderr
        status, _, body = node.http.call("GET", "/jobs")
        assert status == 200
        ids = {job["id"] for job in body["jobs"]}
        assert {"example-new-year", "example-every-5-minutes"} <= ids
        assert {job["type"] for job in body["jobs"]} == {"unico", "recurrente"}
        assert len(ids) == 5
    finally:
        node.stop_if_running()
