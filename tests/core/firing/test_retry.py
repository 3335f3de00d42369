"""Tests for scheduled_db.firing.retry: backoff bounds, the cap, Retry-After, classification."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduled_db.firing.retry import (
    MAX_RETRY_AFTER_MS,
    backoff_ms,
    classify,
    next_retry_ms,
    parse_retry_after,
)

NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z

attempts = st.integers(min_value=1, max_value=10_000)
bases = st.integers(min_value=0, max_value=120_000)
caps = st.integers(min_value=0, max_value=24 * 3_600_000)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


class Fixed:
    """A jitter source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def ceiling(attempt: int, base: int, cap: int) -> int:
    return min(cap, base * (1 << min(attempt - 1, 62)))


# --- backoff ----------------------------------------------------------------------------


@given(attempts, bases, caps, unit)
def test_backoff_lies_between_half_the_ceiling_and_the_ceiling(
    attempt: int, base: int, cap: int, r: float
) -> None:
    top = ceiling(attempt, base, cap)
    delay = backoff_ms(attempt, base, cap, Fixed(r))
    assert top - top // 2 <= delay <= top
    assert delay <= cap


@given(attempts, bases, caps, unit)
def test_backoff_never_shrinks_as_attempts_grow(
    attempt: int, base: int, cap: int, r: float
) -> None:
    rng = Fixed(r)
    assert backoff_ms(attempt, base, cap, rng) <= backoff_ms(attempt + 1, base, cap, rng)


@given(bases, caps, st.integers(min_value=0, max_value=2**32))
def test_backoff_with_a_seeded_random_is_reproducible(base: int, cap: int, seed: int) -> None:
    first = [backoff_ms(a, base, cap, random.Random(seed)) for a in range(1, 20)]
    again = [backoff_ms(a, base, cap, random.Random(seed)) for a in range(1, 20)]
    assert first == again


def test_backoff_doubles_from_the_base_until_the_cap() -> None:
    top = Fixed(0.999999)  # the upper end of the jitter range
    assert [backoff_ms(a, 1_000, 10_000, top) for a in range(1, 7)] == [
        1_000,
        2_000,
        4_000,
        8_000,
        10_000,
        10_000,
    ]
    assert [backoff_ms(a, 1_000, 10_000, Fixed(0.0)) for a in range(1, 6)] == [
        500,
        1_000,
        2_000,
        4_000,
        5_000,
    ]


def test_backoff_tolerates_a_source_returning_one() -> None:
    assert backoff_ms(3, 1_000, 60_000, Fixed(1.0)) == 4_000


def test_backoff_handles_absurd_attempt_numbers_without_huge_numbers() -> None:
    assert backoff_ms(10**9, 1_000, 60_000, Fixed(0.0)) == 30_000


@pytest.mark.parametrize(
    ("attempt", "base", "cap"), [(0, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)]
)
def test_backoff_rejects_nonsense(attempt: int, base: int, cap: int) -> None:
    with pytest.raises(ValueError):
        backoff_ms(attempt, base, cap, Fixed(0.5))


# --- next retry and Retry-After -----------------------------------------------------------


@given(attempts, bases, caps, unit, st.none() | st.integers(-10_000, 10 * MAX_RETRY_AFTER_MS))
def test_next_retry_is_never_earlier_than_the_backoff_or_the_retry_after(
    attempt: int, base: int, cap: int, r: float, retry_after: int | None
) -> None:
    at = next_retry_ms(NOW, attempt, retry_after, base, cap, Fixed(r))
    assert at >= NOW + backoff_ms(attempt, base, cap, Fixed(r))
    if retry_after is not None:
        assert at >= NOW + min(retry_after, MAX_RETRY_AFTER_MS)
    assert at <= NOW + max(cap, MAX_RETRY_AFTER_MS)


def test_retry_after_later_than_the_backoff_wins() -> None:
    assert next_retry_ms(NOW, 1, 2_000, 100, 1_000, Fixed(0.5)) == NOW + 2_000


def test_backoff_later_than_the_retry_after_wins() -> None:
    assert next_retry_ms(NOW, 5, 1_000, 1_000, 60_000, Fixed(0.0)) == NOW + 8_000


def test_retry_after_is_capped_at_an_hour() -> None:
    at = next_retry_ms(NOW, 1, 7 * 24 * 3_600_000, 1_000, 60_000, Fixed(0.0))
    assert at == NOW + MAX_RETRY_AFTER_MS


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("2", 2_000),
        (" 120 ", 120_000),
        ("0", 0),
        ("99999999999", MAX_RETRY_AFTER_MS),
        ("Fri, 15 Jan 2027 08:00:30 GMT", 30_000),
        ("Fri, 15 Jan 2027 07:59:00 GMT", 0),  # in the past: now
        ("Fri, 15 Jan 2027 08:01:00 -0000", 60_000),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("\u00b2", None),  # a Unicode digit that int() refuses
        ("", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: int | None) -> None:
    assert parse_retry_after(header, NOW) == expected


# --- classification -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_ok(status: int) -> None:
    assert classify(status) == (True, False)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408, 429])
def test_server_errors_timeouts_and_throttling_are_retryable(status: int) -> None:
    assert classify(status) == (False, True)


@pytest.mark.parametrize("status", [100, 301, 302, 307, 308, 400, 401, 403, 404, 410, 422])
def test_other_statuses_fail_for_good(status: int) -> None:
    assert classify(status) == (False, False)
