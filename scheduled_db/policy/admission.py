"""Admission control: how many requests of one kind a node works on at once.

A request is *in flight* from the moment the API admits it to the moment its
answer is ready.  :meth:`Admission.admit` says whether one more may start;
:meth:`Admission.release` is told when one ends and how long it took.  Pure and
clock-driven: the caller passes the time (seconds on a monotonic clock).

Decisions:

- **Refuse at once rather than queue.**  Over the limit a request is refused on
  arrival (the API answers 503 ``overloaded`` with ``Retry-After``), before it
  has cost anything: no body read, no Raft proposal.  A queue in front of a
  node that cannot keep up only adds waiting to every request it holds; a
  refusal lets the client go elsewhere or come back, and the requests admitted
  keep the latency of a node working at its capacity.
- **A hard bound**, ``max_in_flight``: the most requests that may be in flight,
  whatever the latency.  It alone bounds the node's memory and the work behind
  the answers it owes.
- **A latency target** (optional), ``target_s``: below ``max_in_flight`` the
  limit in force follows the node's speed, so that the mean time to answer stays
  near the target on a fast machine, a slow one or a busy one.  By Little's law
  (in flight = rate x latency) the node meets the target with ``rate x target``
  requests in flight, where the rate is the answers per second it achieves,
  measured over windows of at least :data:`WINDOW_S` and :data:`MIN_SAMPLES`
  answers, each averaged with the one before.  When the mean latency of a window
  is over the target the limit comes down to that estimate at once; under it the
  limit goes up to the estimate, at most doubling per window (an overshoot costs
  latency until the next window sees it), and never down: low latency is no
  reason to admit less, and at a light load the rate says how much is asked,
  not how much the node could do.  The estimate rests on the rate, not on the
  latencies measured: requests admitted under an earlier, higher limit answer
  late for a while after it comes down, and judging by them would push the
  limit far below what the node does.
- **A floor** of :data:`FLOOR` (or ``max_in_flight`` if smaller): a node slower
  than the target at any concurrency still takes some work, and batching (one
  fsync per batch of proposals) needs a few requests in flight to pay off.
"""

from __future__ import annotations

FLOOR = 8
WINDOW_S = 0.25
MIN_SAMPLES = 8
MAX_GROWTH = 2.0  # the most the limit grows by in one window


class Admission:
    """The requests of one kind in flight, and the limit they are held to."""

    def __init__(self, max_in_flight: int, target_s: float | None = None, now: float = 0.0) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if target_s is not None and target_s <= 0:
            raise ValueError("target_s must be positive (None: no target)")
        self.max_in_flight = max_in_flight
        self.target_s = target_s
        self.floor = min(FLOOR, max_in_flight)
        self.in_flight = 0
        self._limit = float(max_in_flight)
        self._window_start = now
        self._last_event = now
        self._latency_sum = 0.0
        self._finished = 0
        self._rate: float | None = None  # answers per second, smoothed over windows

    @property
    def limit(self) -> int:
        """The most requests that may be in flight now."""
        return max(self.floor, int(self._limit))

    def admit(self, now: float) -> bool:
        """Whether a request arriving at ``now`` may start; if so it counts as in flight
        until :meth:`release`."""
        self._advance(now)
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def withdraw(self) -> None:
        """Undo an admit whose request did not start after all (another bound refused
        it): no latency is counted."""
        if self.in_flight <= 0:
            raise RuntimeError("withdraw without a matching admit")
        self.in_flight -= 1

    def release(self, latency_s: float, now: float) -> None:
        """An admitted request ended at ``now``, ``latency_s`` after it was admitted."""
        if self.in_flight <= 0:
            raise RuntimeError("release without a matching admit")
        self._advance(now)
        self.in_flight -= 1
        self._latency_sum += max(0.0, latency_s)
        self._finished += 1

    def _advance(self, now: float) -> None:
        # A window closes at the first event after it, so that the answers of one
        # batch, all released at the same instant, land in the same window.
        window_s = self._last_event - self._window_start
        if now > self._last_event and window_s >= WINDOW_S and self._finished >= MIN_SAMPLES:
            self._adapt(window_s)
            self._window_start = now
            self._latency_sum = 0.0
            self._finished = 0
        self._last_event = max(self._last_event, now)

    def _adapt(self, window_s: float) -> None:
        if self.target_s is None:
            return
        rate = self._finished / window_s
        self._rate = rate if self._rate is None else (self._rate + rate) / 2
        estimate = self._rate * self.target_s  # Little's law: in flight = rate x latency
        if self._latency_sum / self._finished > self.target_s:
            self._limit = max(float(self.floor), min(self._limit, estimate))
        else:
            wanted = min(estimate, self._limit * MAX_GROWTH)
            self._limit = min(float(self.max_in_flight), max(self._limit, wanted))
