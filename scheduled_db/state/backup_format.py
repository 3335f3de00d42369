"""The backup file: one consistent state snapshot, self-checking, streamable.

``scheduled-db backup`` writes what ``GET /admin/snapshot`` sends, byte for byte;
``scheduled-db restore`` reads it.  Layout::

    MAGIC                                   10 bytes
    u32 n, header (msgpack map, n bytes)    where the state stands and what it holds
    u32 n, chunk (n bytes) ...              the snapshot chunks Raft installs
                                            (scheduled_db.state.snapshot_codec)
    u32 0                                   the end of the chunks
    sha256 of every byte before it          32 bytes

The header names the snapshot's ``index`` and ``term``, its members (``voters``,
``learners``), the state's digest (:func:`~scheduled_db.state.stateview.state_digest`,
the figure every replica reports for the same applied index), its ``keys`` and
``bytes`` (``size`` here: the sum of key and value lengths: a reader's progress measure), the node
that took it and when (``node``, ``taken_ms``).  A reader checks the chunk
sequence as a follower installing the snapshot would, and the checksum at the end:
a file cut short or changed anywhere is refused before anything is written from it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import msgpack

from scheduled_db.raft.messages import ConfState, SnapshotMeta
from scheduled_db.state.fsm import applied_position
from scheduled_db.state.queries import conf_state
from scheduled_db.state.snapshot_codec import ChunkError, SnapshotChunk, decode_chunk, encode_chunk
from scheduled_db.state.stateview import ALL_KEYS_END, StateView, digest_pair

MAGIC = b"SDBBACKUP\n"
FORMAT_VERSION = 1
MEDIA_TYPE = "application/vnd.scheduled-db.backup"
_LEN = struct.Struct(">I")
CHECKSUM_BYTES = 32
MAX_HEADER_BYTES = 1 << 20
MAX_CHUNK_BYTES = 256 << 20


class BackupFormatError(ValueError):
    """Not a backup file, a damaged one, or one cut short."""


@dataclass(frozen=True, slots=True)
class BackupHeader:
    index: int
    term: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    digest: str
    keys: int
    size: int  # the sum of key and value lengths
    node: str
    taken_ms: int

    def encode(self) -> bytes:
        body = {
            "version": FORMAT_VERSION,
            "index": self.index,
            "term": self.term,
            "voters": list(self.voters),
            "learners": list(self.learners),
            "digest": self.digest,
            "keys": self.keys,
            "bytes": self.size,
            "node": self.node,
            "taken_ms": self.taken_ms,
        }
        return bytes(msgpack.packb(body))


def decode_header(raw: bytes) -> BackupHeader:
    try:
        d = msgpack.unpackb(raw, raw=False)
        if d["version"] != FORMAT_VERSION:
            raise BackupFormatError(f"backup format version {d['version']}, this build reads 1")
        header = BackupHeader(
            int(d["index"]),
            int(d["term"]),
            tuple(str(v) for v in d["voters"]),
            tuple(str(v) for v in d["learners"]),
            str(d["digest"]),
            int(d["keys"]),
            int(d["bytes"]),
            str(d["node"]),
            int(d["taken_ms"]),
        )
    except BackupFormatError:
        raise
    except Exception:
        raise BackupFormatError("unreadable backup header") from None
    if header.index < 1 or header.term < 0:
        raise BackupFormatError("the backup header names no snapshot position")
    return header


def backup_header(view: StateView, node: str, taken_ms: int) -> BackupHeader:
    """The header of a backup of ``view`` (one pass over it, for the digest)."""
    index, term = applied_position(view)
    conf = conf_state(view)
    h, keys, size = hashlib.sha256(), 0, 0
    for k, v in view.iter_range(b"", ALL_KEYS_END):
        digest_pair(h, k, v)
        keys += 1
        size += len(k) + len(v)
    return BackupHeader(
        index, term, conf.voters, conf.learners, h.hexdigest(), keys, size, node, taken_ms
    )


def snapshot_chunks(view: StateView, header: BackupHeader, max_bytes: int) -> Iterator[bytes]:
    """``view`` as the chunks Raft sends a follower (at least one pair a chunk)."""
    meta = SnapshotMeta(header.index, header.term, ConfState(header.voters, header.learners))
    seq, batch, size = 0, list[tuple[bytes, bytes]](), 0
    for k, v in view.iter_range(b"", ALL_KEYS_END):
        if batch and size + len(k) + len(v) > max_bytes:
            yield encode_chunk(SnapshotChunk(meta, seq, tuple(batch), False))
            seq, batch, size = seq + 1, [], 0
        batch.append((k, v))
        size += len(k) + len(v)
    yield encode_chunk(SnapshotChunk(meta, seq, tuple(batch), True))


def backup_pieces(view: StateView, header: BackupHeader, max_bytes: int) -> Iterator[bytes]:
    """The whole backup file of ``view``, a piece at a time (magic and header, each
    chunk, the end and checksum)."""
    writer = BackupWriter()
    yield writer.start(header)
    for data in snapshot_chunks(view, header, max_bytes):
        yield writer.chunk(data)
    yield writer.finish()


def framed(data: bytes) -> bytes:
    """One length-prefixed piece (a header or a chunk)."""
    return _LEN.pack(len(data)) + data


END = _LEN.pack(0)


class BackupWriter:
    """Turns a header and chunks into the file's pieces, keeping the running checksum."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def piece(self, data: bytes) -> bytes:
        self._sha.update(data)
        return data

    def start(self, header: BackupHeader) -> bytes:
        return self.piece(MAGIC + framed(header.encode()))

    def chunk(self, data: bytes) -> bytes:
        return self.piece(framed(data))

    def finish(self) -> bytes:
        end = self.piece(END)
        return end + self._sha.digest()

    def checksum(self) -> str:
        return self._sha.hexdigest()


@dataclass(frozen=True, slots=True)
class BackupContents:
    header: BackupHeader
    checksum: str  # sha256 (hex) of the file before its checksum


class BackupReader:
    """Reads a backup file from a binary stream: :meth:`header`, then :meth:`chunks`."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._sha = hashlib.sha256()
        self._header: BackupHeader | None = None
        self.checksum = ""

    def _read(self, n: int, what: str) -> bytes:
        data = self._stream.read(n)
        if len(data) != n:
            raise BackupFormatError(f"the file ends inside {what}: it was cut short")
        self._sha.update(data)
        return data

    def _piece(self, limit: int, what: str) -> bytes:
        (n,) = _LEN.unpack(self._read(_LEN.size, what))
        if n > limit:
            raise BackupFormatError(f"{what} of {n} bytes is beyond any backup's")
        return self._read(n, what)

    def header(self) -> BackupHeader:
        if self._header is None:
            if self._stream.read(len(MAGIC)) != MAGIC:
                raise BackupFormatError("not a scheduled-db backup file")
            self._sha.update(MAGIC)
            self._header = decode_header(self._piece(MAX_HEADER_BYTES, "the header"))
        return self._header

    def chunks(self) -> Iterator[tuple[bytes, SnapshotChunk]]:
        """Each chunk (its bytes and decoded), checked to continue the stream; the
        checksum last.  Raises :class:`BackupFormatError` at the first fault."""
        header = self.header()
        seq, last_key, ended = 0, b"", False
        while True:
            data = self._piece(MAX_CHUNK_BYTES, "a chunk")
            if not data:
                break
            if ended:
                raise BackupFormatError("data after the last chunk")
            try:
                chunk = decode_chunk(data)
            except ChunkError as exc:
                raise BackupFormatError(f"chunk {seq}: {exc}") from None
            meta = chunk.meta
            if (meta.index, meta.term, chunk.seq) != (header.index, header.term, seq):
                raise BackupFormatError(f"chunk {seq} does not continue the snapshot")
            for k, _ in chunk.pairs:
                if k <= last_key and (seq or k != last_key):
                    raise BackupFormatError(f"chunk {seq}: keys out of order")
                last_key = k
            seq, ended = seq + 1, chunk.last
            yield data, chunk
        if not ended:
            raise BackupFormatError("the chunks end before the last one")
        expected = self._sha.hexdigest()
        got = self._stream.read(CHECKSUM_BYTES)
        if len(got) != CHECKSUM_BYTES:
            raise BackupFormatError("the file ends before its checksum: it was cut short")
        if got.hex() != expected:
            raise BackupFormatError("checksum mismatch: the file is damaged")
        if self._stream.read(1):
            raise BackupFormatError("data after the checksum")
        self.checksum = expected


def verify(stream: BinaryIO) -> BackupContents:
    """Read a whole backup, checking everything a restore relies on, the state's
    digest included (recomputed from the pairs)."""
    reader = BackupReader(stream)
    header = reader.header()
    h = hashlib.sha256()
    keys = 0
    for _, chunk in reader.chunks():
        for k, v in chunk.pairs:
            digest_pair(h, k, v)
            keys += 1
    if keys != header.keys or h.hexdigest() != header.digest:
        raise BackupFormatError("the state in the file does not match its header's digest")
    return BackupContents(header, reader.checksum)
