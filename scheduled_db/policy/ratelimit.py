"""Per-client request rate limits: one token bucket per client, pure and clock-driven.

A client may make ``burst`` requests at once and ``rate`` per second after that.
The table is bounded: past ``max_clients`` buckets, those that have refilled
completely (indistinguishable from a client never seen) are dropped, and if none
has, the least recently used half goes.  Dropping a bucket can only be lenient to
its client, never unfair to another.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float  # seconds, on the limiter's clock


class RateLimiter:
    """``admit(client, now)`` is None when the request may go, else the seconds to wait."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def admit(self, client: str, now: float) -> float | None:
        bucket = self._buckets.get(client)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rate

    def retry_after_s(self, wait: float) -> int:
        """``wait`` as a Retry-After header value: whole seconds, at least 1."""
        return max(1, math.ceil(wait))

    def __len__(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.max_clients:
            return
        full_after = self.burst / self.rate
        for name in [n for n, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[name]
        if len(self._buckets) >= self.max_clients:
            for _ in range(len(self._buckets) // 2):
                self._buckets.popitem(last=False)
