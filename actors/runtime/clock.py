"""The node's one clock helper: wall time in milliseconds, and a periodic ticker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pykka


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds: the only place the node reads it."""
    return time.time_ns() // 1_000_000


class Ticker:
    """Calls ``fn`` every ``interval`` seconds from a daemon thread until stopped.

    Used to turn the passage of time into messages (e.g. a Raft tick); ``fn``
    must be quick and must not block (it should only ``tell`` an actor).
    """

    def __init__(self, interval: float, fn: Callable[[], None]) -> None:
        self._interval = interval
        self._fn = fn
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        # Each call at least one interval after the last: a ticker held up (a paused
        # process, a busy machine) never catches up with a burst.  Raft's election
        # timeouts, and so the leader lease (actors/raft/lease.py), count on it.
        next_at = time.monotonic() + self._interval
        while not self._stopped.wait(max(0.0, next_at - time.monotonic())):
            self._fn()
            next_at = time.monotonic() + self._interval


def actor_ticker(actor: pykka.Actor, interval: float, message: object) -> Ticker:
    """A Ticker that tells ``actor`` ``message`` every ``interval`` seconds, and stops
    itself once the actor is gone (``actor_ref`` is read at each tick, so it may be
    made in the actor's ``__init__``)."""

    def tick() -> None:
        try:
            actor.actor_ref.tell(message)
        except pykka.ActorDeadError:
            ticker.stop()

    ticker = Ticker(interval, tick)
    return ticker


class Alarm:
    """Calls ``fn`` once the wall clock reaches the time last ``set`` (epoch ms).

    One daemon thread; ``set`` re-arms it (earlier or later) at any time.  Used to
    wake an actor exactly when its next item is due, rather than polling.
    """

    def __init__(self, fn: Callable[[], None], clock: Callable[[], int] = now_ms) -> None:
        self._fn = fn
        self._clock = clock
        self._at: int | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="alarm", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def set(self, at_ms: int | None) -> None:
        with self._cond:
            self._at = at_ms
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._at is not None:
                        left = self._at - self._clock()
                        if left <= 0:
                            break
                        self._cond.wait(left / 1000)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                self._at = None
            self._fn()
