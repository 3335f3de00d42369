"""The token-bucket table, on a virtual clock."""

from __future__ import annotations

import pytest

from scheduled_db.policy.ratelimit import RateLimiter


def test_a_burst_then_the_steady_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.admit("a", 0.0) for _ in range(3)] == [None, None, None]
    assert limiter.admit("a", 0.0) == pytest.approx(0.5)
    assert limiter.admit("a", 0.25) == pytest.approx(0.25)  # half a token back
    assert limiter.admit("a", 0.5) is None
    assert limiter.admit("a", 0.5) == pytest.approx(0.5)


def test_refill_stops_at_the_burst() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    limiter.admit("a", 0.0)
    results = [limiter.admit("a", 1000.0) for _ in range(3)]
    assert results[:2] == [None, None] and results[2] is not None


def test_clients_are_independent() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.admit("a", 0.0) is None
    assert limiter.admit("a", 0.0) is not None
    assert limiter.admit("b", 0.0) is None


def test_a_clock_that_goes_back_refills_nothing() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    limiter.admit("a", 10.0)
    assert limiter.admit("a", 5.0) is not None


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    limiter = RateLimiter(rate=3.0, burst=1)
    assert limiter.retry_after_s(0.01) == 1
    assert limiter.retry_after_s(1.01) == 2


def test_the_table_is_bounded_and_drops_refilled_buckets_first() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=4)
    for name in "abcd":
        limiter.admit(name, 0.0)
    limiter.admit("d", 5.0)  # d is empty again at t=5; a, b and c have refilled
    limiter.admit("e", 5.0)
    assert len(limiter) == 2
    assert limiter.admit("d", 5.0) is not None  # d kept its state


def test_when_nothing_has_refilled_the_least_recently_used_half_goes() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_clients=4)
    for name in "abcd":
        limiter.admit(name, 0.0)
    limiter.admit("e", 1.0)
    assert len(limiter) == 3
    assert limiter.admit("d", 1.0) is not None  # recent ones kept
    assert limiter.admit("a", 1.0) is None  # a was dropped: a fresh bucket


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0.0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(rate=1.0, burst=0)
