"""Who answers at a Raft address: the probe a node sends to learn a peer's id.

The original's ``STATIC_PEERS`` lists peers by Raft address alone.  A node given
such a list dials each address with a *probe*: the usual handshake (see
:mod:`actors.raft.transport`), its nonce tagged with the :data:`~actors.raft.wire.PROBE`
flag.  A server of this version then answers with a claim instead of its bare
id: its node id, a NUL byte, and a small JSON object with where its REST API
listens (``http_host``, empty when it listens on every interface, and
``http_port``), the whole claim under :func:`~actors.raft.wire.probe_proof`.  It
closes the connection after: a probe never carries Raft messages.  The prober
thus learns, authenticated by the cluster secret as every handshake is, the
node id and the HTTP address (the host it dialled when the server listens on
every interface) of whoever answers at that address, itself included.

A server of an earlier version answers a probe as it would a link (its bare id,
and only to a dialer it knows); the prober then learns the id alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import ssl
from dataclasses import dataclass

from actors.raft.wire import (
    MAC_BYTES,
    PROBE,
    SERVER,
    AuthError,
    FrameError,
    dialer_hello,
    handshake_proof,
    nonce_flags,
    probe_proof,
    read_hello,
    tagged_nonce,
)

MAX_ID_BYTES = 64  # node ids are at most 64 characters (scheduled_db.config.kinds)
CLOSE_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class HttpEndpoint:
    """Where a node's REST API listens, as it tells a prober: ``host`` is empty when
    it listens on every interface (the prober then uses the host it dialled)."""

    host: str
    port: int

    def claim(self, node_id: str) -> bytes:
        info = json.dumps({"http_host": self.host, "http_port": self.port})
        return node_id.encode() + b"\0" + info.encode()


def probe_answer(secret: bytes, their_nonce: bytes, node_id: str, http: HttpEndpoint) -> bytes:
    """The HELLO body a server sends a prober."""
    claim = http.claim(node_id)
    return probe_proof(secret, their_nonce, claim) + claim


async def identify(
    host: str, port: int, node_id: str, secret: bytes, tls: ssl.SSLContext | None, timeout: float
) -> tuple[str, str]:
    """(node id, HTTP address or "") of the node at ``host:port``.  Raises OSError,
    TimeoutError, FrameError (AuthError: a proof that did not match), ssl.SSLError."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            host.strip("[]"), port, ssl=tls, server_hostname=host.strip("[]") if tls else None
        )
        try:
            return await _ask(host, reader, writer, node_id, secret)
        finally:
            writer.transport.abort()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await writer.wait_closed()


async def _ask(
    host: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    node_id: str,
    secret: bytes,
) -> tuple[str, str]:
    nonce = tagged_nonce(PROBE)
    challenge = await dialer_hello(reader, writer, secret, node_id, nonce)
    answer = await read_hello(reader)
    mac, claim = answer[:MAC_BYTES], answer[MAC_BYTES:]
    if nonce_flags(challenge) is None:  # a server of an earlier version: its bare id
        peer = _decode_id(claim)
        if not hmac.compare_digest(mac, handshake_proof(secret, SERVER, nonce, peer)):
            raise AuthError("the server did not prove the cluster secret")
        return peer, ""
    if not hmac.compare_digest(mac, probe_proof(secret, nonce, claim)):
        raise AuthError("the server did not prove the cluster secret")
    raw_id, _, info = claim.partition(b"\0")
    return _decode_id(raw_id), _http_address(host, info)


def _decode_id(raw: bytes) -> str:
    try:
        peer = raw.decode()
    except UnicodeDecodeError:
        raise FrameError("malformed node id in the answer") from None
    if not peer or len(raw) > MAX_ID_BYTES:
        raise FrameError("malformed node id in the answer")
    return peer


def _http_address(dialled: str, info: bytes) -> str:
    """The prober's view of the server's HTTP address; "" if the answer has none."""
    try:
        data = json.loads(info)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    host, port = data.get("http_host"), data.get("http_port")
    if not isinstance(host, str) or any(c.isspace() for c in host):
        return ""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        return ""
    host = host or dialled
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return f"{host}:{port}"
