"""Probes (actors/raft/identify.py): a node given Raft addresses alone learns who
answers at each, over real TCP on 127.0.0.1; old and new nodes still handshake;
a cluster with no secret links, unauthenticated, and only with others that have none.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from actors.raft import wire as w
from actors.raft.identify import HttpEndpoint
from actors.raft.messages import PeerIdentified, SendMessages, SetTransportInbox
from actors.raft.transport import TransportActor
from scheduled_db.raft.messages import encode_message
from tests.actors.probe import start_probe
from tests.actors.raft.test_transport import (
    HOST,
    SECRET,
    TIMEOUT_S,
    Node,
    closed_by_peer,
    dial_by_hand,
    eventually,
    msg,
    recv_frame,
    reserved_port,
    wire,
)

Nodes = Callable[..., Node]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def identified(node: Node) -> dict[str, PeerIdentified]:
    return {p.address: p for p in node.inbox.of_type(PeerIdentified)}


def test_a_probe_learns_who_answers_at_each_address_itself_included(nodes: Nodes) -> None:
    a = nodes("a")  # tells no HTTP address
    b = nodes("b", http=HttpEndpoint("", 8082))  # every interface: the host it was dialled at
    c = nodes("c", http=HttpEndpoint("10.1.1.1", 8083))
    port = free_port()
    listed = ((HOST, a.port), (HOST, b.port), (HOST, c.port), (HOST, port))
    p = nodes("p", port=port, identify=listed, http=HttpEndpoint("", 8080))
    eventually(lambda: len(identified(p)) == 4)
    found = {address: (f.node_id, f.http_address) for address, f in identified(p).items()}
    assert found == {
        f"{HOST}:{a.port}": ("a", ""),
        f"{HOST}:{b.port}": ("b", f"{HOST}:8082"),
        f"{HOST}:{c.port}": ("c", "10.1.1.1:8083"),
        f"{HOST}:{port}": ("p", f"{HOST}:8080"),
    }
    # Each address is told once; probes are not links: nobody became a peer.
    assert len(p.inbox.of_type(PeerIdentified)) == 4
    assert p.status().peers == () and a.status().peers == ()
    assert a.status().auth_failures == p.status().auth_failures == 0


def test_a_probe_waits_for_an_address_that_answers_later(nodes: Nodes) -> None:
    with reserved_port() as sock:
        port = int(sock.getsockname()[1])
        p = nodes("p", identify=((HOST, port),))
        eventually(lambda: p.status().port != 0)
    late = nodes("late", port=port)  # the port is free now: the node comes up there
    found = p.inbox.wait_for(PeerIdentified, timeout=TIMEOUT_S)
    assert (found.address, found.node_id) == (f"{HOST}:{port}", "late")
    assert late.status().auth_failures == 0


def test_a_probe_without_the_secret_learns_nothing(nodes: Nodes) -> None:
    a = nodes("a")
    p = nodes("p", secret=b"not-the-secret", identify=((HOST, a.port),))
    eventually(lambda: a.status().auth_failures >= 2)  # it keeps trying, and keeps failing
    assert p.inbox.of_type(PeerIdentified) == []


def test_the_identities_found_before_an_inbox_are_told_to_it(nodes: Nodes) -> None:
    a = nodes("a")
    p = nodes("p", identify=((HOST, a.port),))
    p.inbox.wait_for(PeerIdentified)  # found, and told to the first inbox
    ref, inbox = start_probe()
    try:
        p.ref.tell(SetTransportInbox(ref))
        assert inbox.wait_for(PeerIdentified).node_id == "a"
    finally:
        ref.stop(timeout=TIMEOUT_S)


def probe_by_hand(port: int, then: bytes = b"") -> tuple[bytes, bytes, socket.socket]:
    """Probe as node "x" over a plain socket: (the server's challenge, its answer, the
    socket); ``then`` is sent after the answer."""
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT_S)
    _, challenge = recv_frame(sock)
    nonce = w.tagged_nonce(w.PROBE)
    proof = w.handshake_proof(SECRET, w.DIALER, challenge, "x")
    sock.sendall(w.frame(w.KIND_HELLO, proof + nonce + b"x"))
    _, answer = recv_frame(sock)
    if then:
        sock.sendall(then)
    claim = answer[w.MAC_BYTES :]
    assert answer[: w.MAC_BYTES] == w.probe_proof(SECRET, nonce, claim)
    return challenge, claim, sock


def test_a_probe_connection_carries_no_raft_messages(nodes: Nodes) -> None:
    b = nodes("b", http=HttpEndpoint("", 9000))
    wire(b, nodes("x"))  # x is even a peer of b: a probe is still only a probe
    raft = w.frame(w.KIND_RAFT, b"not read")
    challenge, claim, sock = probe_by_hand(b.port, then=raft)
    with sock:
        assert w.nonce_flags(challenge) == 0  # a tagged challenge: this version
        assert claim == b'b\x00{"http_host": "", "http_port": 9000}'
        assert closed_by_peer(sock)
    assert b.received() == [] and b.status().bad_frames == 0


def test_a_new_server_still_links_with_a_dialer_of_the_earlier_version(nodes: Nodes) -> None:
    b = nodes("b")
    wire(b, nodes("a"))
    sock = dial_by_hand(b.port)
    with sock:
        sock.sendall(w.frame(w.KIND_RAFT, encode_message(msg("a", "b", 7))))
        eventually(lambda: len(b.received()) == 1)
    assert b.received() == [msg("a", "b", 7)]


class OldServer:
    """A node of the earlier version, by hand: untagged challenge, bare-id answer, only
    to the peers it knows; it records the Raft frames it reads."""

    def __init__(self, node_id: str, peers: set[str]) -> None:
        self.node_id, self.peers = node_id, peers
        self.sock = socket.create_server((HOST, 0))
        self.port = int(self.sock.getsockname()[1])
        self.frames: list[bytes] = []
        self.refused: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                nonce = secrets.token_bytes(w.NONCE_BYTES)
                conn.sendall(w.frame(w.KIND_HELLO, nonce))
                _, hello = recv_frame(conn)
                peer = hello[w.MAC_BYTES + w.NONCE_BYTES :].decode()
                their = hello[w.MAC_BYTES : w.MAC_BYTES + w.NONCE_BYTES]
                if peer not in self.peers:
                    self.refused.append(peer)
                    return
                answer = w.handshake_proof(SECRET, w.SERVER, their, self.node_id)
                conn.sendall(w.frame(w.KIND_HELLO, answer + self.node_id.encode()))
                while True:
                    kind, body = recv_frame(conn)
                    self.frames.append(body)
            except (OSError, ConnectionError):
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def old_server() -> Iterator[Callable[[str, set[str]], OldServer]]:
    made: list[OldServer] = []

    def make(node_id: str, peers: set[str]) -> OldServer:
        made.append(OldServer(node_id, peers))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_a_new_dialer_links_with_a_server_of_the_earlier_version(
    nodes: Nodes, old_server: Callable[[str, set[str]], OldServer]
) -> None:
    old = old_server("old", {"a"})
    a = nodes("a")
    a.set_peers({"old": (HOST, old.port)})
    a.ref.tell(SendMessages((msg("a", "old", 1), msg("a", "old", 2))))
    eventually(lambda: len(old.frames) == 2)
    assert a.link("old").connected and a.status().auth_failures == 0


def test_probing_a_server_of_the_earlier_version_learns_its_id(
    nodes: Nodes, old_server: Callable[[str, set[str]], OldServer]
) -> None:
    old = old_server("old", {"p"})  # it answers only the peers it knows
    p = nodes("p", identify=((HOST, old.port),))
    found = p.inbox.wait_for(PeerIdentified)
    assert (found.node_id, found.http_address) == ("old", "")  # it cannot say


def test_without_a_secret_nodes_link_but_not_with_a_node_that_has_one(nodes: Nodes) -> None:
    a, b = nodes("a", secret=None), nodes("b", secret=None)
    c = nodes("c")  # has the secret
    wire(a, b, c)
    a.send(msg("a", "b", 1))
    eventually(lambda: b.received() == [msg("a", "b", 1)])
    a.send(msg("a", "c", 1))
    eventually(lambda: c.status().auth_failures >= 1)
    assert c.received() == []
    p = nodes("p", secret=None, identify=((HOST, a.port),))
    assert p.inbox.wait_for(PeerIdentified).node_id == "a"


def test_an_empty_secret_is_still_refused_none_is_no_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        TransportActor("a", (HOST, 0), {}, b"")
    TransportActor("a", (HOST, 0), {}, None)  # constructed, never started
