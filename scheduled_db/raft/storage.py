"""The storage contract the Raft core reads, and an in-memory implementation.

The core only *reads* storage.  Writing is the host's job: it takes a
:class:`~scheduled_db.raft.core.Ready`, makes its snapshot, hard state and
entries durable (in that order, atomically if it can), and only then sends the
Ready's messages and calls ``advance()``.

Bootstrap: every initial member of a cluster starts from the same snapshot at
index 1 (term 1) holding the initial membership (:func:`bootstrap_snapshot`).
Membership therefore always lives in replicated state, and a node that joins
later with an empty log catches up by InstallSnapshot, never by replaying a log
that lacks the initial configuration.

Index conventions: the storage holds a *dummy* position at ``first_index() - 1``
whose term is known (the last compacted entry, or the snapshot's index), so the
core can always check the term of the entry before the first one it has.
"""

from __future__ import annotations

from typing import Protocol

from scheduled_db.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta


class StorageError(Exception):
    """Base of the errors a Storage raises for indexes it cannot serve."""


class CompactedError(StorageError):
    """The index asked for is at or below the last compaction point."""


class UnavailableError(StorageError):
    """The index asked for is above the last index."""


class SnapshotOutOfDateError(StorageError):
    """The snapshot offered is older than the one already held."""


class Storage(Protocol):
    """What the core reads.  Every method is a pure read of durable state."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The durable hard state and the membership as of the snapshot/applied state."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); at least one if any, then up to ``max_size`` bytes.

        Raises CompactedError if ``lo <= compaction point``, UnavailableError if
        ``hi > last_index() + 1``.
        """
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; valid from ``first_index() - 1``.

        Raises CompactedError / UnavailableError outside that range.
        """
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (an empty one if none was taken)."""
        ...


BOOTSTRAP_INDEX = 1
BOOTSTRAP_TERM = 1


def bootstrap_snapshot(voters: tuple[str, ...]) -> Snapshot:
    """The snapshot every initial member starts from (empty state data)."""
    meta = SnapshotMeta(BOOTSTRAP_INDEX, BOOTSTRAP_TERM, ConfState(tuple(sorted(voters))))
    return Snapshot(meta, b"")


def limit_size(entries: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix within ``max_size`` bytes, but never fewer than one entry."""
    if max_size is None or not entries:
        return entries
    total = 0
    for i, e in enumerate(entries):
        total += e.size()
        if total > max_size and i > 0:
            return entries[:i]
    return entries


class MemoryStorage:
    """An in-memory Storage for tests and the simulator.

    ``ents[0]`` is the dummy position (index = snapshot index, term = its term).
    """

    def __init__(self) -> None:
        self.hard_state = HardState()
        self._snapshot = Snapshot()
        self.ents: list[Entry] = [Entry(0, 0)]

    # -- reads (the Storage protocol) --

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.meta.conf_state

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1

    def term(self, index: int) -> int:
        offset = self.ents[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self.ents):
            raise UnavailableError(index)
        return self.ents[index - offset].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self.ents[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        return limit_size(self.ents[lo - offset : hi - offset], max_size)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes (the host's side) --

    def bootstrap(self, voters: tuple[str, ...]) -> None:
        """Start as an initial member of a new cluster of ``voters``."""
        if self.last_index() > 0 or self.hard_state != HardState():
            raise ValueError("storage already holds state: refusing to bootstrap twice")
        self.apply_snapshot(bootstrap_snapshot(voters))
        self.hard_state = HardState(BOOTSTRAP_TERM, "", BOOTSTRAP_INDEX)

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append, truncating any conflicting suffix first."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self.ents[0].index
        if offset > len(self.ents):
            raise UnavailableError(f"gap: appending {entries[0].index} after {self.last_index()}")
        del self.ents[offset:]
        self.ents.extend(entries)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace everything with ``snap`` (the log restarts after it)."""
        if snap.meta.index < self._snapshot.meta.index:
            raise SnapshotOutOfDateError(snap.meta.index)
        self._snapshot = snap
        self.ents = [Entry(snap.meta.term, snap.meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the applied state at ``index`` (which must be in the log)."""
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDateError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        self._snapshot = Snapshot(SnapshotMeta(index, self.term(index), conf_state), data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries before ``index`` (``index`` becomes the dummy)."""
        offset = self.ents[0].index
        if index <= offset:
            raise CompactedError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        self.ents = self.ents[index - offset :]
        self.ents[0] = Entry(self.ents[0].term, self.ents[0].index)
