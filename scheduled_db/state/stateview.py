"""Read views of the job state: the contract, an in-memory twin, a write overlay.

The state machine only ever *reads* a :class:`StateView` and *returns* writes;
the shell applies them (to a RocksDB WriteBatch, or to a :class:`MemoryState`).
Both backends answer the same contract tests, and :func:`state_digest` over
either gives the same bytes for the same state.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from scheduled_db.state.records import META_PREFIX

Write = tuple[bytes, bytes | None]  # (key, value); None deletes


class StateView(Protocol):
    """A consistent read-only view of the state keys."""

    def get(self, key: bytes) -> bytes | None:
        """The value at ``key``, or None."""
        ...

    def iter_range(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``lo <= key < hi`` in ascending key order."""
        ...


class ReverseStateView(StateView, Protocol):
    """A view that also scans backwards (the newest-first listings)."""

    def iter_range_reverse(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``lo <= key < hi`` in descending key order."""
        ...


class MemoryState:
    """A dict-backed state: the twin of the RocksDB state for tests and replays."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] | None = []  # sorted keys, rebuilt lazily

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def iter_range(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        keys = self._sorted()
        start, end = bisect.bisect_left(keys, lo), bisect.bisect_left(keys, hi)
        for k in keys[start:end]:
            yield k, self._data[k]

    def iter_range_reverse(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        keys = self._sorted()
        start, end = bisect.bisect_left(keys, lo), bisect.bisect_left(keys, hi)
        for k in reversed(keys[start:end]):
            yield k, self._data[k]

    def apply(self, writes: Iterable[Write]) -> None:
        """Apply a batch of writes (all of them: the memory twin cannot half-apply)."""
        for k, v in writes:
            if v is None:
                if self._data.pop(k, None) is not None:
                    self._keys = None
            else:
                if k not in self._data:
                    self._keys = None
                self._data[k] = v

    def clear(self) -> None:
        self._data.clear()
        self._keys = []

    def _sorted(self) -> list[bytes]:
        if self._keys is None:
            self._keys = sorted(self._data)
        return self._keys


class Overlay:
    """Pending writes over a base view: reads see them, nothing touches the base.

    Keeps ``size_delta``: the change of the sum of ``len(key) + len(value)``
    over the non-``m/`` keys, which feeds the capacity counters.  The base does not
    change while an overlay is in use, so what it answered is remembered: a write
    of a key just read (a job's record, its execution record) does not read the
    base again for the old value's size.
    """

    def __init__(self, base: StateView) -> None:
        self._base = base
        self._w: dict[bytes, bytes | None] = {}
        self._read: dict[bytes, bytes | None] = {}  # the base's answers so far
        self._sorted_w: list[bytes] | None = []
        self.size_delta = 0

    def get(self, key: bytes) -> bytes | None:
        if key in self._w:
            return self._w[key]
        if key in self._read:
            return self._read[key]
        value = self._read[key] = self._base.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._set(key, value)

    def delete(self, key: bytes) -> None:
        self._set(key, None)

    def put_new(self, key: bytes, value: bytes) -> None:
        """:meth:`put` of a key the caller knows the base does not hold (a new job's
        own keys): its size is counted without reading the base for an old value."""
        if key in self._w or key.startswith(META_PREFIX):
            self._set(key, value)
            return
        self.size_delta += len(key) + len(value)
        self._sorted_w = None
        self._w[key] = value

    def delete_present(self, key: bytes, value: bytes = b"") -> None:
        """:meth:`delete` of a key the caller knows the base holds with ``value`` (an
        index key of a job, which the job's record implies): its size is uncounted
        without reading the base for it."""
        if key in self._w or key.startswith(META_PREFIX):
            self._set(key, None)
            return
        self.size_delta -= len(key) + len(value)
        self._sorted_w = None
        self._w[key] = None

    def _set(self, key: bytes, value: bytes | None) -> None:
        if not key.startswith(META_PREFIX):
            old = self.get(key)
            if old is not None:
                self.size_delta -= len(key) + len(old)
            if value is not None:
                self.size_delta += len(key) + len(value)
        if key not in self._w:
            self._sorted_w = None
        self._w[key] = value

    def writes(self) -> list[Write]:
        return list(self._w.items())

    def iter_range(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Merge of base and pending writes; callers must not write while iterating."""
        if self._sorted_w is None:
            self._sorted_w = sorted(self._w)
        ws = self._sorted_w
        pending = ws[bisect.bisect_left(ws, lo) : bisect.bisect_left(ws, hi)]
        base = self._base.iter_range(lo, hi)
        b = next(base, None)
        i = 0
        while b is not None or i < len(pending):
            if b is None or (i < len(pending) and pending[i] <= b[0]):
                key = pending[i]
                i += 1
                if b is not None and b[0] == key:
                    b = next(base, None)
                value = self._w[key]
                if value is not None:
                    yield key, value
            else:
                yield b
                b = next(base, None)


ALL_KEYS_END = b"\xff\xff\xff\xff"  # above every key of the state (scheduled_db.state.records)


def state_digest(view: StateView) -> str:
    """sha256 (hex) over every key and value in key order, each length-prefixed."""
    h = hashlib.sha256()
    for k, v in view.iter_range(b"", ALL_KEYS_END):
        digest_pair(h, k, v)
    return h.hexdigest()


def digest_pair(h: Any, key: bytes, value: bytes) -> None:
    """Add one pair to a :func:`state_digest` under way (the key order is the caller's)."""
    h.update(len(key).to_bytes(4, "big"))
    h.update(key)
    h.update(len(value).to_bytes(4, "big"))
    h.update(value)
