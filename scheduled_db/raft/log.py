"""The Raft log as the core sees it: durable storage plus an unstable tail.

Entries and a snapshot that the core has accepted but the host has not yet
reported durable live in the *unstable* part.  ``committed`` and ``applied`` are
tracked here too; ``applied <= committed <= last_index()`` always.
"""

from __future__ import annotations

from scheduled_db.raft.messages import Entry, Snapshot
from scheduled_db.raft.storage import CompactedError, Storage, UnavailableError, limit_size


class RaftLogError(Exception):
    """An impossible request on the log: a bug in the caller, not a runtime fault."""


class RaftLog:
    def __init__(self, storage: Storage, applied: int = 0) -> None:
        self.storage = storage
        first, last = storage.first_index(), storage.last_index()
        self.unstable: list[Entry] = []
        self.unstable_offset = last + 1  # index of unstable[0]
        self.unstable_snapshot: Snapshot | None = None
        self.committed = first - 1
        self.applied = max(first - 1, applied)
        # Lowest index whose entry may have changed since an observer last looked.
        # Only the simulator's checker reads and resets it (cheap, and it makes an
        # incremental Log Matching check sound).
        self.dirty_from = 0

    # -- positions --

    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index + 1
        return self.storage.first_index()

    def durable_last_index(self) -> int:
        """The last index of this log the host has made durable: entries after it
        (or a snapshot not yet persisted, then only what is committed counts) are
        still in flight.  A leader counts itself towards a commit up to here."""
        if self.unstable_snapshot is not None:
            return self.committed
        return self.unstable_offset - 1 if self.unstable else self.last_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.unstable_offset + len(self.unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index
        return self.storage.last_index()

    def term(self, index: int) -> int:
        """Term at ``index``; raises CompactedError / UnavailableError outside the log."""
        if self.unstable and index >= self.unstable_offset:
            pos = index - self.unstable_offset
            if pos < len(self.unstable):
                return self.unstable[pos].term
            raise UnavailableError(index)
        snap = self.unstable_snapshot
        if snap is not None:
            if index == snap.meta.index:
                return snap.meta.term
            if index < snap.meta.index:
                raise CompactedError(index)
            raise UnavailableError(index)
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: is a log ending at (last_index, last_term) at least as up to date?"""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    # -- appending --

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> int | None:
        """Follower side of AppendEntries; the new last index, or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        conflict = self.find_conflict(ents)
        if conflict:
            if conflict <= self.committed:
                raise RaftLogError(f"conflict at {conflict} below commit {self.committed}")
            self.append(list(ents[conflict - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """First index whose term differs from ours, or that we lack; 0 if none."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, t) with i <= index and t = term(i) <= term (fast backtracking)."""
        while index > 0:
            try:
                t = self.term(index)
            except CompactedError:
                return index, 0
            except UnavailableError:
                index = self.last_index()
                continue
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise RaftLogError(f"append after {after} is below commit {self.committed}")
        self._truncate_and_append(ents)
        return self.last_index()

    def _truncate_and_append(self, ents: list[Entry]) -> None:
        first = ents[0].index
        self.dirty_from = min(self.dirty_from, first)
        end = self.unstable_offset + len(self.unstable)
        if first == end:
            self.unstable.extend(ents)
        elif first <= self.unstable_offset:
            # Replaces all unstable entries (and shadows any stored from ``first`` on).
            self.unstable_offset = first
            self.unstable = list(ents)
        else:
            del self.unstable[first - self.unstable_offset :]
            self.unstable.extend(ents)

    # -- reading entries --

    def entries(self, lo: int, max_size: int | None, max_count: int) -> list[Entry]:
        hi = min(self.last_index() + 1, lo + max_count)
        if lo >= hi:
            return []
        return limit_size(self.slice(lo, hi), max_size)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries in [lo, hi); raises CompactedError below the first index."""
        if lo < self.first_index():
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        out: list[Entry] = []
        if lo < self.unstable_offset:
            out.extend(self.storage.entries(lo, min(hi, self.unstable_offset)))
        if hi > self.unstable_offset:
            start = max(lo, self.unstable_offset) - self.unstable_offset
            out.extend(self.unstable[start : hi - self.unstable_offset])
        return out

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable)

    def next_committed_entries(self, max_size: int | None) -> list[Entry]:
        if self.unstable_snapshot is not None:
            return []  # the snapshot is applied first
        lo = max(self.applied + 1, self.first_index())
        if lo > self.committed:
            return []
        return limit_size(self.slice(lo, self.committed + 1), max_size)

    def has_next_committed_entries(self) -> bool:
        return self.unstable_snapshot is None and self.committed > self.applied

    def snapshot(self) -> Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    # -- commit, apply, stability --

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise RaftLogError(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit ``index`` only if it is of ``term`` (§5.4.2: count replicas of own term)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index > self.committed:
            raise RaftLogError(f"applied {index} beyond commit {self.committed}")
        self.applied = max(self.applied, index)

    def stable_to(self, index: int, term: int) -> None:
        """The host made entries up to ``index`` (of ``term``) durable."""
        if not self.unstable or index < self.unstable_offset:
            return
        pos = index - self.unstable_offset
        if pos < len(self.unstable) and self.unstable[pos].term == term:
            del self.unstable[: pos + 1]
            self.unstable_offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.meta.index == index:
            self.unstable_snapshot = None

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap`` (the host installs it from the Ready)."""
        self.committed = snap.meta.index
        self.dirty_from = 0
        self.unstable = []
        self.unstable_offset = snap.meta.index + 1
        self.unstable_snapshot = snap
