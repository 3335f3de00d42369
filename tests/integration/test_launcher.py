"""``scheduled-db cluster`` end to end: a real launcher process and its node processes.

The launcher runs on loopback ports picked free here; every wait is a bounded poll
of a condition.  Leader election is not asserted: these tests are about the
processes (start, report, signals, exit codes), not about Raft.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduled_db.testing.harness import ROOT, Http, wait_until

NODES = 3
LINE = re.compile(
    r"^(node-\d+)  http://127\.0\.0\.1:(\d+)  raft 127\.0\.0\.1:(\d+)  data (\S+)  pid (\d+)$"
)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_bases() -> tuple[int, int]:
    """Two base ports whose next NODES ports are all free, below the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        http, raft = rng.randrange(20000, 30000, 10), rng.randrange(30000, 32000, 10)
        if all(_port_free(b + i) for b in (http, raft) for i in range(1, NODES + 1)):
            return http, raft
    raise AssertionError("no free port range found")


def _alive(pid: int) -> bool:
    """Running: a zombie (exited, not yet reaped by whoever inherited it) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (Linux /proc), zombies included."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


class Launcher:
    """``python -m scheduled_db cluster`` with stdout and stderr captured to files."""

    def __init__(self, tmp: Path, http_base: int, raft_base: int) -> None:
        self.tmp, self.http_base, self.raft_base = tmp, http_base, raft_base
        self.out, self.err = tmp / "launcher.out", tmp / "launcher.err"
        args = [
            sys.executable, "-m", "scheduled_db", "cluster", "--nodes", str(NODES),
            "--data-dir", str(tmp / "data"),
            "--base-http-port", str(http_base), "--base-raft-port", str(raft_base),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            # A session of its own, so that a test can signal its group like a terminal.
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=err, env=env, cwd=ROOT, start_new_session=True
            )

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def nodes(self) -> dict[str, dict[str, str]]:
        """The printed lines, once all NODES are there: {node id: {http, raft, data, pid}}."""
        wait_until(lambda: self._printed() >= NODES, 20, "the launcher's lines")
        parsed = {}
        for line in self.lines():
            match = LINE.match(line)
            assert match, f"unexpected line {line!r}"
            node, http, raft, data, pid = match.groups()
            parsed[node] = {"http": http, "raft": raft, "data": data, "pid": pid}
        return parsed

    def _printed(self) -> int:
        if self.proc.poll() is not None:
            raise AssertionError(f"launcher exited {self.proc.returncode}:\n{self.stderr()}")
        return len(self.lines())

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"launcher did not stop:\n{self.stderr()}") from None


def _answers_health(port: str, node_id: str) -> bool:
    try:
        status, _, body = Http(f"http://127.0.0.1:{port}").call("GET", "/health")
    except OSError:
        return False
    return status in (200, 503) and isinstance(body, dict) and body.get("node_id") == node_id


def _refuses(port: str) -> bool:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    proc = Launcher(tmp_path, *_free_bases())
    yield proc
    if proc.proc.poll() is None:
        proc.stop()


def _wait_healthy(nodes: dict[str, dict[str, str]]) -> None:
    def every_node() -> bool:
        return all(_answers_health(where["http"], node) for node, where in nodes.items())

    wait_until(every_node, 30, "every node to serve HTTP")


def test_starts_every_node_where_it_says_and_stops_them_on_sigterm(launcher: Launcher) -> None:
    nodes = launcher.nodes()
    assert list(nodes) == [f"node-{i}" for i in range(1, NODES + 1)]
    for i, where in enumerate(nodes.values(), 1):
        assert int(where["http"]) == launcher.http_base + i
        assert int(where["raft"]) == launcher.raft_base + i
        assert where["data"] == str(launcher.tmp / "data" / f"node-{i}")
    pids = {int(where["pid"]) for where in nodes.values()}
    assert _children(launcher.proc.pid) == pids
    _wait_healthy(nodes)

    status, _, view = Http(f"http://127.0.0.1:{nodes['node-1']['http']}").call(
        "GET", "/debug/cluster"
    )
    assert status == 200, view
    servers = {s["node_id"]: (s["raft_address"], s["http_address"]) for s in view["members"]}
    expected = {n: (f"127.0.0.1:{w['raft']}", f"127.0.0.1:{w['http']}") for n, w in nodes.items()}
    assert servers == expected

    assert launcher.stop() == 0, launcher.stderr()
    assert not [pid for pid in pids if _alive(pid)]
    assert all(_refuses(where["http"]) for where in nodes.values())


def test_a_killed_node_is_reported_and_not_restarted(launcher: Launcher) -> None:
    nodes = launcher.nodes()
    _wait_healthy(nodes)
    victim = int(nodes["node-2"]["pid"])
    os.kill(victim, signal.SIGKILL)

    report = re.compile(rf"node-2 \(pid {victim}\) exited with code -9 .*not restarted")
    wait_until(lambda: report.search(launcher.stderr()) is not None, 10, "the report")
    assert _refuses(nodes["node-2"]["http"])
    survivors = {int(nodes[n]["pid"]) for n in ("node-1", "node-3")}
    assert _children(launcher.proc.pid) == survivors  # nothing started in its place
    for node in ("node-1", "node-3"):
        assert _answers_health(nodes[node]["http"], node)
    assert launcher.proc.poll() is None

    assert launcher.stop() == 1  # a node failed during the run
    assert not [pid for pid in survivors if _alive(pid)]


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    http_base, raft_base = _free_bases()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", raft_base + 2))
        taken.listen()
        launcher = Launcher(tmp_path, http_base, raft_base)
        try:
            code = launcher.proc.wait(20)
        finally:
            launcher.stop()
    assert code == 2
    assert launcher.lines() == []
    assert launcher.stderr().splitlines() == [
        f"scheduled-db: cluster: port {raft_base + 2} on 127.0.0.1 (node-2 Raft) is already in use"
    ]
    assert not (tmp_path / "data").exists()


def test_ctrl_c_at_a_terminal_stops_every_node_cleanly(launcher: Launcher) -> None:
    nodes = launcher.nodes()
    _wait_healthy(nodes)
    # A terminal signals the whole foreground group; each node must get one SIGINT
    # (the launcher's), as a second one makes a node exit at once with code 1.
    os.killpg(launcher.proc.pid, signal.SIGINT)
    assert launcher.proc.wait(30) == 0, launcher.stderr()
    assert not [pid for pid in (int(w["pid"]) for w in nodes.values()) if _alive(pid)]


def test_nodes_stop_when_the_launcher_is_killed(launcher: Launcher) -> None:
    nodes = launcher.nodes()
    _wait_healthy(nodes)
    launcher.proc.kill()
    launcher.proc.wait(10)
    pids = [int(w["pid"]) for w in nodes.values()]
    try:
        wait_until(lambda: not any(_alive(pid) for pid in pids), 20, "the orphaned nodes to stop")
    finally:
        for pid in filter(_alive, pids):  # on failure, leave no node behind
            os.kill(pid, signal.SIGKILL)
