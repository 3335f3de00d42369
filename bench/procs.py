"""Real scheduled-db node processes for the benchmarks: one node, or a local cluster.

Each node is ``python -m scheduled_db run`` (what compose and Kubernetes start) on
loopback ports, with its own data directory and a log file beside it.  Waits are
bounded polls of a condition.  On Linux every child asks for SIGKILL when the
benchmark process dies, so an interrupted run leaves no node behind.

The benchmarks keep their own small copy of this rather than importing the test
harness (``tests/integration``): a benchmark must run from an installed tree.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import ROOT

SECRET = "benchmark-cluster-secret"
ADMIN = {"Authorization": f"Bearer {SECRET}"}
# The bench's receivers listen on loopback; the SSRF guard refuses that unless told.
NODE_ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "CLUSTER_SECRET": SECRET}
# Room for every job a benchmark creates (the defaults, 100,000 jobs and 512 MiB,
# protect a production node; a benchmark stores up to a million).
ROOMY = ["--queue-job-limit", "50000000", "--queue-memory-limit", "64GiB"]
_PORTS = range(20_000, 32_000)  # below the kernel's ephemeral range: never a source port
_handed_out: set[int] = set()
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback port nobody listens on now, never the same twice in this process."""
    for _ in range(200):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found in 200 tries")


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)  # polling interval of a bounded wait


def die_with_parent() -> None:
    """In a child, before exec: be killed when the benchmark process dies (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def get_json(url: str, method: str = "GET", body: Any = None, headers: Any = None) -> Any:
    """(status, decoded body) of one request; 4xx/5xx are answers, not exceptions."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


async def _post_all(base: str, bodies: list[dict[str, Any]], connections: int) -> None:
    todo = iter(bodies)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def create(body: dict[str, Any]) -> None:
            while True:
                async with session.post(base + "/jobs", json=body) as resp:
                    text = await resp.text()
                    if resp.status == 200:
                        return
                    retry = resp.headers.get("Retry-After", "")
                    if resp.status != 503 or '"overloaded"' not in text or not retry.isdigit():
                        raise RuntimeError(f"create {body['id']}: {resp.status} {text}")
                # Refused on arrival (admission control): nothing was made, so send it
                # again when the node says to.
                await asyncio.sleep(int(retry))

        async def client() -> None:
            for body in todo:
                await create(body)

        await asyncio.gather(*(client() for _ in range(connections)))


def post_jobs(base: str, bodies: list[dict[str, Any]], connections: int = 32) -> float:
    """Create jobs through ``POST /jobs`` from ``connections`` clients; the seconds it took."""
    start = time.perf_counter()
    asyncio.run(_post_all(base, bodies, connections))
    return time.perf_counter() - start


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MiB (``VmHWM``: its peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class Node:
    """One ``scheduled-db run`` process."""

    def __init__(self, data_dir: Path, node_id: str = "node-1", extra: list[str] | None = None):
        self.data_dir = data_dir
        self.node_id = node_id
        self.http_port, self.raft_port = free_port(), free_port()
        self.extra = extra or []
        self.members = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{node_id}.log"
        self.base = f"http://127.0.0.1:{self.http_port}"

    def member(self) -> str:
        return f"{self.node_id}=127.0.0.1:{self.raft_port}=127.0.0.1:{self.http_port}"

    def args(self) -> list[str]:
        members = ["--cluster-members", self.members] if self.members else []
        return [
            sys.executable, "-m", "scheduled_db", "run",
            "--node-id", self.node_id, "--data-dir", str(self.data_dir),
            "--http-host", "127.0.0.1", "--http-port", str(self.http_port),
            "--raft-host", "127.0.0.1", "--raft-port", str(self.raft_port),
            "--metrics-port", "0", "--log-level", "WARNING",
            *ROOMY, *members, *self.extra,
        ]  # fmt: skip

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **NODE_ENV}
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                self.args(), stdout=log, stderr=log, env=env, cwd=ROOT, preexec_fn=die_with_parent
            )

    def call(self, method: str, path: str, body: Any = None, headers: Any = None) -> Any:
        return get_json(self.base + path, method, body, headers)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def answers(self, path: str = "/health") -> bool:
        """Whether the node answers 200 on ``path``; an exited node is an error."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.node_id} exited ({self.proc.returncode}):\n{tail}")
        try:
            return bool(self.call("GET", path)[0] == 200)
        except OSError:
            return False

    def health(self) -> dict[str, Any]:
        try:
            status, body = self.call("GET", "/health")
        except OSError:
            return {}
        return body if status == 200 and isinstance(body, dict) else {}

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def make_cluster(root: Path, size: int = 3, extra: list[str] | None = None) -> list[Node]:
    """``size`` nodes under ``root`` sharing one member list (not started)."""
    nodes = [Node(root / f"n{i}" / "data", f"node-{i}", extra) for i in range(1, size + 1)]
    members = ",".join(n.member() for n in nodes)
    for n in nodes:
        n.members = members
    return nodes


@contextmanager
def running(nodes: list[Node], ready_timeout: float = 60) -> Iterator[list[Node]]:
    """Start every node at once, wait until each serves /health; stop them all after."""
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            wait_until(n.answers, ready_timeout, f"{n.node_id} to serve /health")
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def leader_of(nodes: list[Node]) -> Node | None:
    """The node every live node names as leader, if they agree and it says so itself."""
    live = [n for n in nodes if n.alive()]
    named = {n.health().get("leader") for n in live}
    if len(named) != 1:
        return None
    (address,) = named
    leader = next((n for n in live if address == f"127.0.0.1:{n.http_port}"), None)
    if leader is None or leader.health().get("role") != "leader":
        return None
    return leader


def wait_leader(nodes: list[Node], timeout: float = 30) -> Node:
    found: list[Node] = []

    def agreed() -> bool:
        leader = leader_of(nodes)
        if leader is not None:
            found.append(leader)
        return leader is not None

    wait_until(agreed, timeout, "the nodes to agree on one leader")
    return found[-1]
