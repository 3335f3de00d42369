"""The peer wire protocol: frames, and the proofs of the handshake.

Each frame is a 4-byte big-endian length, then that many bytes: a kind byte and a
body.  Before any RAFT frame, a connection carries a mutual challenge in HELLO
frames (see :mod:`actors.raft.transport` for who sends what); each side proves it
holds the cluster secret with :func:`handshake_proof`, an HMAC-SHA256 over the
protocol label, its role, the other side's nonce and its own node id.  The role
is in the MAC so that no proof can be reflected back at its sender.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
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

_LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">IB")  # length, kind
LENGTH_BYTES = _LENGTH.size  # the length prefix, not counted in a frame's length


class FrameError(ValueError):
    """A connection broke the wire protocol: bounds, truncation, an unexpected kind."""


class AuthError(FrameError):
    """A handshake proof did not match, or named a node we do not talk to."""


def handshake_proof(secret: bytes, role: bytes, nonce: bytes, node_id: str) -> bytes:
    """The answer of ``node_id``, acting as ``role``, to the challenge ``nonce``."""
    return hmac.new(
        secret, PROTOCOL_LABEL + role + nonce + node_id.encode(), hashlib.sha256
    ).digest()


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
