"""The Raft log, hard state and snapshot metadata: durable in RocksDB, read from memory.

:class:`RaftLogStore` implements the :class:`~scheduled_db.raft.storage.Storage`
protocol with exactly the semantics of ``MemoryStorage`` (a dummy position at
``first_index() - 1`` holding the term of the compaction point).  The Raft actor
reads it from its own thread while the StorageActor writes, so every access
takes a lock.  Writing is two steps: ``stage_*`` puts the change into a
WriteBatch; once that batch is durable, ``commit_*`` makes it visible in memory.
Memory holds only the tail since the last compaction.

Keys in the ``raft`` column family::

    b"hs"              [term, vote, commit]
    b"snap"            [index, term, voters, learners, state column family]
    b"dummy"           [index, term] of the compaction point (first_index - 1)
    b"e/" + be64(i)    [term, type, data] of entry i
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Any

import msgpack
from rocksdict import Rdict, WriteBatch

from actors.storage.datadir import raw_items
from scheduled_db.raft.messages import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from scheduled_db.raft.storage import CompactedError, UnavailableError, limit_size

HARD_STATE = b"hs"
SNAP = b"snap"
DUMMY = b"dummy"
ENTRY = b"e/"
_U64 = struct.Struct(">Q")


def entry_key(index: int) -> bytes:
    return ENTRY + _U64.pack(index)


def _pack(obj: Any) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True))


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """The snapshot metadata plus the state column family its checkpoint holds."""

    meta: SnapshotMeta
    state_cf: str


def encode_snapshot(rec: SnapshotRecord) -> bytes:
    cs = rec.meta.conf_state
    return _pack([rec.meta.index, rec.meta.term, list(cs.voters), list(cs.learners), rec.state_cf])


def decode_snapshot(raw: bytes) -> SnapshotRecord:
    index, term, voters, learners, cf = msgpack.unpackb(raw, raw=False)
    return SnapshotRecord(SnapshotMeta(index, term, ConfState(tuple(voters), tuple(learners))), cf)


def load_log(raft: Rdict) -> tuple[HardState, SnapshotRecord | None, list[Entry]]:
    """Read the raft column family; raise ValueError on anything inconsistent."""
    raw_hs = raft.get(HARD_STATE)
    hs = HardState() if raw_hs is None else HardState(*msgpack.unpackb(raw_hs, raw=False))
    raw_snap = raft.get(SNAP)
    snap = None if raw_snap is None else decode_snapshot(raw_snap)
    raw_dummy = raft.get(DUMMY)
    d_index, d_term = (0, 0) if raw_dummy is None else msgpack.unpackb(raw_dummy)
    ents = [Entry(d_term, d_index)]
    for k, v in raw_items(raft, entry_key(d_index + 1)):
        if not k.startswith(ENTRY):
            break
        index = _U64.unpack(k[len(ENTRY) :])[0]
        if index != ents[-1].index + 1:
            raise ValueError(f"log gap: entry {index} after {ents[-1].index}")
        term, kind, data = msgpack.unpackb(v, raw=False)
        ents.append(Entry(term, index, EntryType(kind), data))
    if snap is not None and snap.meta.index < d_index:
        raise ValueError(f"snapshot {snap.meta.index} is below the compaction point {d_index}")
    return hs, snap, ents


class RaftLogStore:
    """The node's Raft storage (see module doc).  ``ents[0]`` is the dummy position."""

    def __init__(
        self,
        hard_state: HardState,
        conf_state: ConfState,
        snapshot: SnapshotMeta,
        ents: list[Entry],
    ) -> None:
        self._lock = threading.Lock()
        self._hs = hard_state
        self._conf = conf_state
        self._snapshot = snapshot
        self._ents = ents

    # -- reads: the Storage protocol --

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The durable hard state and the membership as of the applied index."""
        with self._lock:
            return self._hs, self._conf

    def first_index(self) -> int:
        with self._lock:
            return self._ents[0].index + 1

    def last_index(self) -> int:
        with self._lock:
            return self._last()

    def _last(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, index: int) -> int:
        with self._lock:
            offset = self._ents[0].index
            if index < offset:
                raise CompactedError(index)
            if index - offset >= len(self._ents):
                raise UnavailableError(index)
            return self._ents[index - offset].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        with self._lock:
            offset = self._ents[0].index
            if lo <= offset:
                raise CompactedError(lo)
            if hi > self._last() + 1:
                raise UnavailableError(hi)
            return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def snapshot(self) -> Snapshot:
        """The last snapshot's metadata; its data is streamed by the StorageActor."""
        with self._lock:
            return Snapshot(self._snapshot)

    # -- reads for the owner --

    def hard_state(self) -> HardState:
        with self._lock:
            return self._hs

    def snapshot_meta(self) -> SnapshotMeta:
        with self._lock:
            return self._snapshot

    def bytes_between(self, lo: int, hi: int) -> int:
        """Sum of entry sizes for indexes in [lo, hi] that are in memory."""
        with self._lock:
            offset = self._ents[0].index
            return sum(e.size() for e in self._ents[max(1, lo - offset) : hi - offset + 1])

    def retained_from(self, index: int, max_entries: int, max_bytes: int) -> int:
        """The first index to keep so that at most ``max_entries`` entries, and at
        most ``max_bytes`` bytes of them, remain at or below ``index``."""
        with self._lock:
            offset = self._ents[0].index
            first, size = index + 1, 0
            while first - 1 > offset and index - first + 1 < max_entries:
                size += self._ents[first - 1 - offset].size()
                if size > max_bytes:
                    break
                first -= 1
            return first

    # -- writes: stage into a batch, commit to memory once the batch is durable --

    def stage_hard_state(self, wb: WriteBatch, cf: Any, hs: HardState) -> None:
        wb.put(HARD_STATE, _pack([hs.term, hs.vote, hs.commit]), cf)

    def stage_append(
        self, wb: WriteBatch, cf: Any, entries: list[Entry], bounds: tuple[int, int] | None = None
    ) -> list[Entry]:
        """Stage ``entries``, truncating a conflicting suffix; return what to commit.

        ``bounds`` overrides (first, last) index when appending after a staged reset.
        """
        with self._lock:
            first, last = bounds or (self._ents[0].index + 1, self._last())
        if not entries or entries[-1].index < first:
            return []
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        if entries[0].index > last + 1:
            raise UnavailableError(f"gap: appending {entries[0].index} after {last}")
        for e in entries:
            wb.put(entry_key(e.index), _pack([e.term, int(e.type), e.data]), cf)
        if entries[-1].index < last:
            wb.delete_range(entry_key(entries[-1].index + 1), entry_key(last + 1), cf)
        return entries

    def stage_snapshot(self, wb: WriteBatch, cf: Any, rec: SnapshotRecord, compact_to: int) -> None:
        """Record a snapshot and drop entries up to ``compact_to`` (the new dummy)."""
        wb.put(SNAP, encode_snapshot(rec), cf)
        term = rec.meta.term if compact_to == rec.meta.index else self.term(compact_to)
        wb.put(DUMMY, _pack([compact_to, term]), cf)
        wb.delete_range(entry_key(0), entry_key(compact_to + 1), cf)

    def stage_reset(self, wb: WriteBatch, cf: Any, rec: SnapshotRecord) -> None:
        """Restart the log after an installed snapshot (every entry goes)."""
        wb.put(SNAP, encode_snapshot(rec), cf)
        wb.put(DUMMY, _pack([rec.meta.index, rec.meta.term]), cf)
        wb.delete_range(entry_key(0), entry_key(2**64 - 1), cf)

    def commit_hard_state(self, hs: HardState) -> None:
        with self._lock:
            self._hs = hs

    def commit_append(self, entries: list[Entry]) -> None:
        if not entries:
            return
        with self._lock:
            del self._ents[entries[0].index - self._ents[0].index :]
            self._ents.extend(entries)

    def commit_snapshot(self, meta: SnapshotMeta, compact_to: int) -> None:
        with self._lock:
            self._snapshot = meta
            offset = self._ents[0].index
            if compact_to > offset:
                rest = self._ents[compact_to - offset :]
                self._ents = [Entry(rest[0].term, rest[0].index), *rest[1:]]

    def commit_reset(self, meta: SnapshotMeta) -> None:
        with self._lock:
            self._snapshot = meta
            self._conf = meta.conf_state
            self._ents = [Entry(meta.term, meta.index)]

    def commit_conf_state(self, conf: ConfState) -> None:
        with self._lock:
            self._conf = conf
