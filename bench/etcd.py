"""The reference for cluster throughput: a local 3-node etcd cluster, written over HTTP.

etcd is what Kubernetes keeps its state in: Raft, a synced write-ahead log, one
leader taking every write.  Its v3 JSON gateway takes ``POST /v3/kv/put`` with a
base64 key and value; that is the HTTP write compared with ``POST /jobs``.
Debian packages it as ``etcd-server`` (``apt-get install -y etcd-server``, etcd
3.4).  :func:`etcd_binary` finds it (or ``$ETCD_BIN``); without it the HTTP
part reports scheduled-db alone and says why.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scheduled_db.testing.harness import die_with_parent, free_port, get_json, wait_until

START_TIMEOUT_S = 30.0


def etcd_binary() -> str | None:
    """``$ETCD_BIN`` if set (None unless it is an executable), else ``etcd`` on the PATH."""
    given = os.environ.get("ETCD_BIN")
    if given is not None:
        return given if os.access(given, os.X_OK) else None
    return shutil.which("etcd")


def etcd_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.removeprefix("etcd Version:").strip() or "unknown"


class EtcdMember:
    """One etcd process of a local cluster."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.data_dir = root / name
        self.client_port, self.peer_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.client_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def peer(self) -> str:
        return f"{self.name}=http://127.0.0.1:{self.peer_port}"

    def start(self, binary: str, cluster: str) -> None:
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        args = [
            binary, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.base, "--advertise-client-urls", self.base,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", cluster, "--initial-cluster-token", "bench",
            "--initial-cluster-state", "new", "--log-level", "warn", "--logger", "zap",
        ]  # fmt: skip
        with open(self.data_dir.parent / f"{self.name}.log", "ab") as log:  # the child has a copy
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, preexec_fn=die_with_parent)

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"etcd member {self.name} exited ({self.proc.returncode})")
        try:
            status, body = get_json(self.base + "/health")
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("health") == "true"

    def is_leader(self) -> bool:
        status, body = get_json(self.base + "/v3/maintenance/status", "POST", {})
        return bool(status == 200 and body["header"]["member_id"] == body["leader"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@contextmanager
def etcd_cluster(root: Path, binary: str, size: int = 3) -> Iterator[list[EtcdMember]]:
    """A fresh ``size``-member cluster under ``root``, all healthy; stopped after."""
    root.mkdir(parents=True, exist_ok=True)
    members = [EtcdMember(root, f"etcd-{i}") for i in range(1, size + 1)]
    cluster = ",".join(m.peer() for m in members)
    try:
        for m in members:
            m.start(binary, cluster)
        for m in members:
            wait_until(m.healthy, START_TIMEOUT_S, f"{m.name} to be healthy", poll=0.1)
        yield members
    finally:
        for m in members:
            m.stop()


def etcd_leader(members: list[EtcdMember]) -> EtcdMember:
    found: list[EtcdMember] = []

    def one() -> bool:
        found[:] = [m for m in members if m.is_leader()]
        return len(found) == 1

    wait_until(one, START_TIMEOUT_S, "an etcd leader", poll=0.1)
    return found[0]


def put_body(key: str, value: bytes) -> bytes:
    """The gateway's JSON for a put: key and value base64-encoded."""
    b64 = base64.b64encode
    return json.dumps({"key": b64(key.encode()).decode(), "value": b64(value).decode()}).encode()
