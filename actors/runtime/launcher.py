"""``scheduled-db cluster``: a local cluster of node processes on this host, supervised.

Node ``i`` (1-based) is ``node-i``: one ``python -m scheduled_db run`` child process
with ``--config config/cluster/node-i.yaml`` when that file exists (relative to the
working directory, like ``--data-dir``), and flags that override whatever the file
says about where the node listens, so any ``--nodes`` and any base ports work:

- HTTP on ``127.0.0.1:<base_http_port + i>``, Raft on ``127.0.0.1:<base_raft_port + i>``
  (the defaults, 8080 and 7000, give the ports of the YAML files);
- ``metrics.port`` 0, i.e. no separate metrics listener: no third port range to
  collide with, and ``/metrics`` is still served on each node's HTTP port;
- data in ``<data_dir>/node-i``;
- ``cluster.members`` listing all N nodes with those addresses, the same for every node;
- one cluster secret for all, passed in the environment (``CLUSTER_SECRET``; a flag
  would show in the process list): the caller's ``CLUSTER_SECRET`` if set, else that
  of the first YAML file that has one, else a random one for this run.

The contract, in order:

1. Every node's configuration is built and checked, and every port is tried on
   127.0.0.1, before any process starts.  A problem raises ``ConfigError`` or
   ``CliError`` (one line; the CLI prints it and exits 2).  A port taken between the
   check and the node's bind makes that node exit, reported as in 4.
2. One line per node on stdout, flushed, as the node starts::

       node-1  http://127.0.0.1:8081  raft 127.0.0.1:7001  data ./data/node-1  pid 4242

   Stdout carries nothing else: the children's stdout and stderr (their logs) go to
   the launcher's stderr.
3. SIGINT and SIGTERM are forwarded to every running node (a second signal is
   forwarded too: a node exits at once on its second).  The launcher then waits up to
   ``STOP_TIMEOUT_S`` for all of them, kills the stragglers with SIGKILL, and returns
   0 if every node exited 0, else 1.
4. Restart none: a node that exits on its own is logged (stderr, naming the node,
   its pid and exit code) and left down; the others keep running, as a Raft cluster
   survives the loss of a minority.  The final exit code is then 1, at once if no
   node is left running.

``subprocess.Popen``, not ``multiprocessing``: a node is the same ``scheduled-db run``
compose and Kubernetes start (a fresh interpreter, not a fork holding the launcher's
state), and ``Popen`` gives plain pids, exit codes and signals.  Each child gets its
own process group, so a Ctrl-C at the terminal reaches the launcher only and each
node receives exactly one SIGINT, the forwarded one; on Linux each child also gets
SIGTERM if the launcher dies without forwarding (parent-death signal).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from scheduled_db.cli.errors import CliError
from scheduled_db.cli.main import build_config

__all__ = ["STOP_TIMEOUT_S", "run_cluster"]

log = logging.getLogger("actors.runtime.launcher")

HOST = "127.0.0.1"
CONFIG_DIR = Path("config") / "cluster"
STOP_TIMEOUT_S = 15.0
POLL_S = 0.1  # how often the supervisor looks at its children and at pending signals
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_FORWARDED = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class NodeSpec:
    """Where one node listens and keeps its data, and the YAML file it starts from."""

    id: str
    http_port: int
    raft_port: int
    data_dir: str
    config: Path | None

    def member(self) -> str:
        return f"{self.id}={HOST}:{self.raft_port}={HOST}:{self.http_port}"

    def run_args(self, members: str) -> list[str]:
        """What follows ``scheduled-db run`` for this node."""
        config = ["--config", str(self.config)] if self.config else []
        return [
            *config,
            "--node-id", self.id,
            "--data-dir", self.data_dir,
            "--http-host", HOST, "--http-port", str(self.http_port),
            "--raft-host", HOST, "--raft-port", str(self.raft_port),
            "--metrics-port", "0",
            "--cluster-members", members,
        ]  # fmt: skip

    def line(self, pid: int) -> str:
        where = f"http://{HOST}:{self.http_port}  raft {HOST}:{self.raft_port}"
        return f"{self.id}  {where}  data {self.data_dir}  pid {pid}"


def run_cluster(
    nodes: int,
    data_dir: str,
    base_http_port: int,
    base_raft_port: int,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``nodes`` node processes until SIGINT/SIGTERM; return the exit code (0 or 1).

    ``environ`` defaults to ``os.environ``.  Raises ``CliError`` or ``ConfigError``
    before starting anything (see the module).
    """
    env = dict(os.environ if environ is None else environ)
    specs = [_spec(i, data_dir, base_http_port, base_raft_port) for i in range(1, nodes + 1)]
    members = ",".join(spec.member() for spec in specs)
    if not env.get("CLUSTER_SECRET", "").strip() and (secret := _cluster_secret(specs)):
        env["CLUSTER_SECRET"] = secret
    for spec in specs:
        build_config(spec.run_args(members), env)  # raises on a bad file or value
    for spec in specs:
        _check_port_free(spec.http_port, f"{spec.id} HTTP")
        _check_port_free(spec.raft_port, f"{spec.id} Raft")
    return _Supervisor(specs, members, env).run()


def _spec(index: int, data_dir: str, base_http_port: int, base_raft_port: int) -> NodeSpec:
    node_id = f"node-{index}"
    path = CONFIG_DIR / f"{node_id}.yaml"
    return NodeSpec(
        node_id,
        base_http_port + index,
        base_raft_port + index,
        os.path.join(data_dir, node_id),
        path if path.is_file() else None,
    )


def _cluster_secret(specs: list[NodeSpec]) -> str | None:
    """The first YAML file's secret, else a random one (none for a single node)."""
    for spec in specs:
        if spec.config is not None:
            secret = build_config(["--config", str(spec.config)], {}).cluster.secret
            if secret:
                return secret
    return secrets.token_urlsafe(24) if len(specs) > 1 else None


def _check_port_free(port: int, what: str) -> None:
    # SO_REUSEADDR as the node's own listeners (asyncio) set it: a port held only by
    # connections in TIME_WAIT is free to them, one with a listener is not.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            used = exc.errno == errno.EADDRINUSE
            problem = "is already in use" if used else f"cannot be used: {exc.strerror}"
            raise CliError(f"cluster: port {port} on {HOST} ({what}) {problem}") from None


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGTERM when the launcher dies (Linux only)."""
    import ctypes  # only here: the child alone needs it, and only on Linux

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _Supervisor:
    """Starts the children, watches them, forwards signals, reports every exit."""

    def __init__(self, specs: list[NodeSpec], members: str, env: dict[str, str]) -> None:
        self.specs = specs
        self.members = members
        self.env = env
        self.running: dict[str, tuple[NodeSpec, subprocess.Popen[bytes]]] = {}
        self.codes: dict[str, int] = {}
        self.signals: list[int] = []

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        try:
            self._start_all()
            self._watch()
        finally:
            if self.running and not self.signals:  # the launcher itself failed
                self.signals.append(signal.SIGTERM)
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0 if all(code == 0 for code in self.codes.values()) else 1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)  # forwarded by the loop: a handler only records

    def _start_all(self) -> None:
        parent = os.getpid()
        # preexec_fn is unsafe only with threads, and the launcher has none.
        linux = sys.platform == "linux"
        for spec in self.specs:
            if self.signals:  # stopped while starting: start no more
                return
            proc = subprocess.Popen(
                [sys.executable, "-m", "scheduled_db", "run", *spec.run_args(self.members)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr.fileno(),
                process_group=0,
                preexec_fn=(lambda: _die_with_parent(parent)) if linux else None,
            )
            self.running[spec.id] = (spec, proc)
            print(spec.line(proc.pid), flush=True)

    def _watch(self) -> None:
        """Until a signal arrives or no node is left: report nodes that exit."""
        while not self.signals and self.running:
            time.sleep(POLL_S)
            self._reap_exited(expected=False)

    def _stop_all(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.running and time.monotonic() < deadline:
            while self.signals:
                sig = self.signals.pop(0)
                log.info("signal %d: forwarding to %s", sig, ", ".join(self.running))
                for _, proc in self.running.values():
                    proc.send_signal(sig)
            time.sleep(POLL_S)
            self._reap_exited(expected=True)
        for spec, proc in list(self.running.values()):
            log.error(
                "%s (pid %d) still running after %gs: killing it", spec.id, proc.pid, STOP_TIMEOUT_S
            )
            proc.kill()
            self._reap(spec.id, proc.wait(), expected=True)

    def _reap_exited(self, expected: bool) -> None:
        for spec, proc in list(self.running.values()):
            if proc.poll() is not None:
                self._reap(spec.id, proc.returncode, expected)

    def _reap(self, node_id: str, code: int, expected: bool) -> None:
        spec, proc = self.running.pop(node_id)
        self.codes[node_id] = code
        what = f"{spec.id} (pid {proc.pid}) exited with code {code}{_signal_name(code)}"
        if expected:
            log.log(logging.INFO if code == 0 else logging.ERROR, "%s", what)
        else:
            left = f"{len(self.running)} of {len(self.specs)} nodes still running"
            log.error("%s on its own; not restarted, %s", what, left)


def _signal_name(code: int) -> str:
    try:
        return f" (killed by {signal.Signals(-code).name})" if code < 0 else ""
    except ValueError:
        return f" (killed by signal {-code})"
