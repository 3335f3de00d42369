"""Property tests for timestamps, cron expressions and time zones as clients send them.

The contract under test (scheduled_db/jobs/validation.py): any input gives a value or a
:class:`ValidationError` naming a field, which the API renders as a 400, and never
another exception.  Besides hostile values the strategies (tests/property_inputs.py)
build *near-valid* input (a timestamp with a 24:00 offset or a leap second, a cron
field with a step one past its range, a time zone spelled in the wrong case), where
off-by-one and overflow bugs live.  Where a value comes back, its invariants are
checked: a timestamp against date arithmetic, a cron run against its fields.
Job bodies are in tests/core/jobs/test_properties_jobs.py.

Every test is derandomized and keeps no example database, so a CI run is
repeatable and a failure replays exactly; the budgets keep both files together
well under 30 seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.schedule import next_fire, parse_cron, validate_timezone
from scheduled_db.jobs.timestamps import MAX_EPOCH_MS, format_rfc3339, parse_timestamp
from tests.property_inputs import (
    CALENDAR_END_MS,
    CI,
    MONTH_DAYS,
    afters,
    any_timestamp,
    cron_texts,
    expect_error,
    rfc3339_like,
    valid_zone,
    zones,
)


@CI
@given(rfc3339_like())
def test_rfc3339_like_text_parses_to_the_calendar_instant_or_is_rejected(
    case: tuple[str, int | None],
) -> None:
    text, expected = case
    try:
        got = parse_timestamp(text, "last_date")
    except ValidationError as exc:
        expect_error(exc, "last_date")
        assert expected is None, f"{text!r} should parse to {expected}"
        event("rejected")
        return
    event("accepted")
    assert got == expected, text


@CI
@given(any_timestamp)
def test_any_value_is_an_instant_in_range_or_a_timestamp_error(value: object) -> None:
    try:
        got = parse_timestamp(value)
    except ValidationError as exc:
        expect_error(exc, "timestamp")
        event("rejected")
        return
    event("accepted")
    assert type(got) is int and 0 <= got <= MAX_EPOCH_MS
    assert not isinstance(value, bool)
    if isinstance(value, int):
        assert got == value * 1000  # epoch seconds, exactly
    assert parse_timestamp(format_rfc3339(got)) == got  # the echo reads back as itself


@settings(CI, max_examples=500)
@given(cron_texts | st.integers() | st.none() | st.lists(st.text(max_size=3), max_size=5))
def test_any_cron_is_a_schedule_or_a_cron_error(expression: object) -> None:
    try:
        schedule = parse_cron(expression)
    except ValidationError as exc:
        expect_error(exc, "cron_expression")
        event("rejected")
        return
    event("accepted")
    assert isinstance(expression, str)
    assert "  " not in schedule.expression and schedule.expression == schedule.expression.strip()
    assert parse_cron(schedule.expression) == schedule  # the echoed form reads back the same


@CI
@given(cron_texts, zones, afters)
def test_next_fire_is_after_and_in_range_or_a_field_error(
    expression: str, tz: object, after: int
) -> None:
    try:
        parse_cron(expression)
    except ValidationError:
        event("cron rejected")
        return  # covered above; here only the expressions that parse
    try:
        fire = next_fire(expression, tz, after)  # type: ignore[arg-type]
    except ValidationError as exc:
        expect_error(exc, "timezone")
        assert not valid_zone(tz)
        return
    assert valid_zone(tz)
    event("fired" if fire is not None else "no run before year 10000")
    assert fire is None or after < fire <= MAX_EPOCH_MS
    if fire is None:
        assert after >= CALENDAR_END_MS, "a valid schedule has a run within a few years"


@CI
@given(zones)
def test_time_zones_are_known_names_or_a_timezone_error(tz: object) -> None:
    try:
        name = validate_timezone(tz)
    except ValidationError as exc:
        expect_error(exc, "timezone")
        assert not valid_zone(tz)
        return
    assert name == tz and valid_zone(tz)
    ZoneInfo(name)  # and the zone loads


@CI
@given(
    st.sets(st.integers(28, 31), min_size=1, max_size=4),
    st.sets(st.integers(1, 12), min_size=1, max_size=4),
    st.sampled_from(["*", "?"]),
    st.sampled_from(["UTC", "Europe/Madrid", "Australia/Lord_Howe", "Pacific/Apia"]),
    st.integers(0, CALENDAR_END_MS - 10 * 366 * 86_400_000),
)
def test_impossible_dates_are_refused_and_possible_ones_fire(
    days: set[int], months: set[int], dow: str, tz: str, after: int
) -> None:
    expression = (
        f"0 0 {','.join(map(str, sorted(days)))} {','.join(map(str, sorted(months)))} {dow}"
    )
    possible = any(d <= MONTH_DAYS[m - 1] for d in days for m in months)
    try:
        parse_cron(expression)
    except ValidationError as exc:
        expect_error(exc, "cron_expression")
        assert not possible, expression
        return
    assert possible, f"{expression} can never fire but was accepted"
    fire = next_fire(expression, tz, after)
    assert fire is not None and fire > after
    local = datetime.fromtimestamp(fire // 1000, ZoneInfo(tz))
    if local.utcoffset() == (local - timedelta(days=1)).utcoffset():  # not at a DST gap's end
        assert local.day in days and local.month in months, (expression, tz, local)
