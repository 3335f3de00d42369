"""TLS with real node processes: an HTTPS API (one node, and the command line against
it), a 3-node cluster with HTTPS and mutual TLS between nodes, intruders on a Raft
port, and TLS files that stop a node before it starts.

Certificates come from throwaway CAs made by the test (tests/tls_certs.py); every
node's certificate names 127.0.0.1, the address the others reach it by.
"""

from __future__ import annotations

import http.client
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.raft import wire as w
from scheduled_db.cli.main import main
from scheduled_db.testing.harness import (
    ROOT,
    Http,
    NodeProcess,
    join,
    running,
    wait_leader,
    wait_until,
)
from tests.integration.cluster import ClusterNode, job
from tests.integration.cluster_faults_harness import wait_converged
from tests.tls_certs import Authority, CertFiles

HOST = "127.0.0.1"
NODES = ("node-1", "node-2", "node-3")


@dataclass(frozen=True)
class Pki:
    ca: Authority
    other: Authority
    certs: dict[str, CertFiles]

    def flags(self, node_id: str) -> tuple[str, ...]:
        """``scheduled-db run`` flags for HTTPS and mutual TLS between nodes."""
        files, ca = self.certs[node_id], str(self.ca.ca_file)
        return (
            "--api-tls-cert", str(files.cert), "--api-tls-key", str(files.key),
            "--api-tls-ca", ca,
            "--raft-tls-cert", str(files.cert), "--raft-tls-key", str(files.key),
            "--raft-tls-ca", ca,
        )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca, other = Authority(root, "cluster-ca"), Authority(root, "other-ca")
    certs = {node_id: ca.issue(node_id) for node_id in NODES}
    certs["rogue"] = other.issue("rogue")
    return Pki(ca, other, certs)


# --- one node with an HTTPS API ---------------------------------------------------------


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "api-workers"])
def https_node(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, request: pytest.FixtureRequest
) -> Iterator[NodeProcess]:
    """The API served by the node's process, or by two worker processes (``http.workers``)."""
    files = pki.certs["node-1"]
    node = NodeProcess(
        tmp_path_factory.mktemp("single") / "data",
        extra=["--http-workers", str(request.param)],
        API_TLS_CERT=str(files.cert),
        API_TLS_KEY=str(files.key),
    )
    node.http = Http(f"https://{HOST}:{node.http_port}", pki.ca.client_context())
    node.start()
    yield node
    node.stop_if_running()


def test_the_api_answers_https_with_the_ca_and_nothing_else(
    https_node: NodeProcess, pki: Pki
) -> None:
    status, _, body = https_node.http.call("POST", "/jobs", job("secure", time.time() + 3600))
    assert status == 200, body
    assert https_node.http.call("GET", "/jobs/secure")[0] == 200
    metrics = Http(f"https://{HOST}:{https_node.metrics_port}", pki.ca.client_context())
    assert metrics.call("GET", "/metrics")[0] == 200  # the metrics listener too
    for plain_port in (https_node.http_port, https_node.metrics_port):
        with pytest.raises((OSError, http.client.HTTPException)):
            Http(f"http://{HOST}:{plain_port}").call("GET", "/health")
    untrusting = Http(f"https://{HOST}:{https_node.http_port}", ssl.create_default_context())
    with pytest.raises(urllib.error.URLError) as caught:
        untrusting.call("GET", "/health")
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


def test_the_command_line_trusts_the_ca_it_is_given(
    https_node: NodeProcess, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    url, ca = f"https://{HOST}:{https_node.http_port}", str(pki.ca.ca_file)
    create = ["jobs", "create", "--url", url, "--id", "from-cli", "--type", "unico"]
    assert main([*create, "--timestamp", str(int(time.time()) + 3600), "--ca", ca], {}) == 0
    assert '"id": "from-cli"' in capsys.readouterr().out
    assert main(["jobs", "get", "from-cli", "--url", url], {"SCHEDULED_DB_CA": ca}) == 0
    assert '"status": "pending"' in capsys.readouterr().out

    assert main(["health", "--url", url], {}) == 2  # the system's CAs do not know ours
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "certificate did not verify" in err and "--ca" in err
    missing = str(pki.ca.directory / "missing.pem")
    assert main(["health", "--url", url, "--ca", missing], {}) == 2
    err = capsys.readouterr().err
    assert err.startswith("scheduled-db: --ca: cannot use") and err.count("\n") == 1


# --- a cluster with TLS everywhere ------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[list[ClusterNode]]:
    root = tmp_path_factory.mktemp("cluster")
    nodes = [ClusterNode(root / node_id / "data", node_id, pki.flags(node_id)) for node_id in NODES]
    join(nodes)
    for n in nodes:
        n.http = Http(f"https://{HOST}:{n.http_port}", pki.ca.client_context())
    with running(nodes) as started:
        yield started


def test_a_tls_cluster_elects_forwards_and_replicates(cluster: list[ClusterNode]) -> None:
    leader = wait_leader(cluster)  # elected over mutual TLS
    follower = next(n for n in cluster if n is not leader)
    # A follower cannot commit: a 200 here is the leader's answer, forwarded over HTTPS.
    status, _, body = follower.http.call("POST", "/jobs", job("via-follower", time.time() + 3600))
    assert status == 200, body
    wait_converged(cluster, 15)
    for n in cluster:
        assert n.http.call("GET", "/jobs/via-follower")[0] == 200
        health = n.health()
        assert health["status"] == "ok" and health["leader"] == f"{HOST}:{leader.http_port}"
        assert "Raft transport (mutual TLS)" in n.log() and "serving HTTPS" in n.log()


def test_intruders_on_a_raft_port_are_refused_and_change_nothing(
    cluster: list[ClusterNode], pki: Pki
) -> None:
    leader = wait_leader(cluster)
    target = next(n for n in cluster if n is not leader)
    before = _terms(cluster)
    control = pki.ca.client_context(pki.certs["node-2"])
    assert _challenge_after_tls(target.raft_port, control)  # the way in, for comparison

    assert not _challenge_in_the_clear(target.raft_port)  # no TLS, though it holds the secret
    rogue = pki.ca.client_context(pki.certs["rogue"])  # another CA's certificate
    assert not _challenge_after_tls(target.raft_port, rogue)
    assert not _challenge_after_tls(target.raft_port, pki.ca.client_context())  # none at all

    refused = "transport: handshake with 127.0.0.1"
    wait_until(lambda: target.log().count(refused) >= 4, 10, "the refusals to be logged")
    assert _terms(cluster) == before
    wait_converged(cluster, 15)
    assert wait_leader(cluster) is leader


def _terms(nodes: list[ClusterNode]) -> list[tuple[int, str]]:
    views = [n.http.call("GET", "/debug/cluster")[2] for n in nodes]
    return [(v["term"], v["leader"]) for v in views]


def _challenge_in_the_clear(port: int) -> bool:
    """Dial without TLS, as a node would have before, and offer a HELLO first: an
    attacker in a hurry.  Whether the server ever sends its HMAC challenge."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        nonce = secrets.token_bytes(w.NONCE_BYTES)
        sock.sendall(w.frame(w.KIND_HELLO, bytes(w.MAC_BYTES) + nonce + b"node-2"))
        return _reads_challenge(sock)


def _challenge_after_tls(port: int, context: ssl.SSLContext) -> bool:
    """Dial with TLS under ``context``; whether the server's HMAC challenge follows."""
    raw = socket.create_connection((HOST, port), timeout=10)
    with context.wrap_socket(raw, server_hostname=HOST) as sock:
        return _reads_challenge(sock)


def _reads_challenge(sock: socket.socket) -> bool:
    data = b""
    try:
        while len(data) < 5 + w.NONCE_BYTES and (chunk := sock.recv(4096)):
            data += chunk
    except (ssl.SSLError, ConnectionError):
        pass
    return data == w.frame(w.KIND_HELLO, data[5:]) and len(data) == 5 + w.NONCE_BYTES


# --- TLS files that stop a node ---------------------------------------------------------


@pytest.mark.parametrize("case", ["missing_api_cert", "mismatched_raft_key"])
def test_a_bad_tls_file_stops_the_node_with_one_line(case: str, pki: Pki, tmp_path: Path) -> None:
    files, other = pki.certs["node-1"], pki.certs["node-2"]
    if case == "missing_api_cert":
        flags = ["--api-tls-cert", str(tmp_path / "absent.crt"), "--api-tls-key", str(files.key)]
        expected = "scheduled-db: config: api.tls_cert: cannot read "
    else:
        flags = ["--raft-tls-cert", str(files.cert), "--raft-tls-key", str(other.key)]
        flags += ["--raft-tls-ca", str(pki.ca.ca_file)]
        expected = "scheduled-db: config: raft.tls_key: "
    data_dir = tmp_path / "data"
    run = [sys.executable, "-m", "scheduled_db", "run", "--data-dir", str(data_dir), *flags]
    done = subprocess.run(
        run, capture_output=True, text=True, timeout=30, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(expected), done.stderr
    assert "Traceback" not in done.stderr
    assert not data_dir.exists()  # stopped before it touched its data directory
