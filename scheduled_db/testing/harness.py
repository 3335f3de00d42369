"""Real node processes for the integration tests, the fault suite and the benchmarks.

A node is ``python -m scheduled_db run`` (what compose and Kubernetes start) on
loopback ports, with its own data directory and a log file beside it.  Every wait
is a bounded poll of a condition; one that runs out raises :class:`WaitTimeout`,
an ``AssertionError`` so that pytest reports it as a failed expectation.

It lives in the package, not under ``tests/``, so that a benchmark runs from an
installed tree too.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]  # the tree the nodes import the code from
_PORTS = range(20_000, 32_000)  # below the kernel's ephemeral range: never a source port
_handed_out: set[int] = set()
_PR_SET_PDEATHSIG = 1
_LOG_TAIL = 5000  # characters of a dead node's log shown in the error

N = TypeVar("N", bound="NodeProcess")


class WaitTimeout(AssertionError):
    """A bounded wait ran out before its condition held."""


class NodeExited(AssertionError):
    """A node process ended while it was expected to serve."""


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
    """Return once ``cond()`` holds; :class:`WaitTimeout` if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)  # polling interval of a bounded wait, not a settle delay


def die_with_parent() -> None:
    """In a child, before exec: be killed when the process that started it dies (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Http:
    """A tiny JSON client that returns (status, headers, body) and never raises on 4xx/5xx.
    ``context`` checks an https:// base's certificate."""

    def __init__(
        self, base: str, context: ssl.SSLContext | None = None, timeout: float = 15
    ) -> None:
        self.base = base
        self.context = context
        self.timeout = timeout

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
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:
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


def get_json(url: str, method: str = "GET", body: Any = None, headers: Any = None) -> Any:
    """(status, decoded body) of one request to ``url``; 4xx/5xx are answers, not exceptions."""
    status, _, answer = Http(url, timeout=30).call(method, "", body, headers=headers)
    return status, answer


class NodeProcess:
    """One ``scheduled-db run`` process.

    ``extra`` are more command-line flags, ``env`` more environment variables;
    ``members`` (the ``--cluster-members`` value) is set before a cluster starts.
    """

    orphan_guard = False  # SIGKILL the node when its starter dies (a benchmark's choice)

    def __init__(
        self, data_dir: Path, node_id: str = "node-1", extra: Sequence[str] = (), **env: str
    ) -> None:
        self.data_dir = data_dir
        self.node_id = node_id
        self.http_port = free_port()
        self.raft_port = free_port()
        self.metrics_port = free_port()
        self.extra = list(extra)
        self.members = ""
        # The shipped default refuses webhooks to loopback, where every test receiver
        # listens: open it, as an operator would (a test may pass "" for the default).
        self.env = {"WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8", **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{node_id}.log"
        self.http = Http(f"http://127.0.0.1:{self.http_port}")

    @property
    def base(self) -> str:
        return self.http.base

    def member(self) -> str:
        """This node as a ``--cluster-members`` entry."""
        return f"{self.node_id}=127.0.0.1:{self.raft_port}=127.0.0.1:{self.http_port}"

    def args(self) -> list[str]:
        members = ["--cluster-members", self.members] if self.members else []
        return [
            sys.executable, "-m", "scheduled_db", "run",
            "--node-id", self.node_id,
            "--http-host", "127.0.0.1",
            "--http-port", str(self.http_port),
            "--raft-host", "127.0.0.1",
            "--raft-port", str(self.raft_port),
            "--metrics-port", str(self.metrics_port),
            "--data-dir", str(self.data_dir),
            *members, *self.extra,
        ]  # fmt: skip

    def start(self, wait: bool = True, timeout: float = 30) -> None:
        """Start the process; with ``wait``, return once it serves HTTP (``/livez``:
        ``/health`` also needs a leader)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        guard = die_with_parent if self.orphan_guard else None
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                self.args(), stdout=log, stderr=log, env=env, cwd=ROOT, preexec_fn=guard
            )
        if wait:
            wait_until(self.answers, timeout, f"{self.node_id} to serve HTTP")

    def call(self, method: str, path: str, body: Any = None, headers: Any = None) -> Any:
        """(status, decoded body) of one request to this node."""
        status, _, answer = self.http.call(method, path, body, headers=headers)
        return status, answer

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def answers(self, path: str = "/livez") -> bool:
        """Whether the node answers 200 on ``path``; :class:`NodeExited` if it has ended."""
        if self.proc is not None and self.proc.poll() is not None:
            raise NodeExited(
                f"{self.node_id} exited ({self.proc.returncode}):\n{self.log()[-_LOG_TAIL:]}"
            )
        try:
            return bool(self.call("GET", path)[0] == 200)
        except OSError:
            return False

    def health(self) -> dict[str, Any]:
        """The /health body, or {} while the node does not answer."""
        try:
            body = self.call("GET", "/health")[1]
        except OSError:
            return {}
        return body if isinstance(body, dict) else {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the process and return its exit code; killed, and an error, if it
        does not end within ``timeout``."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise WaitTimeout(f"{self.node_id} did not stop on signal {sig}") from None

    def stop_if_running(self) -> None:
        """Stop the process if it was started and is still running (cleanup)."""
        if self.alive():
            self.stop()


def join(nodes: Sequence[NodeProcess]) -> None:
    """Give every node the member list of them all."""
    members = ",".join(n.member() for n in nodes)
    for n in nodes:
        n.members = members


@contextmanager
def running(nodes: list[N], ready_timeout: float = 30) -> Iterator[list[N]]:
    """Start every node at once, wait until each serves HTTP; stop them all after."""
    try:
        for n in nodes:
            n.start(wait=False)
        for n in nodes:
            wait_until(n.answers, ready_timeout, f"{n.node_id} to serve HTTP")
        yield nodes
    finally:
        for n in nodes:
            n.stop_if_running()


def leader_of(nodes: Sequence[N]) -> N | None:
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


def wait_leader(nodes: Sequence[N], timeout: float = 30) -> N:
    """The leader the nodes agree on, once they do (:class:`WaitTimeout` if not in time)."""
    found: list[N] = []

    def agreed() -> bool:
        leader = leader_of(nodes)
        if leader is not None:
            found.append(leader)
        return leader is not None

    wait_until(agreed, timeout, "the nodes to agree on one leader")
    return found[-1]


def spawned_children(pid: int) -> set[int]:
    """The worker processes of the node ``pid``: its children that are spawned
    Python interpreters (``multiprocessing``'s spawn start method)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
    return found


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
