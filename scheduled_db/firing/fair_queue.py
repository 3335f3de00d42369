"""Which waiting webhook delivery gets the next free slot: fair queuing across
destinations, each with a share that adapts to how its receiver behaves.

The WebhookActor keys every delivery by its destination (the URL's origin: scheme,
host, port), pushes it here, sends what :meth:`FairQueue.admit` lets through and
reports how each request ended with :meth:`FairQueue.release`.  Pure: no clock and no
I/O; what a request taught us comes in as a :class:`Signal`.

Decisions:

- **Round robin across destinations, FIFO within one.**  When a slot frees, the next
  destination in turn that has a delivery waiting and room under its cap sends its
  oldest one, then goes to the back of the line.  A destination with ten thousand
  deliveries queued and one with a single delivery get alternate slots, so a backlog
  delays only its own destination.
- **A cap per destination, adapted like a TCP window (AIMD).**  A destination we
  know nothing about may have :data:`INITIAL_CAP` requests in flight.  Each answer
  raises its cap by one, up to ``per_destination`` (so it doubles per round trip:
  a healthy receiver reaches its full share within a few round trips); a timeout,
  or an answer asking us to slow down (429, 503, 504), halves it, never below 1.
  A receiver that hangs therefore holds at most :data:`INITIAL_CAP` slots for one
  timeout, then one.
- **A global cap, ``slots``, over every destination.**  It bounds sockets and memory,
  not fairness: filling it with hanging requests takes ``slots / INITIAL_CAP``
  destinations hanging at once, or ``slots`` that are already cut to one.
- **An optional rate per destination** (``rate``, deliveries a second): a token
  bucket per destination holding at most one second's worth.  A destination out of
  tokens leaves the line of turns until its next token is due
  (:meth:`FairQueue.next_due_ms` says when to call :meth:`FairQueue.admit` again);
  its deliveries wait, they are never dropped, and the wait shows as lateness.
- **Bounded memory.**  A destination with nothing waiting or in flight is forgotten,
  unless its cap differs from the initial one (a grown cap is worth keeping for the
  next burst, a cut one is a penalty the receiver has not yet worked off) or, with a
  rate, its bucket is not full; at most ``max_idle`` of those are kept, the least
  recently active dropped first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from enum import Enum
from typing import Generic, TypeVar

INITIAL_CAP = 4  # requests in flight to a destination before it has answered one
MAX_IDLE = 4096  # idle destinations whose cap is remembered
SLOW_DOWN_STATUSES = frozenset({429, 503, 504})  # too many, overloaded, upstream timeout

K = TypeVar("K", bound=Hashable)
T = TypeVar("T", bound=Hashable)


class Signal(Enum):
    """What one finished request says about its destination."""

    ANSWERED = "answered"  # a response came in time: room for one more
    SLOW_DOWN = "slow_down"  # no response in time, or the receiver asked: halve the cap
    NOTHING = "nothing"  # refused, unresolvable, aborted, not sent: no evidence


def signal_for(http_status: int | None, timed_out: bool) -> Signal:
    """The :class:`Signal` of a request that ended with ``http_status`` (None if no
    response came) and ``timed_out`` (no response within the attempt's timeout)."""
    if timed_out or http_status in SLOW_DOWN_STATUSES:
        return Signal.SLOW_DOWN
    return Signal.NOTHING if http_status is None else Signal.ANSWERED


class _Destination(Generic[T]):
    __slots__ = ("cap", "in_flight", "waiting", "tokens", "filled_ms")

    def __init__(self, cap: int, tokens: float) -> None:
        self.cap = cap
        self.in_flight = 0
        self.waiting: OrderedDict[T, None] = OrderedDict()  # FIFO with O(1) withdrawal
        self.tokens = tokens  # of the rate's bucket (unused without a rate)
        self.filled_ms: int | None = None  # when the bucket was last topped up


class FairQueue(Generic[K, T]):
    """Deliveries (``T``, hashable, each pushed once) waiting per destination (``K``).

    ``slots``: most in flight over all destinations; ``per_destination``: the most a
    destination's cap grows to.  Raises ValueError if either is below 1.  Releasing a
    destination with nothing in flight raises KeyError or AssertionError (a caller bug).
    """

    def __init__(
        self,
        slots: int,
        per_destination: int,
        initial_cap: int = INITIAL_CAP,
        max_idle: int = MAX_IDLE,
        rate: float | None = None,
    ) -> None:
        if min(slots, per_destination, initial_cap) < 1 or max_idle < 0:
            raise ValueError(
                f"slots, per_destination and initial_cap must be >= 1, got "
                f"{slots}, {per_destination}, {initial_cap}"
            )
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be above 0 (None: no rate), got {rate}")
        self.rate = rate
        self._burst = 1.0 if rate is None else max(1.0, rate)  # one second's worth
        self._paced: dict[K, int] = {}  # out of tokens: when the next one is due (ms)
        self.slots = slots
        self.per_destination = per_destination
        self.initial_cap = min(initial_cap, per_destination)
        self.max_idle = max_idle
        self.waiting = 0  # deliveries pushed and neither admitted nor withdrawn
        self.in_flight = 0  # admitted and not yet released
        self._active: dict[K, _Destination[T]] = {}  # something waiting or in flight
        # What is remembered of idle destinations, oldest first: a cap other than the
        # initial one, and a bucket not yet full (going idle between two deliveries
        # must not refill it): (cap, tokens, when the tokens were counted).
        self._idle: OrderedDict[K, tuple[int, float, int | None]] = OrderedDict()
        self._turns: OrderedDict[K, None] = OrderedDict()  # may send now, in turn order

    def cap(self, key: K) -> int:
        """The number of requests ``key`` may have in flight now."""
        dest = self._active.get(key)
        if dest is not None:
            return dest.cap
        idle = self._idle.get(key)
        return self.initial_cap if idle is None else idle[0]

    def is_waiting(self, key: K, item: T) -> bool:
        """Whether ``item`` is queued for ``key`` (pushed, neither admitted nor withdrawn)."""
        dest = self._active.get(key)
        return dest is not None and item in dest.waiting

    def push(self, key: K, item: T) -> None:
        """Queue ``item`` for ``key``; it leaves through :meth:`admit` or :meth:`withdraw`."""
        dest = self._activate(key)
        dest.waiting[item] = None
        self.waiting += 1
        self._take_turn(key, dest)

    def push_many(self, key: K, items: list[T]) -> None:
        """Queue ``items`` for ``key`` in their order, as many :meth:`push` calls would
        (a burst released at once: one turn taken, not one per item)."""
        if not items:
            return
        dest = self._activate(key)
        before = len(dest.waiting)
        dest.waiting.update(dict.fromkeys(items))
        self.waiting += len(dest.waiting) - before
        self._take_turn(key, dest)

    def withdraw(self, key: K, item: T) -> bool:
        """Take a waiting ``item`` out of the queue (an abort); False if it is not waiting."""
        if not self.is_waiting(key, item):
            return False
        dest = self._active[key]
        del dest.waiting[item]
        self.waiting -= 1
        self._take_turn(key, dest)
        self._retire_if_idle(key, dest)
        return True

    def is_paced(self, key: K) -> bool:
        """Whether ``key`` waits for its rate (not for a slot)."""
        return key in self._paced

    def next_due_ms(self) -> int | None:
        """When a destination out of tokens gets its next one (None: none waits so)."""
        return min(self._paced.values(), default=None)

    def admit(self, now_ms: int = 0) -> list[tuple[K, T]]:
        """Every delivery that may be sent now, in turn order; each counts as in flight
        until :meth:`release`.  ``now_ms`` matters only with a rate."""
        for key, due in list(self._paced.items()):
            if due <= now_ms:
                del self._paced[key]
                self._take_turn(key, self._active[key])
        admitted: list[tuple[K, T]] = []
        while self.in_flight < self.slots and self._turns:
            key, _ = self._turns.popitem(last=False)
            dest = self._active[key]
            if self.rate is not None and not self._spend(key, dest, now_ms):
                continue  # out of the line until its next token
            item, _ = dest.waiting.popitem(last=False)
            dest.in_flight += 1
            self.in_flight += 1
            self.waiting -= 1
            admitted.append((key, item))
            self._take_turn(key, dest)  # back of the line, if it still may send
        return admitted

    def release(self, key: K, signal: Signal) -> None:
        """One admitted request of ``key`` finished; ``signal`` adapts its cap."""
        dest = self._active[key]
        assert dest.in_flight > 0, f"release of {key!r} with nothing in flight"
        dest.in_flight -= 1
        self.in_flight -= 1
        if signal is Signal.ANSWERED:
            dest.cap = min(dest.cap + 1, self.per_destination)
        elif signal is Signal.SLOW_DOWN:
            dest.cap = max(1, dest.cap // 2)
        self._take_turn(key, dest)
        self._retire_if_idle(key, dest)

    def _spend(self, key: K, dest: _Destination[T], now_ms: int) -> bool:
        """Take a token of ``key``'s bucket; False (and paced until the next) if none."""
        assert self.rate is not None
        if dest.filled_ms is not None:
            earned = (now_ms - dest.filled_ms) * self.rate / 1000
            dest.tokens = min(self._burst, dest.tokens + max(0.0, earned))
        dest.filled_ms = now_ms
        if dest.tokens >= 1:
            dest.tokens -= 1
            return True
        self._paced[key] = now_ms + max(1, math.ceil((1 - dest.tokens) * 1000 / self.rate))
        return False

    def _activate(self, key: K) -> _Destination[T]:
        """``key``'s active state, made from what is remembered of it (or the defaults)."""
        dest = self._active.get(key)
        if dest is None:
            cap, tokens, filled_ms = self._idle.pop(key, (self.initial_cap, self._burst, None))
            dest = self._active[key] = _Destination(cap, tokens)
            dest.filled_ms = filled_ms
        return dest

    def _take_turn(self, key: K, dest: _Destination[T]) -> None:
        """Keep ``key`` in the line of turns exactly while it has a delivery waiting and
        room under its cap (a cut cap can take away a place it had), and is not
        waiting for a token."""
        if dest.waiting and dest.in_flight < dest.cap and key not in self._paced:
            self._turns.setdefault(key, None)
        else:
            self._turns.pop(key, None)

    def _retire_if_idle(self, key: K, dest: _Destination[T]) -> None:
        if dest.waiting or dest.in_flight:
            return
        self._paced.pop(key, None)
        del self._active[key]
        spent = self.rate is not None and dest.tokens < self._burst
        if (dest.cap != self.initial_cap or spent) and self.max_idle > 0:
            self._idle[key] = (dest.cap, dest.tokens, dest.filled_ms)
            if len(self._idle) > self.max_idle:
                self._idle.popitem(last=False)
