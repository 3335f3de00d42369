"""Raft's data types and their versioned msgpack wire encoding.

Every type here is a frozen dataclass: values cross actor and process
boundaries, so nothing mutable is ever shared.  The encoding is msgpack with a
leading version byte (never pickle); decoding anything malformed raises
:class:`DecodeError` and nothing else, so a transport can drop the frame and go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack

WIRE_VERSION = 1
NO_NODE = ""  # "no vote" / "no known leader"


class MessageType(IntEnum):
    """Messages exchanged between Raft peers."""

    APP = 1  # AppendEntries (also carries commit)
    APP_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    SNAP = 7  # InstallSnapshot
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    TIMEOUT_NOW = 10  # leadership transfer: campaign at once
    READ_INDEX = 11  # follower -> leader
    READ_INDEX_RESP = 12


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class ConfChangeType(IntEnum):
    ADD_VOTER = 0  # also promotes an existing learner
    ADD_LEARNER = 1
    REMOVE = 2


class DecodeError(ValueError):
    """Raised for any byte string that is not a valid encoding of this version."""


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        return len(self.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: str = NO_NODE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """A membership configuration: voters and learners, by node id."""

    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()

    def members(self) -> tuple[str, ...]:
        return self.voters + self.learners


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-server membership change, carried in a CONF_CHANGE entry."""

    type: ConfChangeType
    node_id: str
    context: bytes = b""

    def encode(self) -> bytes:
        return bytes(msgpack.packb([WIRE_VERSION, int(self.type), self.node_id, self.context]))

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        try:
            version, kind, node_id, context = msgpack.unpackb(data)
            if version != WIRE_VERSION or not isinstance(node_id, str):
                raise DecodeError("bad conf change")
            return ConfChange(ConfChangeType(kind), node_id, bytes(context))
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"malformed conf change: {exc}") from None


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot: metadata the core understands and data it treats as opaque."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the applied index reaches ``index``."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: str
    frm: str
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""
    # The leader's tick count when it sent APP, HEARTBEAT or SNAP; a follower's
    # response echoes it, so the leader knows how recent its quorum's contact is
    # (the leader lease, see Raft.lease_stamp).  0: none.
    stamp: int = 0


# --- encoding -----------------------------------------------------------------


def _entry_to_wire(e: Entry) -> list[Any]:
    return [e.term, e.index, int(e.type), e.data]


def _entry_from_wire(w: Any) -> Entry:
    term, index, kind, data = w
    return Entry(_uint(term), _uint(index), EntryType(kind), _bytes(data))


def _snapshot_to_wire(s: Snapshot | None) -> list[Any] | None:
    if s is None:
        return None
    cs = s.meta.conf_state
    return [s.meta.index, s.meta.term, list(cs.voters), list(cs.learners), s.data]


def _snapshot_from_wire(w: Any) -> Snapshot | None:
    if w is None:
        return None
    index, term, voters, learners, data = w
    conf = ConfState(tuple(_str(v) for v in voters), tuple(_str(v) for v in learners))
    return Snapshot(SnapshotMeta(_uint(index), _uint(term), conf), _bytes(data))


def _uint(v: Any) -> int:
    if type(v) is not int or v < 0:
        raise DecodeError("expected a non-negative integer")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise DecodeError("expected a string")
    return v


def _bytes(v: Any) -> bytes:
    if not isinstance(v, bytes):
        raise DecodeError("expected bytes")
    return v


def encode_message(m: Message) -> bytes:
    """Encode ``m`` as a version byte followed by a msgpack array."""
    body = [
        int(m.type),
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        [_entry_to_wire(e) for e in m.entries],
        m.commit,
        m.reject,
        m.reject_hint,
        _snapshot_to_wire(m.snapshot),
        m.context,
        m.stamp,
    ]
    return bytes([WIRE_VERSION]) + bytes(msgpack.packb(body, use_bin_type=True))


def decode_message(data: bytes) -> Message:
    """Decode a frame made by :func:`encode_message`; raise DecodeError otherwise."""
    if not data:
        raise DecodeError("empty frame")
    if data[0] != WIRE_VERSION:
        raise DecodeError(f"unsupported wire version {data[0]}")
    try:
        w = msgpack.unpackb(data[1:], raw=False, strict_map_key=True)
        # A 12-field body comes from a node without leader leases: stamp 0 (none).
        stamp = w.pop() if len(w) == 13 else 0
        (kind, to, frm, term, log_term, index, entries, commit, reject, hint, snap, ctx) = w
        if not isinstance(reject, bool):
            raise DecodeError("reject must be a bool")
        return Message(
            type=MessageType(kind),
            to=_str(to),
            frm=_str(frm),
            term=_uint(term),
            log_term=_uint(log_term),
            index=_uint(index),
            entries=tuple(_entry_from_wire(e) for e in entries),
            commit=_uint(commit),
            reject=reject,
            reject_hint=_uint(hint),
            snapshot=_snapshot_from_wire(snap),
            context=_bytes(ctx),
            stamp=_uint(stamp),
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack, unpacking, enum and type errors alike
        raise DecodeError(f"malformed message: {type(exc).__name__}") from None
