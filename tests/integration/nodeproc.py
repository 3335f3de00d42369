"""Real node processes for integration tests: start, wait until healthy, stop.

Each node is ``python -m scheduled_db run`` in its own process on loopback ports
picked free by the OS, with its own data directory; waits are bounded polls of
a condition, never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One port picker for the tests and the benchmarks: ports below the kernel's
# ephemeral range, never handed out twice (see bench/procs.py).
from bench.procs import free_port as free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)  # polling interval of a bounded wait, not a settle delay
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Http:
    """A tiny JSON client that returns (status, headers, body) and never raises on 4xx/5xx.
    ``context`` checks an https:// base's certificate."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        self.base = base
        self.context = context

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=15, context=self.context) as resp:
                return resp.status, dict(resp.headers), _decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), _decode(err.read())


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


class NodeProcess:
    """One ``scheduled-db run`` process."""

    def __init__(self, data_dir: Path, node_id: str = "node-1", **env: str) -> None:
        self.data_dir = data_dir
        self.node_id = node_id
        self.http_port = free_port()
        self.raft_port = free_port()
        self.metrics_port = free_port()
        # The shipped default refuses webhooks to loopback, where every test receiver
        # listens: open it, as an operator would (a test may pass "" for the default).
        self.env = {"WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8", **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{node_id}.log"
        self.http = Http(f"http://127.0.0.1:{self.http_port}")

    def args(self) -> list[str]:
        return [
            sys.executable, "-m", "scheduled_db", "run",
            "--node-id", self.node_id,
            "--http-host", "127.0.0.1",
            "--http-port", str(self.http_port),
            "--raft-host", "127.0.0.1",
            "--raft-port", str(self.raft_port),
            "--metrics-port", str(self.metrics_port),
            "--data-dir", str(self.data_dir),
        ]  # fmt: skip

    def start(self, wait: bool = True) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, env=env, cwd=ROOT)
        if wait:
            wait_until(self.healthy, 30, f"{self.node_id} to serve /health")

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.node_id} exited early:\n{self.log()}")
        try:
            return self.http.call("GET", "/health")[0] == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"{self.node_id} did not stop on signal {sig}") from None

    def stop_if_running(self) -> None:
        """Stop the process if it was started and is still running (fixture cleanup)."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
