"""The scheduler's hot window: what is due soon, in time slots of ``gap_ms``.

Only occurrences due before the window's horizon are held (refilled from the
storage's due index as time advances), so memory depends on how much is due
soon, never on how many jobs exist.  Slots of ``gap_ms`` (``SLOT_GAP``, 10 s by
default, as in the original) keep refills and look-ups cheap; inside a slot a
heap keeps millisecond order, so each item fires at its own time.

Each key is held at most once: adding it again replaces it.  A key is a job id
(the job's scheduled occurrence) or ``(job id, asked ms)`` (a run triggered by
``POST /jobs/{id}/trigger``), so both can be due, armed or in flight together.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
SlotKey = str | tuple[str, int] | bytes  # bytes: a notice's key (scheduler)


@dataclass
class _Slot:
    heap: list[tuple[int, int, SlotKey]] = field(default_factory=list)  # (at, seq, key)


class SlotIndex(Generic[T]):
    """Items keyed by :data:`SlotKey`, ordered by their fire time in ms."""

    def __init__(self, gap_ms: int) -> None:
        if gap_ms <= 0:
            raise ValueError("gap_ms must be positive")
        self.gap_ms = gap_ms
        self._slots: dict[int, _Slot] = {}
        self._order: list[int] = []  # heap of slot numbers that may hold items
        self._items: dict[SlotKey, tuple[int, int, T]] = {}  # key -> (at, seq, item)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: SlotKey) -> T | None:
        held = self._items.get(key)
        return None if held is None else held[2]

    def add(self, key: SlotKey, at_ms: int, item: T) -> None:
        """Hold ``item`` to fire at ``at_ms``, replacing what ``key`` held."""
        self.remove(key)
        self._seq += 1
        number = at_ms // self.gap_ms
        slot = self._slots.get(number)
        if slot is None:
            slot = self._slots[number] = _Slot()
            heapq.heappush(self._order, number)
        heapq.heappush(slot.heap, (at_ms, self._seq, key))
        self._items[key] = (at_ms, self._seq, item)

    def remove(self, key: SlotKey) -> T | None:
        held = self._items.pop(key, None)  # its heap entry goes stale, skipped later
        return None if held is None else held[2]

    def next_at(self) -> int | None:
        """The earliest fire time held, or None when empty."""
        top = self._top()
        return None if top is None else top[0]

    def pop_due(self, now_ms: int) -> list[tuple[int, T]]:
        """Remove and return every (at, item) with ``at <= now_ms``, earliest first."""
        out: list[tuple[int, T]] = []
        while True:
            top = self._top()
            if top is None or top[0] > now_ms:
                return out
            at, _, key = top
            item = self.remove(key)
            assert item is not None
            out.append((at, item))

    def items(self) -> Iterator[tuple[SlotKey, int, T]]:
        for key, (at, _, item) in self._items.items():
            yield key, at, item

    def _top(self) -> tuple[int, int, SlotKey] | None:
        """The live heap entry that fires first, dropping stale entries and empty slots."""
        while self._order:
            number = self._order[0]
            slot = self._slots[number]
            while slot.heap and not self._is_live(slot.heap[0]):
                heapq.heappop(slot.heap)
            if slot.heap:
                return slot.heap[0]
            heapq.heappop(self._order)
            del self._slots[number]
        return None

    def _is_live(self, entry: tuple[int, int, SlotKey]) -> bool:
        held = self._items.get(entry[2])
        return held is not None and held[1] == entry[1]
