"""When to try a webhook delivery again, and whether to: pure functions of their inputs.

Times are epoch milliseconds; the caller passes the current time and the source of
jitter (a seeded ``random.Random`` in the leader, a fixed stub in tests), so the
leader can compute the next attempt's time and put it in a Raft command.

Decisions:

- **Equal jitter.**  The delay before a retry is drawn from ``[ceiling/2, ceiling]``
  where ``ceiling = min(cap, base * 2**(attempt-1))``.  "Full jitter" (``[0, ceiling]``)
  spreads load a little better, but can pick a delay near zero and hammer a receiver
  that just failed; every retry here also costs a Raft round trip (claim before fire),
  so a guaranteed minimum wait is worth more than the last bit of spread.
- **Retry-After wins when it is later.**  A server's Retry-After is a floor on the
  delay, never shortened by our backoff; it is capped at :data:`MAX_RETRY_AFTER_MS`
  so a hostile or broken header cannot park a job for days.
- **No redirects.**  Deliveries do not follow redirects (a webhook URL that moved is a
  configuration error, and following one would re-send the payload somewhere the user
  did not name); a 3xx fails at once, as a non-retryable ``http_error``.
"""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Protocol

MAX_RETRY_AFTER_MS = 3_600_000  # one hour: the longest a server can make us wait
RETRY_AFTER_STATUSES = frozenset({429, 503})  # the statuses whose Retry-After we honour
_RETRYABLE_STATUSES = frozenset({408, 429})  # besides every 5xx
_MAX_SHIFT = 62  # 2**62 ms outlasts any cap; bounds the power for absurd attempt numbers


class RandomSource(Protocol):
    """Anything with ``random() -> float`` in ``[0, 1)``, like ``random.Random``."""

    def random(self) -> float: ...


def backoff_ms(attempt: int, base_ms: int, cap_ms: int, rng: RandomSource) -> int:
    """The delay after failed attempt number ``attempt`` (1 for the first), with
    equal jitter: uniform in ``[ceiling - ceiling // 2, ceiling]``, where ``ceiling``
    is ``base_ms * 2**(attempt - 1)`` capped at ``cap_ms``.

    Raises ValueError if ``attempt < 1`` or a duration is negative.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if base_ms < 0 or cap_ms < 0:
        raise ValueError(f"base_ms and cap_ms must be >= 0, got {base_ms}, {cap_ms}")
    ceiling = min(cap_ms, base_ms << min(attempt - 1, _MAX_SHIFT))
    half = ceiling // 2
    # min(): a stub rng returning exactly 1.0 must not push the delay past the ceiling.
    jitter = min(half, int(rng.random() * (half + 1)))
    return ceiling - half + jitter


def next_retry_ms(
    now_ms: int,
    attempt: int,
    retry_after_ms: int | None,
    base_ms: int,
    cap_ms: int,
    rng: RandomSource,
) -> int:
    """When to make the attempt after failed attempt ``attempt``: ``now_ms`` plus the
    backoff, or plus the server's ``retry_after_ms`` if that is later (the latter
    clamped to ``[0, MAX_RETRY_AFTER_MS]``)."""
    delay = backoff_ms(attempt, base_ms, cap_ms, rng)
    if retry_after_ms is not None:
        delay = max(delay, min(max(retry_after_ms, 0), MAX_RETRY_AFTER_MS))
    return now_ms + delay


def classify(http_status: int) -> tuple[bool, bool]:
    """``(ok, retryable)`` for a response status: 2xx is ok; 5xx, 408 and 429 are
    worth retrying; anything else (other 4xx, and 3xx since redirects are not
    followed) fails for good."""
    if 200 <= http_status < 300:
        return True, False
    return False, http_status >= 500 or http_status in _RETRYABLE_STATUSES


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """A Retry-After header as milliseconds from ``now_ms``: delay-seconds (``"120"``)
    or an HTTP-date (a date in the past means 0).  None if absent or unparseable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(int(text), MAX_RETRY_AFTER_MS // 1000) * 1000
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    return max(0, int(when.timestamp() * 1000) - now_ms)
