"""The TransportActor over real TCP on 127.0.0.1: delivery, authentication, bad input,
bounded queues, reconnection and stopping.

Probe actors stand in for the RaftActors.  Some tests speak the wire protocol by hand
over a plain socket, to check what the actor does with bytes no transport would send.
Every wait is bounded and waits on a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors.raft import transport as t
from actors.raft import wire as w
from actors.raft.messages import (
    GetPeerSender,
    GetTransportStatus,
    PeerLinkStatus,
    PeerMessage,
    ReportUnreachable,
    SendMessages,
    SendSnapshotFrame,
    SetPeers,
    SetTransportInbox,
    SnapshotFrame,
    TransportStatus,
)
from actors.raft.transport import PeerSender, TransportActor
from actors.runtime.replies import wait_reply
from scheduled_db.raft.messages import Entry, Message, MessageType, encode_message
from tests.actors.probe import start_probe

SECRET = b"the-cluster-secret"
HOST = "127.0.0.1"
TIMEOUT_S = 10.0
Ref = pykka.ActorRef[Any]


def eventually(check: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.005)


def msg(frm: str, to: str, index: int, data: bytes = b"") -> Message:
    entries = (Entry(term=3, index=index, data=data),) if data else ()
    return Message(MessageType.APP, to=to, frm=frm, term=3, index=index, entries=entries)


class Node:
    """One transport and the probe that plays its RaftActor."""

    def __init__(self, name: str, port: int = 0, secret: bytes = SECRET, **kw: Any) -> None:
        self.name = name
        self.probe, self.inbox = start_probe()
        self.ref: Ref = TransportActor.start(
            name, (HOST, port), kw.pop("peers", {}), secret, self.probe, **kw
        )
        self.port: int = self.ref.proxy().port.get(timeout=TIMEOUT_S)

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def status(self) -> TransportStatus:
        status = wait_reply(self.ref, GetTransportStatus, TIMEOUT_S)
        assert isinstance(status, TransportStatus)
        return status

    def link(self, peer: str) -> PeerLinkStatus:
        link = self.status().peer(peer)
        assert link is not None, f"{self.name} has no peer {peer}"
        return link

    def set_peers(self, peers: dict[str, tuple[str, int]]) -> None:
        self.ref.tell(SetPeers.of(peers))
        eventually(lambda: {p.peer for p in self.status().peers} == set(peers) - {self.name})

    def send(self, *messages: Message) -> None:
        self.ref.tell(SendMessages(messages))

    def received(self) -> list[Message]:
        return [pm.message for pm in self.inbox.of_type(PeerMessage)]

    def stop(self) -> None:
        self.ref.stop(timeout=TIMEOUT_S)
        self.probe.stop(timeout=TIMEOUT_S)


def wire(*cluster: Node) -> None:
    """Tell every node the address of every node (itself included: it is ignored)."""
    for node in cluster:
        node.set_peers({n.name: n.address for n in cluster})


@contextlib.contextmanager
def reserved_port(port: int = 0) -> Iterator[socket.socket]:
    """A bound, not listening socket: dialling its port is refused, and no other
    socket (not even a dialler's own, by a TCP self-connect) can take the port."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a closed server
        sock.bind((HOST, port))
        yield sock
    finally:
        sock.close()


# --- the wire, by hand ---------------------------------------------------------------------


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def recv_frame(sock: socket.socket) -> tuple[int, bytes]:
    (size,) = struct.unpack(">I", recv_exactly(sock, 4))
    payload = recv_exactly(sock, size)
    return payload[0], payload[1:]


def dial_by_hand(port: int, node_id: str = "a", secret: bytes = SECRET) -> socket.socket:
    """Connect and authenticate as ``node_id``, checking the server's proof."""
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT_S)
    try:
        kind, challenge = recv_frame(sock)
        assert kind == w.KIND_HELLO and len(challenge) == w.NONCE_BYTES
        nonce = secrets.token_bytes(w.NONCE_BYTES)
        proof = w.handshake_proof(secret, w.DIALER, challenge, node_id)
        sock.sendall(w.frame(w.KIND_HELLO, proof + nonce + node_id.encode()))
        kind, answer = recv_frame(sock)
    except BaseException:
        sock.close()
        raise
    assert kind == w.KIND_HELLO
    assert answer == w.handshake_proof(secret, w.SERVER, nonce, "b") + b"b"
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """Read until the other side closes (True) or the timeout passes (False)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


# --- delivery ------------------------------------------------------------------------------


def test_three_nodes_exchange_messages_in_order_per_link(nodes: Callable[..., Node]) -> None:
    cluster = [nodes(name) for name in "abc"]
    wire(*cluster)
    for i in range(1, 201):
        for node in cluster:
            node.send(
                *(msg(node.name, o.name, i, b"x" * (i % 7)) for o in cluster if o is not node)
            )
    eventually(lambda: all(len(node.received()) == 400 for node in cluster))
    for node in cluster:
        for other in cluster:
            if other is not node:
                got = [x for x in node.received() if x.frm == other.name]
                assert got == [msg(other.name, node.name, i, b"x" * (i % 7)) for i in range(1, 201)]
    a, b, _ = cluster
    assert a.link("b").sent == 200 and b.link("a").received == 200
    assert a.status().auth_failures == 0 and a.status().bad_frames == 0


def test_the_peer_sender_sends_and_sets_peers_in_order_from_the_callers_thread(
    nodes: Callable[..., Node],
) -> None:
    """The Raft actor's path (GetPeerSender): no hop through the actor's thread, and a
    peer map set through it reaches the loop before the sends that follow it."""
    a, b = nodes("a"), nodes("b")
    b.set_peers({"a": a.address})
    sender = wait_reply(a.ref, GetPeerSender, TIMEOUT_S)
    assert isinstance(sender, PeerSender)
    sender.set_peers({"b": b.address, "a": a.address})  # its own entry is ignored
    sender.send(tuple(msg("a", "b", i, b"y" * i) for i in range(1, 101)))
    sender.send((msg("a", "nobody", 101),))  # not a peer: dropped
    eventually(lambda: len(b.received()) == 100)
    assert b.received() == [msg("a", "b", i, b"y" * i) for i in range(1, 101)]
    assert a.link("b").sent == 100
    a.ref.stop(timeout=TIMEOUT_S)
    sender.send((msg("a", "b", 102),))  # the transport has stopped: dropped, no error
    sender.set_peers({})


def test_snapshot_frames_go_to_the_snapshot_inbox_in_order(nodes: Callable[..., Node]) -> None:
    a, b = nodes("a"), nodes("b")
    wire(a, b)
    snap_probe, snap_inbox = start_probe()
    try:
        # ask, not tell: the change is queued on b's loop before any frame is sent
        b.ref.ask(SetTransportInbox(b.probe, snap_probe), timeout=TIMEOUT_S)
        for i in range(50):
            a.ref.tell(SendSnapshotFrame("b", b"chunk-%d" % i + b"x" * (i * 1000)))
            a.send(msg("a", "b", i + 1))
        a.ref.tell(SendSnapshotFrame("nobody", b"dropped"))  # not a peer: dropped
        eventually(lambda: len(snap_inbox.of_type(SnapshotFrame)) == 50)
        eventually(lambda: len(b.received()) == 50)
        frames = snap_inbox.of_type(SnapshotFrame)
        assert [f.frm for f in frames] == ["a"] * 50
        assert [f.data for f in frames] == [b"chunk-%d" % i + b"x" * (i * 1000) for i in range(50)]
        assert not snap_inbox.of_type(PeerMessage)  # Raft messages still go to the inbox
        b.ref.ask(SetTransportInbox(b.probe), timeout=TIMEOUT_S)  # frames now dropped
        a.ref.tell(SendSnapshotFrame("b", b"late"))
        a.send(msg("a", "b", 99))
        eventually(lambda: len(b.received()) == 51)
        assert len(snap_inbox.of_type(SnapshotFrame)) == 50
    finally:
        snap_probe.stop(timeout=TIMEOUT_S)


def test_unknown_peer_is_dropped_and_inbox_can_be_attached_later(
    nodes: Callable[..., Node],
) -> None:
    a, b = nodes("a"), nodes("b")
    b.ref.tell(SetTransportInbox(None))
    wire(a, b)
    a.send(msg("a", "nobody", 1), msg("a", "b", 2))
    eventually(lambda: b.link("a").received == 1)  # arrived, but there was no inbox
    late, inbox = start_probe()
    try:
        b.ref.tell(SetTransportInbox(late))
        b.status()  # a barrier: the inbox is handed to b's loop before a sends again
        a.send(msg("a", "b", 3))
        assert inbox.wait_for(PeerMessage).message == msg("a", "b", 3)
        assert [x.message for x in inbox.of_type(PeerMessage)] == [msg("a", "b", 3)]
    finally:
        late.stop(timeout=TIMEOUT_S)


# --- authentication ------------------------------------------------------------------------


def test_wrong_secret_delivers_nothing_and_the_node_serves_others(
    nodes: Callable[..., Node],
) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c", secret=b"not-the-secret")
    wire(a, b, c)
    c.send(*(msg("c", "b", i) for i in range(10)))
    eventually(lambda: b.status().auth_failures >= 1)
    assert c.inbox.wait_for(ReportUnreachable).peer == "b"
    a.send(msg("a", "b", 1))
    b.inbox.wait_for(PeerMessage)
    assert b.received() == [msg("a", "b", 1)]
    assert c.link("b").sent == 0 and not c.link("b").connected


def test_server_that_cannot_prove_the_secret_is_never_sent_raft(
    nodes: Callable[..., Node],
) -> None:
    """The dialer checks the server too: an impostor on a peer's address gets nothing."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(TIMEOUT_S)
    after_hello: list[bytes] = []

    def impostor() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT_S)
            conn.sendall(w.frame(w.KIND_HELLO, secrets.token_bytes(w.NONCE_BYTES)))
            recv_frame(conn)
            conn.sendall(w.frame(w.KIND_HELLO, bytes(w.MAC_BYTES) + b"b"))
            rest = b""
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    rest += chunk
            after_hello.append(rest)

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    try:
        a = nodes("a", peers={"b": listener.getsockname()[:2]})
        a.send(msg("a", "b", 1))
        thread.join(TIMEOUT_S)
        assert after_hello == [b""]
        eventually(lambda: a.status().auth_failures >= 1)
        assert a.inbox.wait_for(ReportUnreachable).peer == "b"
    finally:
        listener.close()


def test_handshake_by_hand_then_only_frames_from_a_to_b_are_delivered(
    nodes: Callable[..., Node],
) -> None:
    b = nodes("b", peers={"a": (HOST, 1)})
    with dial_by_hand(b.port) as sock:
        for wrong in (msg("c", "b", 5), msg("a", "z", 6)):  # another sender; another receiver
            sock.sendall(w.frame(w.KIND_RAFT, encode_message(wrong)))
        sock.sendall(w.frame(w.KIND_RAFT, encode_message(msg("a", "b", 7, b"payload"))))
        assert b.inbox.wait_for(PeerMessage).message == msg("a", "b", 7, b"payload")
    assert b.received() == [msg("a", "b", 7, b"payload")]
    assert b.link("a").rejected == 2


def test_a_node_outside_the_peer_map_is_refused(nodes: Callable[..., Node]) -> None:
    b = nodes("b", peers={"a": (HOST, 1)})
    with pytest.raises(ConnectionError):
        dial_by_hand(b.port, node_id="stranger")
    eventually(lambda: b.status().auth_failures == 1)


def test_frm_mismatch_is_dropped(nodes: Callable[..., Node]) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    wire(a, b, c)
    a.send(msg("c", "b", 1), msg("a", "b", 2))
    b.inbox.wait_for(PeerMessage)
    assert b.received() == [msg("a", "b", 2)]
    assert b.link("a").rejected == 1 and b.link("a").received == 1
    assert b.link("c").received == 0


# --- bad input -----------------------------------------------------------------------------

BEFORE_AUTH = {
    "garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "oversize_length": struct.pack(">I", 0xFFFFFFFF),
    "hello_too_long": w.frame(w.KIND_HELLO, bytes(w.MAX_HELLO_BYTES)),
    "truncated": struct.pack(">I", 100) + b"short",
    "wrong_kind": w.frame(w.KIND_RAFT, b"\x01"),
}
AFTER_AUTH = {
    "undecodable": w.frame(w.KIND_RAFT, b"\x01not msgpack at all"),
    "oversize_length": struct.pack(">I", w.MAX_FRAME_BYTES + 1),
    "zero_length": struct.pack(">I", 0),
    "truncated": struct.pack(">IB", 1000, w.KIND_RAFT) + b"partial",
    "wrong_kind": w.frame(w.KIND_HELLO, b"again"),
}


@pytest.mark.parametrize("data", BEFORE_AUTH.values(), ids=BEFORE_AUTH.keys())
def test_bad_bytes_before_auth_close_the_connection(
    nodes: Callable[..., Node], data: bytes
) -> None:
    a, b = nodes("a"), nodes("b")
    wire(a, b)
    with socket.create_connection(b.address, timeout=TIMEOUT_S) as sock:
        recv_frame(sock)  # the challenge
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_peer(sock)
    eventually(lambda: b.status().auth_failures == 1)
    a.send(msg("a", "b", 1))
    assert b.inbox.wait_for(PeerMessage).message == msg("a", "b", 1)
    assert b.ref.is_alive()


@pytest.mark.parametrize("data", AFTER_AUTH.values(), ids=AFTER_AUTH.keys())
def test_bad_frames_after_auth_close_the_connection(
    nodes: Callable[..., Node], data: bytes
) -> None:
    b, c = nodes("b"), nodes("c")
    b.set_peers({"a": (HOST, 1), "c": c.address})
    c.set_peers({"b": b.address})
    with dial_by_hand(b.port) as sock:
        good = w.frame(w.KIND_RAFT, encode_message(msg("a", "b", 1)))
        sock.sendall(good + data + good)
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_peer(sock)
    eventually(lambda: b.status().bad_frames == 1)
    c.send(msg("c", "b", 2))
    eventually(lambda: len(b.received()) == 2)
    assert b.received() == [msg("a", "b", 1), msg("c", "b", 2)]


def test_silent_dialer_is_cut_off_after_the_handshake_timeout(
    nodes: Callable[..., Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(t, "HANDSHAKE_TIMEOUT_S", 0.2)
    b = nodes("b")
    with socket.create_connection(b.address, timeout=TIMEOUT_S) as sock:
        recv_frame(sock)
        assert closed_by_peer(sock)
    assert b.status().auth_failures == 1


# --- unreachable peers, bounded queues, reconnection --------------------------------------


def test_queue_to_a_down_peer_is_bounded_then_delivered_when_it_starts(
    nodes: Callable[..., Node],
) -> None:
    cap, extra = t.MAX_QUEUED, 500
    with reserved_port() as placeholder:
        b_port = placeholder.getsockname()[1]
        a = nodes("a", peers={"b": (HOST, b_port)})
        for start in range(0, cap + extra, 1000):
            a.send(*(msg("a", "b", i) for i in range(start, min(start + 1000, cap + extra))))
        eventually(lambda: a.link("b").dropped == extra)
        assert a.link("b").queued == cap
        assert a.inbox.wait_for(ReportUnreachable).peer == "b"
        eventually(lambda: a.link("b").connect_failures >= 3)
        assert len(a.inbox.of_type(ReportUnreachable)) == 1  # once per failure episode
        assert a.link("b").queued == cap
    b = nodes("b", port=b_port, peers={"a": a.address})
    eventually(lambda: len(b.received()) == cap)
    assert b.received() == [msg("a", "b", i) for i in range(extra, cap + extra)]
    eventually(lambda: a.link("b").queued == 0 and a.link("b").connected)


def test_queue_is_bounded_in_bytes_too(
    nodes: Callable[..., Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(t, "MAX_QUEUED_BYTES", 2_000)
    with reserved_port() as placeholder:
        a = nodes("a", peers={"b": placeholder.getsockname()[:2]})
        a.send(*(msg("a", "b", i, bytes(100)) for i in range(100)))
        eventually(lambda: a.link("b").queued + a.link("b").dropped == 100)
        assert 0 < a.link("b").queued < 20


def test_a_peer_that_moves_gets_its_queue_at_the_new_address(
    nodes: Callable[..., Node],
) -> None:
    with reserved_port() as placeholder:
        a = nodes("a", peers={"b": placeholder.getsockname()[:2]})
        a.send(*(msg("a", "b", i) for i in range(5)))
        assert a.inbox.wait_for(ReportUnreachable).peer == "b"
        b = nodes("b", peers={"a": a.address})
        a.set_peers({"b": b.address})
        eventually(lambda: len(b.received()) == 5)
    assert b.received() == [msg("a", "b", i) for i in range(5)]


def test_peer_restart_reports_unreachable_once_and_reconnects(
    nodes: Callable[..., Node],
) -> None:
    a, b = nodes("a"), nodes("b")
    wire(a, b)
    a.send(msg("a", "b", 1))
    b.inbox.wait_for(PeerMessage)
    b_port = b.port
    b.stop()
    with reserved_port(b_port):
        assert a.inbox.wait_for(ReportUnreachable).peer == "b"
        a.send(*(msg("a", "b", i) for i in range(2, 12)))
        eventually(lambda: a.link("b").connect_failures >= 2)
        assert len(a.inbox.of_type(ReportUnreachable)) == 1
    b2 = nodes("b", port=b_port, peers={"a": a.address})
    eventually(lambda: len(b2.received()) == 10)
    assert b2.received() == [msg("a", "b", i) for i in range(2, 12)]


def test_removing_a_peer_closes_its_connections_and_drops_its_queue(
    nodes: Callable[..., Node],
) -> None:
    a, b = nodes("a"), nodes("b")
    wire(a, b)
    a.send(msg("a", "b", 1))
    b.send(msg("b", "a", 1))
    a.inbox.wait_for(PeerMessage)
    b.inbox.wait_for(PeerMessage)
    a.set_peers({})
    assert b.inbox.wait_for(ReportUnreachable).peer == "a"  # a hung up on b
    eventually(lambda: not b.link("a").connected and b.status().auth_failures == 0)
    eventually(lambda: a.status().auth_failures >= 1)  # b dials again; a refuses it
    a.send(msg("a", "b", 2))
    assert a.status().peers == ()


# --- lifecycle -----------------------------------------------------------------------------


def test_stop_is_bounded_with_open_connections_and_queues(nodes: Callable[..., Node]) -> None:
    a, b = nodes("a"), nodes("b")
    with reserved_port() as placeholder:
        wire(a, b)
        a.set_peers({"b": b.address, "dead": placeholder.getsockname()[:2]})
        a.send(msg("a", "b", 1), *(msg("a", "dead", i) for i in range(100)))
        b.inbox.wait_for(PeerMessage)
        with socket.create_connection(a.address, timeout=TIMEOUT_S) as half_open:
            recv_frame(half_open)  # a handshake left hanging
            started = time.monotonic()
            a.ref.stop(timeout=TIMEOUT_S)
            assert time.monotonic() - started < 2.0
            assert closed_by_peer(half_open)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(a.address, timeout=TIMEOUT_S).close()


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        TransportActor("a", (HOST, 0), {}, b"")
    with pytest.raises(ValueError, match="max_queued"):
        TransportActor("a", (HOST, 0), {}, SECRET, max_queued=0)


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 4, 5])
def test_connections_accepted_as_the_transport_closes_are_closed_too(turns: int) -> None:
    """A connection accepted while the listener closes gets its handler task some
    loop turns later; that task must not outlive close() with its socket open."""

    async def scenario() -> None:
        net = t._Network("n1", SECRET, {}, None, 1 << 20, None)
        port = await net.open((HOST, 0))
        clients = [socket.create_connection((HOST, port), timeout=TIMEOUT_S) for _ in range(8)]
        for _ in range(turns):
            await asyncio.sleep(0)
        await net.close()
        loop = asyncio.get_running_loop()
        for sock in clients:
            # Under the handshake timeout (5 s): only close() can end it so soon.  The
            # server may have sent its challenge first.
            sock.settimeout(2.0)
            with contextlib.suppress(ConnectionResetError):
                while await loop.run_in_executor(None, sock.recv, 4096):
                    pass
            sock.close()

    asyncio.run(scenario())
