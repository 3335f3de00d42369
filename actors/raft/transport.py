"""The TransportActor: carries Raft messages between the nodes of a cluster over TCP.

The contract, in plain words:

- :class:`~actors.raft.messages.SendMessages` queues each message for the peer named by its
  ``to``; a message for a node that is not in the peer map is dropped (debug log).
  Sending is fire and forget: the actor thread never waits on the network.
- Each peer has one queue, bounded in messages and in bytes, and one outbound
  connection, dialled when the first message for it is queued and used only to
  send.  A full queue drops its oldest message and counts it: Raft retransmits what
  matters, and a slow or dead peer can neither block the node nor grow its memory.
  A failed dial or a broken connection is retried with exponential backoff and
  jitter; the queue is kept meanwhile.
- Inbound connections are only read from.  A Raft message that arrives on an
  authenticated connection, in the name of the node it authenticated as and
  addressed to this node, is told to the inbox as
  :class:`~actors.raft.messages.PeerMessage`; any other is dropped with a warning.
- When dialling a peer fails or its connection breaks, the inbox is told
  :class:`~actors.raft.messages.ReportUnreachable` once, and not again until a
  connection to that peer has been made.
- Anything malformed (an oversize length, a truncated or undecodable frame, a failed
  handshake) closes that one connection with a WARNING; it never stops the actor.

The wire: each frame is a 4-byte big-endian length, then that many bytes: a kind
byte and a body.  A connection starts with a mutual challenge (HELLO frames)::

    server -> dialer  nonce_s                       (32 random bytes)
    dialer -> server  mac(DIALER, nonce_s, dialer_id) + nonce_d + dialer_id
    server -> dialer  mac(SERVER, nonce_d, server_id) + server_id

where ``mac`` is :func:`~actors.raft.wire.handshake_proof` (HMAC-SHA256 under the
cluster secret); the frames and proofs themselves are in :mod:`actors.raft.wire`.
The server accepts only a node in its peer map (add a new member with SetPeers
before it connects); the dialer accepts only the node it meant to reach, so it never
hands Raft messages to an impostor.  Then RAFT frames flow from dialer to server,
each body made by :func:`~scheduled_db.raft.messages.encode_message`, and SNAPSHOT
frames, whose bodies the transport does not read: it tells them to the snapshot
inbox as :class:`~actors.raft.messages.SnapshotFrame` (see :mod:`actors.raft.snapshot_stream`).
Nonces are tagged (:mod:`actors.raft.wire`), which nodes of earlier versions do not
notice: old and new nodes handshake as before.

Probes: given ``identify`` addresses (the original's ``STATIC_PEERS``, Raft
addresses without ids), the transport dials each, with backoff until it answers,
to learn who is there (:mod:`actors.raft.identify`), and tells the inbox
:class:`~actors.raft.messages.PeerIdentified`.  A server answers a probe from any
node that proves the secret, peer or not, and closes the connection after.

``secret`` None is the original's way, a cluster with no secret: every proof is
made with a key everyone knows (:data:`~actors.raft.wire.NO_SECRET`), so peers are
named but not authenticated; the node warns about it at start.

With ``tls`` (:class:`~actors.runtime.tls.RaftTls`) every connection is mutual TLS first and
the handshake above runs inside it: the dialer checks the server's certificate and
host name, the server the dialer's certificate; a failure counts as an
authentication failure on the side that saw it.  The server starts TLS itself on
the accepted connection rather than letting asyncio do it, so that a failed TLS
handshake is logged and counted like a failed HMAC one instead of vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import secrets
import ssl
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

import pykka

from actors.raft.identify import HttpEndpoint, identify, probe_answer
from actors.raft.messages import (
    GetPeerSender,
    GetTransportStatus,
    PeerIdentified,
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
from actors.raft.wire import (
    DIALER,
    KIND_HELLO,
    KIND_RAFT,
    KIND_SNAPSHOT,
    LENGTH_BYTES,
    MAC_BYTES,
    MAX_FRAME_BYTES,
    NO_SECRET,
    NONCE_BYTES,
    PROBE,
    SERVER,
    AuthError,
    FrameError,
    dialer_hello,
    frame,
    handshake_proof,
    nonce_flags,
    read_frame,
    read_hello,
    tagged_nonce,
)
from actors.runtime.loop_thread import LoopThread
from actors.runtime.replies import ActorRef, answer
from actors.runtime.tls import RaftTls
from scheduled_db.raft.messages import DecodeError, Message, decode_message, encode_message

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 4 << 20  # one write gathers queued frames up to about this much
MAX_QUEUED = 4096  # messages per peer
MAX_QUEUED_BYTES = 64 << 20  # and bytes per peer
HANDSHAKE_TIMEOUT_S = 5.0
ACCEPT_TURNS = 4  # loop turns from a listener's accept to its connection's task
WRITE_TIMEOUT_S = 10.0  # a peer that takes no bytes for this long is treated as gone
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
CLOSE_WAIT_S = 1.0
MAX_SHOWN_ID = 64  # characters of a claimed node id a log line shows

Address = tuple[str, int]


def _claimed(peer: str) -> str:
    """A node id an unauthenticated dialler claimed, as a log line may show it: cut
    short, since whoever dials the Raft port chooses it (up to ~1 KB)."""
    return repr(peer[:MAX_SHOWN_ID]) + ("..." if len(peer) > MAX_SHOWN_ID else "")


async def _close(writer: asyncio.StreamWriter) -> None:
    # Abort rather than close: nothing left unsent matters, and a dead peer could
    # hold a graceful close (which flushes first) open forever.  The wait is bounded
    # because asyncio never tells a stream that its TLS upgrade was cut short (a
    # handshake timeout), and its wait_closed() would then never return.
    writer.transport.abort()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(CLOSE_WAIT_S):
            await writer.wait_closed()


class _Link:
    """The outbound side of one peer.  Changed only on the loop thread; the counters
    are read, a moment stale perhaps, by the actor thread."""

    def __init__(self, peer: str, address: Address) -> None:
        self.peer = peer
        self.address = address
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.inbound: asyncio.StreamWriter | None = None  # the latest one it dialled in on
        self.reported = False  # ReportUnreachable told in this failure episode
        self.connected = False
        self.sent = self.received = self.dropped = self.rejected = self.connect_failures = 0


class _Network:
    """Everything the loop thread owns: the server, the links, the inbound readers."""

    def __init__(
        self,
        node_id: str,
        secret: bytes,
        peers: Mapping[str, Address],
        inbox: ActorRef | None,
        cap: int,
        tls: RaftTls | None,
        identify: tuple[Address, ...] = (),
        http: HttpEndpoint | None = None,
    ) -> None:
        self.node_id = node_id
        self._secret = secret
        self._tls = tls
        self._initial_peers = dict(peers)
        self._to_identify = identify
        self._identified: dict[str, PeerIdentified] = {}  # by address, as listed
        self._http = http if http is not None else HttpEndpoint("", 0)
        self._inbox: ActorRef | None = inbox
        self._snapshots: ActorRef | None = None
        self._cap = cap
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()  # guards the shape of _links against status()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._server: asyncio.Server | None = None
        self._rng = random.Random()
        self.auth_failures = self.bad_frames = 0

    # --- called from the actor thread ------------------------------------------------------

    def status(self, port: int) -> TransportStatus:
        with self._lock:
            links = sorted(self._links.values(), key=lambda link: link.peer)
        peers = tuple(
            PeerLinkStatus(
                k.peer, k.connected, len(k.queue), k.sent, k.received, k.dropped, k.rejected,
                k.connect_failures,
            )
            for k in links
        )  # fmt: skip
        return TransportStatus(self.node_id, port, self.auth_failures, self.bad_frames, peers)

    # --- lifecycle (loop thread) -----------------------------------------------------------

    async def open(self, listen: Address) -> int:
        self._server = await asyncio.start_server(self._accept, listen[0].strip("[]"), listen[1])
        self.set_peers(self._initial_peers)
        for address in self._to_identify:
            self._spawn(self._identify(address))
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        # A connection the listener has accepted reaches _accept some loop turns later
        # (asyncio attaches it to the server, then starts the task).  Closing the
        # server in between leaks its socket in asyncio 3.11 (the attach fails and the
        # socket is never closed); and a task started after the list below is taken
        # would be left pending.  So: refuse new work (_accept closes what arrives
        # now), give accepted connections those turns, close the listener, then cancel
        # until no task is left.
        self._closing = True
        for _ in range(ACCEPT_TURNS):
            await asyncio.sleep(0)
        if self._server is not None:
            self._server.close()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), STOP_TIMEOUT_S / 2)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("transport: %s failed", task.get_name(), exc_info=task.exception())

    # --- messages from the actor (loop thread) ---------------------------------------------

    def set_inbox(self, inbox: ActorRef | None, snapshots: ActorRef | None) -> None:
        self._inbox, self._snapshots = inbox, snapshots
        for found in self._identified.values():  # those found before there was an inbox
            self._tell(found)

    def set_peers(self, peers: Mapping[str, Address]) -> None:
        wanted = {p: (str(h), int(port)) for p, (h, port) in peers.items() if p != self.node_id}
        for peer, link in list(self._links.items()):
            if peer not in wanted:
                self._forget(link)
            elif wanted[peer] != link.address:
                link.address = wanted[peer]
                if link.task is not None:
                    self._dial_again(link)
        with self._lock:
            for peer, address in wanted.items():
                self._links.setdefault(peer, _Link(peer, address))

    def _forget(self, link: _Link) -> None:
        with self._lock:
            del self._links[link.peer]
        if link.task is not None:
            link.task.cancel()  # its connection is closed on the way out
        if link.inbound is not None:
            link.inbound.transport.abort()
        link.queue.clear()
        link.queued_bytes = 0
        log.info("transport: %s is no longer a peer", link.peer)

    def _dial_again(self, link: _Link) -> None:
        if link.task is not None:
            link.task.cancel()
        link.reported = False
        link.task = self._spawn(self._keep_connected(link))

    def enqueue(self, frames: list[tuple[str, bytes]]) -> None:
        woken: set[_Link] = set()
        for peer, data in frames:
            link = self._links.get(peer)
            if link is None:
                log.debug("transport: no address for %s; message dropped", peer)
                continue
            while link.queue and (
                len(link.queue) >= self._cap or link.queued_bytes + len(data) > MAX_QUEUED_BYTES
            ):
                link.queued_bytes -= len(link.queue.popleft())  # the oldest: Raft has moved on
                link.dropped += 1
            link.queue.append(data)
            link.queued_bytes += len(data)
            woken.add(link)
        for link in woken:
            if link.task is None or link.task.done():  # done: it crashed, and said so
                self._dial_again(link)
            link.wake.set()

    # --- probes (loop thread) --------------------------------------------------------------

    async def _identify(self, address: Address) -> None:
        """Probe ``address`` until it answers; then tell the inbox who it is."""
        host, port = address
        failures = 0
        while True:
            try:
                client = self._tls.client if self._tls is not None else None
                peer, http = await identify(
                    host, port, self.node_id, self._secret, client, HANDSHAKE_TIMEOUT_S
                )
                break
            except (OSError, TimeoutError, FrameError) as exc:  # ssl.SSLError is an OSError
                failures += 1
                self._probe_failed(host, port, exc, failures)
                await asyncio.sleep(self._backoff(failures))
        found = PeerIdentified(f"{host}:{port}", peer, http)
        self._identified[found.address] = found
        log.info("transport: %s at %s (REST API %s)", peer, found.address, http or "not said")
        self._tell(found)

    def _probe_failed(self, host: str, port: int, exc: BaseException, failures: int) -> None:
        if isinstance(exc, AuthError | ssl.SSLError):
            self.auth_failures += 1
            log.warning("transport: %s:%d failed to authenticate: %s", host, port, exc)
        elif failures == 1:
            log.info("transport: waiting for %s:%d to answer: %r", host, port, exc)
        else:
            log.debug("transport: %s:%d still does not answer: %r", host, port, exc)

    # --- outbound (loop thread) ------------------------------------------------------------

    async def _keep_connected(self, link: _Link) -> None:
        """Dial the peer and send its queue, again and again, until cancelled."""
        failures = 0
        while True:
            try:
                reader, writer = await self._dial(link)
            except (OSError, TimeoutError, FrameError) as exc:
                failures += 1
                link.connect_failures += 1
                self._unreachable(link, exc)
                await asyncio.sleep(self._backoff(failures))
                continue
            failures = 0
            link.reported, link.connected = False, True
            try:
                await self._pump(link, reader, writer)
            except (OSError, TimeoutError) as exc:
                self._unreachable(link, exc)
            finally:
                link.connected = False
                await _close(writer)
            await asyncio.sleep(self._backoff(1))

    def _backoff(self, failures: int) -> float:
        ceiling = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(failures - 1, 16))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _unreachable(self, link: _Link, exc: BaseException) -> None:
        if isinstance(exc, AuthError | ssl.SSLError):
            self.auth_failures += 1
            host, port = link.address
            log.warning(
                "transport: %s at %s:%d failed to authenticate: %s", link.peer, host, port, exc
            )
        if link.reported:
            log.debug("transport: %s still unreachable: %r", link.peer, exc)
            return
        link.reported = True
        log.info("transport: %s at %s:%d unreachable: %r", link.peer, *link.address, exc)
        self._tell(ReportUnreachable(link.peer))

    async def _dial(self, link: _Link) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = link.address
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            reader, writer = await self._connect(host.strip("[]"), port)
            try:
                await self._prove_to_server(link.peer, reader, writer)
            except BaseException:
                await _close(writer)
                raise
        return reader, writer

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._tls is None:
            return await asyncio.open_connection(host, port)
        # The member address is the name the peer's certificate must carry.
        return await asyncio.open_connection(host, port, ssl=self._tls.client, server_hostname=host)

    async def _prove_to_server(
        self, peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonce = secrets.token_bytes(NONCE_BYTES)
        await dialer_hello(reader, writer, self._secret, self.node_id, nonce)
        answer = await read_hello(reader)
        expected = handshake_proof(self._secret, SERVER, nonce, peer) + peer.encode()
        if not hmac.compare_digest(answer, expected):
            raise AuthError("the server did not prove the cluster secret and its node id")

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Write the queue out, many frames per write, until the connection breaks."""
        watcher = self._spawn(self._watch(link, reader))
        try:
            while True:
                if not link.queue:
                    link.wake.clear()
                    await link.wake.wait()
                if watcher.done():
                    raise ConnectionResetError("closed by the peer")
                batch, size = [], 0
                while link.queue and size < MAX_BATCH_BYTES:
                    batch.append(link.queue.popleft())
                    size += len(batch[-1])
                link.queued_bytes -= size
                writer.writelines(batch)
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await writer.drain()
                link.sent += len(batch)
        finally:
            watcher.cancel()

    @staticmethod
    async def _watch(link: _Link, reader: asyncio.StreamReader) -> None:
        # The server never writes after the handshake: a byte or the end of the
        # stream both mean this connection is over.  Wake the pump to notice.
        with contextlib.suppress(OSError):
            await reader.read(1)
        link.wake.set()

    # --- inbound (loop thread) -------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closing:  # accepted as the listener closed
            await _close(writer)
            return
        self._tasks.add(task)  # the server made this task: track it to cancel it on close
        task.add_done_callback(self._reap)
        # Only close() cancels this task.  Ending it normally matters: asyncio 3.11
        # logs a spurious error for a cancelled connection task.
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self._serve(reader, writer)
            finally:
                await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername", ("?", 0))[:2]
        where = f"{host}:{port}"
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                if self._tls is not None:
                    await writer.start_tls(self._tls.server)
                peer = await self._challenge(reader, writer)
                if peer is None:  # a probe, answered: it carries nothing more
                    await writer.drain()
                    return
        except (FrameError, TimeoutError, ssl.SSLError) as exc:
            self.auth_failures += 1
            log.warning("transport: handshake with %s failed: %r", where, exc)
            return
        except OSError as exc:
            log.debug("transport: handshake with %s broken: %r", where, exc)
            return
        link = self._links[peer]
        if link.inbound is not None:
            link.inbound.transport.abort()  # the peer has dialled anew: the old one is dead
        link.inbound = writer
        try:
            await self._read_raft(link, reader)
        except (FrameError, DecodeError) as exc:
            self.bad_frames += 1
            log.warning("transport: closing the connection from %s (%s): %s", peer, where, exc)
        except OSError as exc:
            log.debug("transport: connection from %s broken: %r", peer, exc)
        finally:
            if link.inbound is writer:
                link.inbound = None

    async def _challenge(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str | None:
        """The server's half of the handshake; the authenticated node id, or None
        for a probe (answered here)."""
        nonce = tagged_nonce()
        writer.write(frame(KIND_HELLO, nonce))
        await writer.drain()
        hello = await read_hello(reader)
        proof, rest = hello[:MAC_BYTES], hello[MAC_BYTES:]
        their_nonce, raw_id = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        try:
            peer = raw_id.decode()
        except UnicodeDecodeError:
            raise AuthError("malformed node id") from None
        if not peer or len(their_nonce) != NONCE_BYTES:
            raise AuthError("malformed hello")
        if not hmac.compare_digest(proof, handshake_proof(self._secret, DIALER, nonce, peer)):
            raise AuthError(f"wrong proof of the cluster secret for {_claimed(peer)}")
        if (nonce_flags(their_nonce) or 0) & PROBE:
            writer.write(
                frame(KIND_HELLO, probe_answer(self._secret, their_nonce, self.node_id, self._http))
            )
            log.debug("transport: told %s who this node is", _claimed(peer))
            return None
        if peer not in self._links:
            raise AuthError(f"{_claimed(peer)} is not a peer of this node")
        answer = handshake_proof(self._secret, SERVER, their_nonce, self.node_id)
        writer.write(frame(KIND_HELLO, answer + self.node_id.encode()))
        return peer

    async def _read_raft(self, link: _Link, reader: asyncio.StreamReader) -> None:
        while (got := await read_frame(reader, MAX_FRAME_BYTES)) is not None:
            kind, body = got
            if kind == KIND_RAFT:
                self._deliver(link, decode_message(body))
            elif kind == KIND_SNAPSHOT:
                link.received += 1
                self._tell_to(self._snapshots, SnapshotFrame(link.peer, body))
            else:
                raise FrameError(f"unexpected frame kind {kind}")

    def _deliver(self, link: _Link, msg: Message) -> None:
        if msg.frm != link.peer or msg.to != self.node_id:
            link.rejected += 1
            log.warning(
                "transport: dropped a message %s -> %s that came from %s",
                msg.frm, msg.to, link.peer,
            )  # fmt: skip
            return
        link.received += 1
        self._tell(PeerMessage(msg))

    def _tell(self, message: Any) -> None:
        self._tell_to(self._inbox, message)

    @staticmethod
    def _tell_to(inbox: ActorRef | None, message: Any) -> None:
        if inbox is None:
            log.debug("transport: no inbox; %s dropped", type(message).__name__)
            return
        try:
            inbox.tell(message)
        except pykka.ActorDeadError:
            log.debug("transport: the inbox is gone; %s dropped", type(message).__name__)


class TransportActor(pykka.ThreadingActor):
    """Sends and receives Raft messages for node ``node_id``; see the module docstring.

    ``listen`` is the (host, port) to serve on (port 0: any free one; the bound
    port is the ``port`` attribute once started, and in :class:`TransportStatus`).
    ``peers`` maps node ids to (host, port); an entry for ``node_id`` is ignored.
    ``tls``, if given, puts every connection inside mutual TLS (module docstring).
    ``secret`` None: no cluster secret, peers unauthenticated (module docstring).
    ``identify`` are addresses to probe; ``http`` is what this node tells probers.
    Raises ValueError for an empty ``secret`` or a ``max_queued`` below 1.
    """

    def __init__(
        self,
        node_id: str,
        listen: Address,
        peers: Mapping[str, Address],
        secret: bytes | None,
        inbox: ActorRef | None = None,
        max_queued: int = MAX_QUEUED,
        tls: RaftTls | None = None,
        identify: tuple[Address, ...] = (),
        http: HttpEndpoint | None = None,
    ) -> None:
        super().__init__()
        if secret is not None and not secret:
            raise ValueError("the cluster secret must not be empty (None: no secret)")
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self.node_id = node_id
        self.port = 0
        self._listen = listen
        key = NO_SECRET if secret is None else secret
        self._net = _Network(node_id, key, peers, inbox, max_queued, tls, identify, http)
        self._lt: LoopThread | None = None

    def on_start(self) -> None:
        self._lt = LoopThread(f"transport-{self.node_id}")
        self.port = self._lt.start(self._net.open(self._listen), START_TIMEOUT_S, self._net.close)
        log.info("transport: listening on %s:%d", self._listen[0], self.port)

    def on_stop(self) -> None:
        """Close every connection and the server, within STOP_TIMEOUT_S; idempotent."""
        if self._lt is not None:
            self._lt.stop(self._net.close, STOP_TIMEOUT_S)

    def on_failure(self, *exc_info: object) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> None:
        lt = self._lt
        assert lt is not None, "on_start creates the loop before any message"
        if isinstance(message, SendMessages):
            frames = _encode(message.messages)
            if frames:
                lt.call(self._net.enqueue, frames)
        elif isinstance(message, GetPeerSender):
            answer(message.reply, PeerSender(lt, self._net))
        elif isinstance(message, SetPeers):
            peers = {p.node_id: (p.host, p.port) for p in message.peers}
            lt.call(self._net.set_peers, peers)
        elif isinstance(message, SendSnapshotFrame):
            data = frame(KIND_SNAPSHOT, message.data)
            if len(data) - LENGTH_BYTES <= MAX_FRAME_BYTES:
                lt.call(self._net.enqueue, [(message.to, data)])
            else:
                log.warning("transport: a %d-byte snapshot frame is too big", len(data))
        elif isinstance(message, SetTransportInbox):
            lt.call(self._net.set_inbox, message.inbox, message.snapshots)
        elif isinstance(message, GetTransportStatus):
            lt.call(lambda: answer(message.reply, self._net.status(self.port)))
        else:
            log.warning("transport: ignoring unexpected message %r", type(message).__name__)


def _encode(msgs: tuple[Message, ...]) -> list[tuple[str, bytes]]:
    # Encoded on the sender's thread, so the loop only moves bytes.
    frames = []
    for msg in msgs:
        data = frame(KIND_RAFT, encode_message(msg))
        if len(data) - LENGTH_BYTES > MAX_FRAME_BYTES:
            log.warning("transport: a %d-byte message to %s is too big", len(data), msg.to)
            continue
        frames.append((msg.to, data))
    return frames


class PeerSender:
    """What :class:`SendMessages` and :class:`SetPeers` do, from the caller's thread.

    The Raft actor sends through this rather than by telling the actor: the messages
    are encoded on its own thread and queued on the transport's loop directly, one
    thread hand-off a send instead of two (the actor's thread woken, then the loop's).
    Sends and peer maps keep their order, both going through the loop's queue; what
    the actor is told (snapshot frames, status) is ordered with them only as far as
    it reaches the loop in turn.  Once the transport has stopped, both are dropped,
    as messages to an unreachable peer are: Raft sends again what matters.
    """

    def __init__(self, loop_thread: LoopThread, network: _Network) -> None:
        self._lt = loop_thread
        self._net = network

    def send(self, msgs: tuple[Message, ...]) -> None:
        frames = _encode(msgs)
        if frames:
            self._call(self._net.enqueue, frames)

    def set_peers(self, peers: Mapping[str, Address]) -> None:
        self._call(self._net.set_peers, dict(peers))

    def _call(self, fn: Any, arg: Any) -> None:
        try:
            self._lt.call(fn, arg)
        except RuntimeError:  # the loop is closed: the transport has stopped
            log.debug("transport: stopped; %s dropped", getattr(fn, "__name__", "a call"))
