"""The peer wire protocol: frames, and the proofs of the handshake.

Each frame is a 4-byte big-endian length, then that many bytes: a kind byte and a
body.  Before any RAFT frame, a connection carries a mutual challenge in HELLO
frames (see :mod:`actors.raft.transport` for who sends what); each side proves it
holds the cluster secret with :func:`handshake_proof`, an HMAC-SHA256 over the
protocol label, its role, the other side's nonce and its own node id.  The role
is in the MAC so that no proof can be reflected back at its sender.

**Tagged nonces.**  A nonce is 32 bytes.  Nodes of this version start the nonces
they send with :data:`NONCE_TAG` and a flags byte, then 25 random bytes (200 bits,
still unguessable).  To a node of an earlier version a tagged nonce is just a
nonce, so the handshake between old and new nodes is unchanged; a new node reads
the tag to learn what the other side understands.  The one flag, :data:`PROBE`,
marks a dialer that only asks who the server is (:func:`probe_proof`).

**No secret.**  A cluster configured without a secret (the original's compose
files have none) proves :data:`NO_SECRET`, a key everyone knows: the handshake
still names each side, but authenticates nobody.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import struct

KIND_HELLO = 1
KIND_RAFT = 2
KIND_SNAPSHOT = 3  # a snapshot stream frame; its body is opaque to the transport
MAX_FRAME_BYTES = 64 << 20
MAX_HELLO_BYTES = 1024  # an unauthenticated peer never makes us buffer more than this
NONCE_BYTES = 32
MAC_BYTES = 32  # HMAC-SHA256
PROTOCOL_LABEL = b"scheduled-db/raft-transport/1\x00"
DIALER, SERVER = b"dialer", b"server"  # the role is in the MAC: no proof can be reflected
PROBED = b"probed-server"  # a server answering a probe: its claim carries more than its id
NONCE_TAG = b"sdb/2\x00"  # 6 bytes: the sender speaks this version (see above)
PROBE = 0x01  # flag: this dialer only asks who the server is
NO_SECRET = b"scheduled-db: no cluster secret"

_LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">IB")  # length, kind
LENGTH_BYTES = _LENGTH.size  # the length prefix, not counted in a frame's length


class FrameError(ValueError):
    """A connection broke the wire protocol: bounds, truncation, an unexpected kind."""


class AuthError(FrameError):
    """A handshake proof did not match, or named a node we do not talk to."""


def cluster_key(secret: bytes | None, cluster_id: str | None) -> bytes | None:
    """The key a node proves in the handshake: the cluster secret itself (None: no
    secret), or, for a cluster with an id (one made by ``scheduled-db restore`` or
    ``recover``), a key derived from the secret and the id.  A node of another
    cluster, or of the old cluster a new one was made from, then fails to prove
    it even with the same secret, and is refused as any stranger is."""
    if cluster_id is None:
        return secret
    label = b"scheduled-db cluster id\x00" + cluster_id.encode()
    return hmac.new(secret or NO_SECRET, label, hashlib.sha256).digest()


def handshake_proof(secret: bytes, role: bytes, nonce: bytes, node_id: str) -> bytes:
    """The answer of ``node_id``, acting as ``role``, to the challenge ``nonce``."""
    return hmac.new(
        secret, PROTOCOL_LABEL + role + nonce + node_id.encode(), hashlib.sha256
    ).digest()


def probe_proof(secret: bytes, nonce: bytes, claim: bytes) -> bytes:
    """A probed server's answer to the dialer's ``nonce``: its ``claim`` (node id, a NUL,
    then what it tells about itself) under the secret, in a role of its own."""
    return hmac.new(secret, PROTOCOL_LABEL + PROBED + nonce + claim, hashlib.sha256).digest()


def tagged_nonce(flags: int = 0) -> bytes:
    return NONCE_TAG + bytes([flags]) + secrets.token_bytes(NONCE_BYTES - len(NONCE_TAG) - 1)


def nonce_flags(nonce: bytes) -> int | None:
    """The flags of a tagged nonce; None for an untagged one (a node of an earlier
    version, or random bytes that are no nonce of ours)."""
    if len(nonce) != NONCE_BYTES or not nonce.startswith(NONCE_TAG):
        return None
    return nonce[len(NONCE_TAG)]


def frame(kind: int, body: bytes) -> bytes:
    return _HEADER.pack(len(body) + 1, kind) + body


async def read_frame(reader: asyncio.StreamReader, limit: int) -> tuple[int, bytes] | None:
    """The next frame's (kind, body), or None at a clean end of stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("truncated frame header") from None
        return None
    (size,) = _LENGTH.unpack(header)
    if not 0 < size <= limit:
        raise FrameError(f"frame length {size} out of bounds (limit {limit})")
    try:
        payload = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError(f"truncated frame ({size} bytes announced)") from None
    return payload[0], payload[1:]


async def read_hello(reader: asyncio.StreamReader) -> bytes:
    got = await read_frame(reader, MAX_HELLO_BYTES)
    if got is None:
        raise FrameError("connection closed during the handshake")
    if got[0] != KIND_HELLO:
        raise FrameError(f"frame kind {got[0]} during the handshake")
    return got[1]


async def dialer_hello(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    secret: bytes,
    node_id: str,
    nonce: bytes,
) -> bytes:
    """The dialer's half of the handshake up to the server's answer: read the
    server's challenge, prove the secret under it and send ``nonce`` (the server's
    challenge in turn) with our id; return the challenge (its flags tell the
    server's version)."""
    challenge = await read_hello(reader)
    if len(challenge) != NONCE_BYTES:
        raise FrameError("malformed challenge")
    proof = handshake_proof(secret, DIALER, challenge, node_id)
    writer.write(frame(KIND_HELLO, proof + nonce + node_id.encode()))
    await writer.drain()
    return challenge
