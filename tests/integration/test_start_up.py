"""Start-up frictions a new user met, on real node processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from scheduled_db.testing.harness import ROOT, free_port


def run_node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scheduled_db", "run", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_stops_the_node_in_one_line_before_it_opens_anything(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = int(taken.getsockname()[1])
        done = run_node(
            "--http-port", str(port), "--metrics-port", str(free_port()), "--data-dir", str(data)
        )
    assert done.returncode == 1
    assert done.stderr == (
        f"scheduled-db: cannot start: http.port {port} on 0.0.0.0 cannot be used: "
        "in use by another process\n"
    )
    assert not data.exists()  # no data directory made, no actor started


def test_a_raft_port_in_use_is_named_too(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        done = run_node(
            "--http-port", str(free_port()), "--metrics-port", "0",
            "--raft-host", "127.0.0.1", "--raft-port", str(port),
            "--data-dir", str(tmp_path / "data"),
            env={"STATIC_PEERS": f"127.0.0.1:{port},127.0.0.1:{free_port()}"},
        )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"scheduled-db: cannot start: raft.port {port} on 127.0.0.1")
