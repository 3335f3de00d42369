"""Tests for scheduled_db.jobs.timestamps: client times, durations and sizes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.timestamps import (
    MAX_EPOCH_MS,
    format_epoch_seconds,
    format_rfc3339,
    parse_timestamp,
)

T = 1_767_323_045_000  # 2026-01-02T03:04:05Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", T),
        ("2026-01-02t03:04:05z", T),
        ("2026-01-02T03:04:05+00:00", T),
        ("2026-01-02T03:04:05-00:00", T),
        ("2026-01-02T08:34:05+05:30", T),
        ("2026-01-01T22:04:05-05:00", T),
        ("2026-01-02T03:04:05.123Z", T + 123),
        ("2026-01-02T03:04:05.1Z", T + 100),
        ("2026-01-02T03:04:05.123456789Z", T + 123),
        ("2026-01-02T03:04:05.1235Z", T + 124),  # half-even at the millisecond
        ("2026-01-02T03:04:05.0005Z", T),
        ("2026-01-02 03:04:05", T),  # the space form without offset is UTC
        ("2026-01-02 03:04:05.5", T + 500),
        ("2026-01-02 08:34:05+05:30", T),
        ("1970-01-01T00:00:00Z", 0),
        ("9999-12-31T23:59:59.999Z", MAX_EPOCH_MS),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ],
)
def test_rfc3339_and_space_forms(text: str, expected: int) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_767_323_045, T),
        (1_767_323_045.0, T),
        (1_767_323_045.123, T + 123),
        (1_767_323_045.5, T + 500),
        (0, 0),
        (0.0, 0),
        (-0.0, 0),
        ("1767323045", T),
        ("1767323045.123", T + 123),
        ("1767323045.0005", T),  # half-even: .0005 s is 0.5 ms, rounded to even 0
        ("1767323045.0015", T + 2),
        (253_402_300_799, MAX_EPOCH_MS - 999),
    ],
)
def test_epoch_seconds(value: object, expected: int) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "boolean"),
        (False, "boolean"),
        (None, "string or a number"),
        ([], "string or a number"),
        ({}, "string or a number"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (float("-inf"), "finite"),
        (-1, "before 1970"),
        (-0.001, "before 1970"),
        ("-1", "before 1970"),
        (253_402_300_800, "after 9999"),
        (10**30, "after 9999"),
        pytest.param(10**5000, "after 9999", id="10**5000"),
        (1e300, "after 9999"),
        ("1" * 40, "after 9999"),
        ("", "empty"),
        (" ", "not a valid timestamp"),
        ("x" * 65, "at most 64"),
        ("2026-01-02T03:04:05Z" + " " * 50, "at most 64"),
        ("garbage", "not a valid timestamp"),
        ("2026-01-02T03:04:05", "UTC offset"),  # naive ISO with T
        ("2026-01-02T03:04:05.5", "UTC offset"),
        ("2026-01-02", "not a valid timestamp"),
        ("2026-01-02T03:04Z", "not a valid timestamp"),
        ("2026-01-02T03:04:05+0530", "not a valid timestamp"),
        ("2026-01-02T03:04:05+05", "not a valid timestamp"),
        ("2026-01-02T03:04:05.Z", "not a valid timestamp"),
        ("2026-01-02T03:04:05.1234567890Z", "not a valid timestamp"),
        (" 2026-01-02T03:04:05Z", "not a valid timestamp"),
        ("2026-01-02T03:04:05Z\n", "not a valid timestamp"),
        ("2026-01-02T03:04:05Z\x00", "not a valid timestamp"),
        ("\u0662\u0660\u0662\u0666-01-02T03:04:05Z", "not a valid timestamp"),  # Arabic digits
        ("\u0661\u0662", "not a valid timestamp"),
        ("2026-02-30T00:00:00Z", "calendar"),
        ("2026-13-01T00:00:00Z", "calendar"),
        ("2026-01-02T24:00:00Z", "calendar"),
        ("2026-01-02T23:60:00Z", "calendar"),
        ("2026-01-02T23:59:60Z", "calendar"),  # leap seconds are not representable
        ("0000-01-01T00:00:00Z", "calendar"),
        ("2026-01-02T03:04:05+24:00", "offset out of range"),
        ("2026-01-02T03:04:05+05:60", "offset out of range"),
        ("1969-12-31T23:59:59Z", "before 1970"),
        ("1970-01-01T00:00:00+00:01", "before 1970"),
        ("9999-12-31T23:59:59-00:01", "after 9999"),
        ("1e9", "not a valid timestamp"),
        ("nan", "not a valid timestamp"),
        ("Infinity", "not a valid timestamp"),
        ("1_000", "not a valid timestamp"),
        ("+5", "not a valid timestamp"),
        ("0x10", "not a valid timestamp"),
        (".5", "not a valid timestamp"),
        ("5.", "not a valid timestamp"),
    ],
)
def test_rejects(value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_timestamp(value, "last_date")
    assert info.value.field == "last_date"
    assert message in info.value.message
    assert str(info.value).startswith("last_date: ")


def test_error_message_is_client_safe() -> None:
    with pytest.raises(ValidationError) as info:
        parse_timestamp("\x00\n\u2028" + "x" * 30)
    assert "\n" not in str(info.value) and "\x00" not in str(info.value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=70)
    | st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{1,12})?", fullmatch=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@given(json_values)
def test_any_json_value_parses_or_raises_validation_error(value: object) -> None:
    try:
        ms = parse_timestamp(value)
    except ValidationError as exc:
        assert exc.field == "timestamp"
        assert "\n" not in str(exc)
    else:
        assert isinstance(ms, int) and 0 <= ms <= MAX_EPOCH_MS


aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)
).flatmap(
    lambda dt: st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
        lambda minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    )
)


@given(aware_datetimes)
def test_isoformat_round_trips(moment: datetime) -> None:
    expected_s = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    ms = parse_timestamp(moment.isoformat())
    # isoformat gives microseconds; the parser rounds them half-even to ms.
    assert abs(ms - (expected_s * 1000 + moment.microsecond / 1000)) <= 0.5
    assert parse_timestamp(format_rfc3339(ms)) == ms


@given(st.integers(0, MAX_EPOCH_MS))
def test_epoch_seconds_echo_round_trips(ms: int) -> None:
    echoed = format_epoch_seconds(ms)
    assert parse_timestamp(json.loads(json.dumps(echoed))) == ms
    assert isinstance(echoed, int) == (ms % 1000 == 0)


def test_format_epoch_seconds() -> None:
    assert format_epoch_seconds(T) == 1_767_323_045
    assert isinstance(format_epoch_seconds(T), int)
    assert format_epoch_seconds(T + 123) == 1_767_323_045.123
    assert format_rfc3339(T) == "2026-01-02T03:04:05Z"
    assert format_rfc3339(T + 7) == "2026-01-02T03:04:05.007Z"
