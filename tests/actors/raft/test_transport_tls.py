"""The TransportActor with mutual TLS (``raft.tls_*``), over real TCP on 127.0.0.1.

Certificates come from throwaway CAs (tests/tls_certs.py).  Each refusal is shown
on the side that sees it (its ``auth_failures``) and by what did not arrive; the
HMAC handshake still runs inside TLS, so the right certificate alone is not enough.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from actors.raft import transport as t
from actors.raft import wire as w
from actors.raft.messages import PeerIdentified, PeerMessage, ReportUnreachable
from actors.runtime.tls import RaftTls, raft_tls
from tests.actors.raft.test_transport import (
    HOST,
    SECRET,
    TIMEOUT_S,
    Node,
    closed_by_peer,
    eventually,
    msg,
    recv_frame,
    wire,
)
from tests.tls_certs import Authority, CertFiles


@dataclass(frozen=True)
class Pki:
    cluster: Authority
    other: Authority
    certs: dict[str, CertFiles]

    def tls(self, name: str, ca: Authority | None = None) -> RaftTls:
        files = self.certs[name]
        trusted = (ca or self.cluster).ca_file
        return raft_tls(str(files.cert), str(files.key), str(trusted))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    cluster, other = Authority(root, "cluster-ca"), Authority(root, "other-ca")
    certs = {name: cluster.issue(name) for name in "abc"}
    certs["rogue"] = other.issue("rogue")  # right names, wrong CA
    certs["elsewhere"] = cluster.issue("elsewhere", "elsewhere.example")  # right CA, wrong name
    return Pki(cluster, other, certs)


def test_tls_peers_exchange_messages_large_and_small(nodes: Callable[..., Node], pki: Pki) -> None:
    a, b = nodes("a", tls=pki.tls("a")), nodes("b", tls=pki.tls("b"))
    wire(a, b)
    big = msg("a", "b", 51, bytes(range(256)) * 8192)  # 2 MiB: many TLS records
    a.send(*(msg("a", "b", i, b"x" * i) for i in range(1, 51)), big)
    b.send(msg("b", "a", 1))
    eventually(lambda: len(b.received()) == 51 and len(a.received()) == 1)
    assert b.received() == [*(msg("a", "b", i, b"x" * i) for i in range(1, 51)), big]
    assert a.status().auth_failures == b.status().auth_failures == 0


def test_a_certificate_of_another_ca_is_refused_by_the_server(
    nodes: Callable[..., Node], pki: Pki
) -> None:
    # The rogue trusts the cluster CA (so its own check of b passes) and holds the
    # secret: only its certificate is wrong.
    a, b = nodes("a", tls=pki.tls("a")), nodes("b", tls=pki.tls("b"))
    rogue = nodes("c", tls=pki.tls("rogue"))
    wire(a, b, rogue)
    rogue.send(*(msg("c", "b", i) for i in range(5)))
    eventually(lambda: b.status().auth_failures >= 1)
    assert rogue.inbox.wait_for(ReportUnreachable).peer == "b"
    a.send(msg("a", "b", 1))
    b.inbox.wait_for(PeerMessage)
    assert b.received() == [msg("a", "b", 1)]
    assert rogue.link("b").sent == 0


def test_the_dialer_checks_the_servers_ca_and_host_name(
    nodes: Callable[..., Node], pki: Pki
) -> None:
    a = nodes("a", tls=pki.tls("a"))
    foreign = nodes("b", tls=pki.tls("rogue", ca=pki.other))  # another CA's server
    misnamed = nodes("c", tls=pki.tls("elsewhere"))  # the cluster's CA, not 127.0.0.1
    wire(a, foreign, misnamed)
    a.send(msg("a", "b", 1), msg("a", "c", 1))
    eventually(lambda: a.status().auth_failures >= 2)
    for peer in "bc":
        a.inbox.wait_for(ReportUnreachable, lambda r, peer=peer: r.peer == peer)
    assert foreign.received() == [] and misnamed.received() == []
    assert a.link("b").sent == a.link("c").sent == 0


def test_plain_and_tls_peers_do_not_talk(nodes: Callable[..., Node], pki: Pki) -> None:
    secure, plain = nodes("a", tls=pki.tls("a")), nodes("b")
    wire(secure, plain)
    secure.send(msg("a", "b", 1))
    plain.send(msg("b", "a", 1))
    # The TLS dialer reads the plain challenge as a broken TLS record; the plain
    # server reads the TLS ClientHello as a broken HELLO frame.  (The plain dialer
    # and the TLS server each wait for the other to speak, until the handshake timeout.)
    eventually(lambda: secure.status().auth_failures >= 1)
    eventually(lambda: plain.status().auth_failures >= 1)
    assert secure.received() == [] and plain.received() == []
    assert secure.link("b").sent == plain.link("a").sent == 0


def test_without_a_client_certificate_nothing_is_said(pki: Pki, nodes: Callable[..., Node]) -> None:
    """Mutual TLS: a dialer that trusts the CA but shows no certificate never even
    gets the HMAC challenge, though the TLS handshake looks done on its side."""
    b = nodes("b", peers={"a": (HOST, 1)}, tls=pki.tls("b"))
    with (
        _tls_socket(b.port, pki.cluster.client_context()) as sock,
        pytest.raises((ssl.SSLError, ConnectionError)),
    ):
        recv_frame(sock)
    eventually(lambda: b.status().auth_failures == 1)


def test_with_a_good_certificate_the_secret_is_still_needed(
    pki: Pki, nodes: Callable[..., Node]
) -> None:
    b = nodes("b", peers={"a": (HOST, 1)}, tls=pki.tls("b"))
    context = pki.cluster.client_context(pki.certs["a"])
    with _tls_socket(b.port, context) as sock:
        kind, challenge = recv_frame(sock)  # TLS passed: the challenge comes
        assert kind == w.KIND_HELLO and len(challenge) == w.NONCE_BYTES
        proof = w.handshake_proof(b"not-" + SECRET, w.DIALER, challenge, "a")
        sock.sendall(w.frame(w.KIND_HELLO, proof + bytes(w.NONCE_BYTES) + b"a"))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            recv_frame(sock)
    eventually(lambda: b.status().auth_failures == 1)
    assert b.received() == []


def _tls_socket(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=TIMEOUT_S)
    return context.wrap_socket(raw, server_hostname=HOST)


def test_a_silent_dialer_is_cut_off_and_leaves_nothing_behind(
    pki: Pki, nodes: Callable[..., Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS handshake that times out must not leave its connection task waiting for
    ever (asyncio never closes the stream of a cut-short upgrade): the actor still
    stops well within its stop timeout."""
    monkeypatch.setattr(t, "HANDSHAKE_TIMEOUT_S", 0.2)
    b = nodes("b", tls=pki.tls("b"))
    with socket.create_connection(b.address, timeout=TIMEOUT_S) as sock:
        assert closed_by_peer(sock)
    eventually(lambda: b.status().auth_failures == 1)
    started = time.monotonic()
    b.ref.stop(timeout=TIMEOUT_S)
    assert time.monotonic() - started < t.STOP_TIMEOUT_S / 2


def test_a_probe_runs_inside_mutual_tls_too(nodes: Callable[..., Node], pki: Pki) -> None:
    a = nodes("a", tls=pki.tls("a"))
    b = nodes("b", tls=pki.tls("b"), identify=((HOST, a.port),))
    rogue = nodes("c", tls=pki.tls("rogue"), identify=((HOST, a.port),))
    assert b.inbox.wait_for(PeerIdentified).node_id == "a"
    eventually(lambda: a.status().auth_failures >= 1)  # the rogue's certificate
    assert rogue.inbox.of_type(PeerIdentified) == []
