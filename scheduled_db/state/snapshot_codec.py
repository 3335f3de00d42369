"""The wire form of a state snapshot: a sequence of self-describing chunks.

A snapshot streams as chunks of at most about ``max_bytes`` each (at least one
key/value pair per chunk).  Every chunk repeats the snapshot metadata and
carries its sequence number, so a receiver can check it is continuing the
stream it started; the last chunk has ``last`` set.  Keys are strictly
increasing across the whole stream.

Encoding: :data:`CHUNK_VERSION` byte + msgpack
``[index, term, voters, learners, seq, [[key, value], ...], last]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from scheduled_db.raft.messages import ConfState, SnapshotMeta

CHUNK_VERSION = 1


class ChunkError(ValueError):
    """A chunk that is malformed or does not continue the stream being received."""


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    meta: SnapshotMeta
    seq: int
    pairs: tuple[tuple[bytes, bytes], ...]
    last: bool


@dataclass(frozen=True, slots=True)
class SnapshotCursor:
    """Where the next chunk of a stream starts: resumable and stateless for the sender."""

    seq: int
    after: bytes  # the last key sent


def encode_chunk(chunk: SnapshotChunk) -> bytes:
    cs = chunk.meta.conf_state
    body = [
        chunk.meta.index,
        chunk.meta.term,
        list(cs.voters),
        list(cs.learners),
        chunk.seq,
        [[k, v] for k, v in chunk.pairs],
        chunk.last,
    ]
    return bytes([CHUNK_VERSION]) + bytes(msgpack.packb(body, use_bin_type=True))


def _pairs(w: Any) -> tuple[tuple[bytes, bytes], ...]:
    out = []
    for k, v in w:
        if not isinstance(k, bytes) or not isinstance(v, bytes):
            raise ChunkError("a pair is not two byte strings")
        out.append((k, v))
    return tuple(out)


def decode_chunk(data: bytes) -> SnapshotChunk:
    """Decode a chunk; raise :class:`ChunkError` and nothing else if malformed."""
    if not data or data[0] != CHUNK_VERSION:
        raise ChunkError("unknown snapshot chunk version")
    try:
        index, term, voters, learners, seq, pairs, last = msgpack.unpackb(data[1:], raw=False)
        if not all(type(x) is int and x >= 0 for x in (index, term, seq)):
            raise ChunkError("bad chunk header")
        if not isinstance(last, bool) or not all(isinstance(v, str) for v in voters + learners):
            raise ChunkError("bad chunk header")
        meta = SnapshotMeta(index, term, ConfState(tuple(voters), tuple(learners)))
        return SnapshotChunk(meta, seq, _pairs(pairs), last)
    except ChunkError:
        raise
    except Exception as exc:
        raise ChunkError(f"malformed snapshot chunk: {type(exc).__name__}") from None
