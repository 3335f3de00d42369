"""Tests for scheduled_db.jobs.schedule: cron parsing, DST, first runs and misfires.

DST dates used (2026):
  America/New_York  spring 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z)
                    fall   2026-11-01 02:00 EDT -> 01:00 EST (06:00Z)
  Europe/Madrid     spring 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z)
                    fall   2026-10-25 03:00 CEST -> 02:00 CET (01:00Z)
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.model import JobSpec, JobType, MisfirePolicy
from scheduled_db.jobs.schedule import (
    after_downtime,
    first_fire,
    next_fire,
    next_run,
    parse_cron,
    validate_timezone,
)
from scheduled_db.jobs.timestamps import MAX_EPOCH_MS, parse_timestamp

NY = "America/New_York"
MADRID = "Europe/Madrid"
HOUR = 3_600_000
DAY = 24 * HOUR


def ms(text: str) -> int:
    return parse_timestamp(text)


def fires(cron: str, tz: str, after: str, count: int) -> list[int]:
    out: list[int] = []
    at = ms(after)
    for _ in range(count):
        nxt = next_fire(cron, tz, at)
        assert nxt is not None
        out.append(nxt)
        at = nxt
    return out


# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "* * * * *",
        "0 0 * * *",
        "*/15 * * * *",
        "0 9-17 * * MON-FRI",
        "0 9-17/2 * * mon-fri",
        "0 0 1,15 * *",
        "0 0 L * *",
        "0 0 1,L * *",
        "0 0 ? * 0",
        "0 0 * JAN,jul ?",
        "0 0 29 2 *",  # fires only in leap years, but fires
        "0 0 * * 7",
        "5/10 * * * *",
        "30 0 12 * * *",  # six fields, seconds first
        "*/20 * * * * *",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@DAILY",
        "  0   0 * * *  ",
    ],
)
def test_valid_expressions(expr: str) -> None:
    assert parse_cron(expr).expression


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "5 fields"),
        ("* * * *", "5 fields"),
        ("* * * * * * *", "5 fields"),  # no year field
        ("@reboot", "5 fields"),
        ("@every 5m", "5 fields"),
        ("60 * * * *", "out of 0-59"),
        ("* 24 * * *", "out of 0-23"),
        ("* * 0 * *", "out of 1-31"),
        ("* * 32 * *", "out of 1-31"),
        ("* * * 13 *", "out of 1-12"),
        ("* * * * 8", "out of 0-7"),
        ("60 * * * * *", "out of 0-59"),
        ("*/0 * * * *", "step"),
        ("*/61 * * * *", "step"),
        ("10-5 * * * *", "backwards"),
        ("* * * * FRI-MON", "backwards"),
        ("-5 * * * *", "invalid minute"),
        ("1,,2 * * * *", "invalid minute"),
        ("R * * * *", "invalid minute"),  # croniter's random values
        ("H * * * *", "invalid minute"),  # croniter's hashed values
        ("* * * * 1#2", "invalid day-of-week"),
        ("* * 15W * *", "invalid day-of-month"),
        ("* * * * 5L", "invalid day-of-week"),
        ("L * * * *", "invalid minute"),
        ("? * * * *", "invalid minute"),
        ("* * * FOO *", "invalid month value"),
        ("* * * * JAN", "invalid day-of-week value"),
        ("\u0665 * * * *", "ASCII"),  # non-ASCII digit
        ("0\u00a00 * * *", "ASCII"),  # no-break space is not a separator
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("x" * 300, "at most 256"),
    ],
)
def test_invalid_expressions(expr: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_cron(expr)
    assert info.value.field == "cron_expression"
    assert message in info.value.message


def test_non_string_expression() -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        parse_cron(5)


def test_six_fields_put_seconds_first() -> None:
    # croniter's own 6-field form reads "5 0 1 * * *" as minute 5, hour 0, day 1,
    # seconds last; ours reads seconds first: 01:00:05 every day.
    assert fires("5 0 1 * * *", "UTC", "2026-01-01T12:00:00Z", 2) == [
        ms("2026-01-02T01:00:05Z"),
        ms("2026-01-03T01:00:05Z"),
    ]
    theirs = croniter("5 0 1 * * *", datetime(2026, 1, 1, 12)).get_next(datetime)
    assert theirs != datetime(2026, 1, 2, 1, 0, 5)
    assert fires("*/20 * * * * *", "UTC", "2026-01-01T12:00:00Z", 3) == [
        ms("2026-01-01T12:00:20Z"),
        ms("2026-01-01T12:00:40Z"),
        ms("2026-01-01T12:01:00Z"),
    ]


def test_five_fields_fire_on_the_minute() -> None:
    assert next_fire("* * * * *", "UTC", ms("2026-01-01T12:00:30.5Z")) == ms("2026-01-01T12:01:00Z")


def test_equal_range_means_that_value_not_every_value() -> None:
    # croniter expands "5-5" to the whole field; we expand it ourselves.
    assert fires("5-5 * * * *", "UTC", "2026-01-01T12:00:00Z", 2) == [
        ms("2026-01-01T12:05:00Z"),
        ms("2026-01-01T13:05:00Z"),
    ]


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-02-01T00:00:00Z"),
        ("@weekly", "2026-01-18T00:00:00Z"),  # Sunday
        ("@daily", "2026-01-16T00:00:00Z"),
        ("@midnight", "2026-01-16T00:00:00Z"),
        ("@hourly", "2026-01-15T13:00:00Z"),
    ],
)
def test_macros(macro: str, expected: str) -> None:
    assert next_fire(macro, "UTC", ms("2026-01-15T12:30:00Z")) == ms(expected)


def test_day_fields_or_when_both_restricted() -> None:
    # 13th of the month OR a Friday (POSIX cron).
    got = fires("0 0 13 * FRI", "UTC", "2026-01-01T12:00:00Z", 3)
    assert got == [
        ms("2026-01-02T00:00:00Z"),
        ms("2026-01-09T00:00:00Z"),
        ms("2026-01-13T00:00:00Z"),
    ]


def test_last_day_of_month_and_leap_day() -> None:
    assert fires("0 0 L * *", "UTC", "2026-01-31T12:00:00Z", 2) == [
        ms("2026-02-28T00:00:00Z"),
        ms("2026-03-31T00:00:00Z"),
    ]
    assert next_fire("0 0 29 2 *", "UTC", ms("2026-01-01T00:00:00Z")) == ms("2028-02-29T00:00:00Z")


def test_sunday_is_0_and_7() -> None:
    start = ms("2026-01-14T00:00:00Z")
    assert next_fire("0 0 * * 0", "UTC", start) == next_fire("0 0 * * 7", "UTC", start)


def test_no_run_before_year_10000() -> None:
    assert next_fire("0 0 * * *", "UTC", ms("9999-12-31T12:00:00Z")) is None
    assert next_fire("0 0 1 1 *", "Pacific/Kiritimati", ms("9999-06-01T00:00:00Z")) is None


# --- time zones --------------------------------------------------------------


def test_timezones() -> None:
    assert validate_timezone("Europe/Madrid") == "Europe/Madrid"
    assert validate_timezone("UTC") == "UTC"
    for bad in ["", "Mars/Base", "utc", "Europe/Madrid ", "../etc/passwd", "/UTC", "localtime"]:
        with pytest.raises(ValidationError) as info:
            validate_timezone(bad)
        assert info.value.field == "timezone"
    with pytest.raises(ValidationError, match="must be a string"):
        validate_timezone(5)
    with pytest.raises(ValidationError) as info:
        next_fire("* * * * *", "Nowhere/Land", 0)
    assert info.value.field == "timezone"


def test_zone_offset_applies() -> None:
    assert next_fire("0 9 * * *", MADRID, ms("2026-01-15T00:00:00Z")) == ms("2026-01-15T08:00:00Z")
    assert next_fire("0 9 * * *", NY, ms("2026-07-15T00:00:00Z")) == ms("2026-07-15T13:00:00Z")


# --- DST: spring forward (nonexistent local times) ---------------------------


def test_ny_daily_0230_spring_forward() -> None:
    assert fires("30 2 * * *", NY, "2026-03-07T00:00:00-05:00", 3) == [
        ms("2026-03-07T02:30:00-05:00"),
        ms("2026-03-08T03:00:00-04:00"),  # 02:30 does not exist: fires when the gap ends
        ms("2026-03-09T02:30:00-04:00"),
    ]


def test_ny_every_15_minutes_spring_forward_collapses_the_gap() -> None:
    assert fires("*/15 * * * *", NY, "2026-03-08T01:20:00-05:00", 5) == [
        ms("2026-03-08T01:30:00-05:00"),
        ms("2026-03-08T01:45:00-05:00"),
        ms("2026-03-08T03:00:00-04:00"),  # 02:00..02:45 and 03:00: one run
        ms("2026-03-08T03:15:00-04:00"),
        ms("2026-03-08T03:30:00-04:00"),
    ]


def test_madrid_daily_0230_spring_forward() -> None:
    assert fires("30 2 * * *", MADRID, "2026-03-28T00:00:00Z", 3) == [
        ms("2026-03-28T02:30:00+01:00"),
        ms("2026-03-29T03:00:00+02:00"),
        ms("2026-03-30T02:30:00+02:00"),
    ]


def test_madrid_hourly_spring_forward() -> None:
    assert fires("0 * * * *", MADRID, "2026-03-29T00:30:00+01:00", 3) == [
        ms("2026-03-29T01:00:00+01:00"),
        ms("2026-03-29T03:00:00+02:00"),  # 02:00 does not exist; 03:00 is the same instant
        ms("2026-03-29T04:00:00+02:00"),
    ]


# --- DST: fall back (repeated local times) -----------------------------------


def test_ny_daily_0130_on_fall_back_day_fires_exactly_once() -> None:
    assert fires("30 1 * * *", NY, "2026-10-31T12:00:00-04:00", 2) == [
        ms("2026-11-01T01:30:00-04:00"),  # first pass only
        ms("2026-11-02T01:30:00-05:00"),
    ]


def test_ny_daily_0130_from_inside_the_second_pass() -> None:
    # 01:10 EST is in the repeated hour after 01:30 EDT already fired.
    assert next_fire("30 1 * * *", NY, ms("2026-11-01T01:10:00-05:00")) == ms(
        "2026-11-02T01:30:00-05:00"
    )


def test_ny_hourly_fall_back() -> None:
    assert fires("0 * * * *", NY, "2026-10-31T23:30:00-04:00", 4) == [
        ms("2026-11-01T00:00:00-04:00"),
        ms("2026-11-01T01:00:00-04:00"),
        ms("2026-11-01T02:00:00-05:00"),  # 01:00 EST repeats a fired wall time
        ms("2026-11-01T03:00:00-05:00"),
    ]


def test_ny_every_15_minutes_fall_back() -> None:
    assert fires("*/15 * * * *", NY, "2026-11-01T01:20:00-04:00", 4) == [
        ms("2026-11-01T01:30:00-04:00"),
        ms("2026-11-01T01:45:00-04:00"),
        ms("2026-11-01T02:00:00-05:00"),
        ms("2026-11-01T02:15:00-05:00"),
    ]


def test_every_second_through_the_second_pass() -> None:
    assert fires("* * * * * *", NY, "2026-11-01T01:59:58-04:00", 3) == [
        ms("2026-11-01T01:59:59-04:00"),
        ms("2026-11-01T02:00:00-05:00"),
        ms("2026-11-01T02:00:01-05:00"),
    ]
    assert next_fire("* * * * * *", NY, ms("2026-11-01T01:20:00.5-05:00")) == ms(
        "2026-11-01T02:00:00-05:00"
    )


def test_frequent_runs_from_inside_the_second_pass() -> None:
    # Every wall time of the repeated hour fired on the first pass.
    assert next_fire("*/5 * * * *", NY, ms("2026-11-01T01:01:00-05:00")) == ms(
        "2026-11-01T02:00:00-05:00"
    )


def test_madrid_fall_back() -> None:
    assert fires("30 2 * * *", MADRID, "2026-10-24T12:00:00Z", 2) == [
        ms("2026-10-25T02:30:00+02:00"),
        ms("2026-10-26T02:30:00+01:00"),
    ]
    assert fires("*/30 * * * *", MADRID, "2026-10-25T02:10:00+02:00", 4) == [
        ms("2026-10-25T02:30:00+02:00"),
        ms("2026-10-25T03:00:00+01:00"),
        ms("2026-10-25T03:30:00+01:00"),
        ms("2026-10-25T04:00:00+01:00"),
    ]


# --- DST: a brute-force oracle over minutes ----------------------------------

ZONE_TRANSITIONS = [
    (NY, "2026-03-08T07:00:00Z"),
    (NY, "2026-11-01T06:00:00Z"),
    (MADRID, "2026-03-29T01:00:00Z"),
    (MADRID, "2026-10-25T01:00:00Z"),
    ("Australia/Lord_Howe", "2026-04-04T15:00:00Z"),  # 02:00 +11 -> 01:30 +10:30
    ("Australia/Lord_Howe", "2026-10-03T15:30:00Z"),  # 02:00 +10:30 -> 02:30 +11
    ("UTC", "2026-03-08T07:00:00Z"),
]


def oracle_next(minutes: set[int], hours: set[int], zone: ZoneInfo, after_ms: int) -> int:
    """The documented rule, minute by minute: a matching wall time fires at its
    first occurrence; matching wall times skipped by a gap fire when it ends."""
    t = (after_ms // 60_000 + 1) * 60
    while True:
        local = datetime.fromtimestamp(t, zone)
        if local.fold == 0 and local.minute in minutes and local.hour in hours:
            return t * 1000
        before = datetime.fromtimestamp(t - 60, zone).replace(tzinfo=None)
        skipped = local.replace(tzinfo=None) - before - timedelta(minutes=1)
        for step in range(int(skipped / timedelta(minutes=1))):
            wall = before + timedelta(minutes=step + 1)
            if wall.minute in minutes and wall.hour in hours:
                return t * 1000
        t += 60


@settings(max_examples=150, deadline=None)
@given(
    st.sets(st.integers(0, 59), min_size=1, max_size=8),
    st.sets(st.integers(0, 23), min_size=1, max_size=24),
    st.sampled_from(ZONE_TRANSITIONS),
    st.integers(-3 * HOUR, 3 * HOUR),
)
def test_next_fire_matches_the_minute_oracle(
    minutes: set[int], hours: set[int], zone_transition: tuple[str, str], offset: int
) -> None:
    tz, transition = zone_transition
    cron = f"{','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))} * * *"
    after = ms(transition) + offset
    assert next_fire(cron, tz, after) == oracle_next(minutes, hours, ZoneInfo(tz), after)


SIMPLE_ITEMS = {
    "minute": st.one_of(
        st.just("*"),
        st.integers(0, 59).map(str),
        st.integers(1, 30).map(lambda s: f"*/{s}"),
        st.tuples(st.integers(0, 29), st.integers(30, 59)).map(lambda r: f"{r[0]}-{r[1]}"),
    ),
    "hour": st.one_of(st.just("*"), st.integers(0, 23).map(str)),
    "dom": st.one_of(st.just("*"), st.integers(1, 28).map(str)),
    "month": st.one_of(st.just("*"), st.integers(1, 12).map(str)),
    "dow": st.one_of(st.just("*"), st.integers(0, 6).map(str)),
}


@settings(max_examples=100, deadline=None)
@given(
    st.tuples(*(SIMPLE_ITEMS[k] for k in ("minute", "hour", "dom", "month", "dow"))),
    st.integers(ms("2020-01-01T00:00:00Z"), ms("2040-01-01T00:00:00Z")),
)
def test_utc_agrees_with_plain_croniter(fields: tuple[str, ...], after: int) -> None:
    cron = " ".join(fields)
    start = datetime.fromtimestamp(after / 1000, UTC)
    expected = croniter(cron, start).get_next(float)
    assert next_fire(cron, "UTC", after) == int(expected) * 1000


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["*/15 * * * *", "0 * * * *", "30 1 * * *", "30 2 * * *", "0,30 0-3 * * *"]),
    st.sampled_from([NY, MADRID, "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Apia"]),
    st.integers(ms("2020-01-01T00:00:00Z"), ms("2030-01-01T00:00:00Z")),
)
def test_series_strictly_increase_and_never_repeat_a_wall_time(
    cron: str, tz: str, after: int
) -> None:
    zone = ZoneInfo(tz)
    seen: set[datetime] = set()
    at = after
    for _ in range(30):
        nxt = next_fire(cron, tz, at)
        assert nxt is not None and nxt > at
        local = datetime.fromtimestamp(nxt // 1000, zone)
        wall = local.replace(tzinfo=None)
        assert wall not in seen and local.fold == 0
        # Either the wall time matches, or the run is the end of a DST gap.
        gap_end = datetime.fromtimestamp(nxt // 1000 - 1, zone).utcoffset() != local.utcoffset()
        assert croniter.match(cron, wall) or gap_end
        seen.add(wall)
        at = nxt


# --- first runs, last_date and misfires -------------------------------------


def spec(**changes: object) -> JobSpec:
    fields: dict[str, object] = {
        "id": "j",
        "type": JobType.RECURRENTE,
        "cron_expression": "0 * * * *",
    }
    fields.update(changes)
    return JobSpec(**fields)  # type: ignore[arg-type]  # test helper over known fields


CREATED = ms("2026-01-01T10:30:00Z")


def test_first_fire_unico_is_its_timestamp() -> None:
    job = JobSpec(id="u", type=JobType.UNICO, timestamp_ms=CREATED + HOUR)
    assert first_fire(job, CREATED) == CREATED + HOUR
    assert next_run(job, CREATED) is None


def test_first_fire_recurring_after_creation() -> None:
    assert first_fire(spec(), CREATED) == ms("2026-01-01T11:00:00Z")
    assert first_fire(spec(), ms("2026-01-01T11:00:00Z")) == ms("2026-01-01T12:00:00Z")


def test_first_fire_recurring_not_before_timestamp() -> None:
    at_run = ms("2026-01-02T05:00:00Z")
    assert first_fire(spec(timestamp_ms=at_run), CREATED) == at_run  # inclusive
    assert first_fire(spec(timestamp_ms=at_run + 1), CREATED) == at_run + HOUR
    # A timestamp already past at creation does not schedule runs in the past.
    assert first_fire(spec(timestamp_ms=CREATED - DAY), CREATED) == ms("2026-01-01T11:00:00Z")


def test_last_date_ends_the_series_inclusively() -> None:
    job = spec(last_date_ms=ms("2026-01-01T12:00:00Z"))
    assert first_fire(job, CREATED) == ms("2026-01-01T11:00:00Z")
    assert next_run(job, ms("2026-01-01T11:00:00Z")) == ms("2026-01-01T12:00:00Z")
    assert next_run(job, ms("2026-01-01T12:00:00Z")) is None
    assert first_fire(spec(last_date_ms=CREATED + 60_000), CREATED) is None


def test_after_downtime_not_yet_due() -> None:
    due = CREATED + HOUR
    assert after_downtime(spec(), due, CREATED) == (False, due)


def test_after_downtime_one_time_job_fires_once_under_either_policy() -> None:
    for policy in MisfirePolicy:
        job = JobSpec(id="u", type=JobType.UNICO, timestamp_ms=CREATED, misfire_policy=policy)
        assert after_downtime(job, CREATED, CREATED + DAY) == (True, None)


def test_after_downtime_fire_once_collapses_missed_runs() -> None:
    last_due = ms("2026-01-01T11:00:00Z")
    now = ms("2026-01-01T15:20:00Z")  # 11:00..15:00 missed: five runs
    assert after_downtime(spec(), last_due, now) == (True, ms("2026-01-01T16:00:00Z"))


def test_after_downtime_skip_drops_missed_runs() -> None:
    job = spec(misfire_policy=MisfirePolicy.SKIP)
    last_due = ms("2026-01-01T11:00:00Z")
    now = ms("2026-01-01T15:20:00Z")
    assert after_downtime(job, last_due, now) == (False, ms("2026-01-01T16:00:00Z"))


def test_after_downtime_on_time_fires_under_skip() -> None:
    job = spec(misfire_policy=MisfirePolicy.SKIP)
    due = ms("2026-01-01T11:00:00Z")
    assert after_downtime(job, due, due) == (True, due + HOUR)
    assert after_downtime(job, due, due + 1_000) == (True, due + HOUR)
    assert after_downtime(job, due, due + 1_001) == (False, due + HOUR)
    assert after_downtime(job, due, due + 5_000, grace_ms=10_000) == (True, due + HOUR)


def test_after_downtime_series_over() -> None:
    job = spec(last_date_ms=ms("2026-01-01T12:00:00Z"))
    last_due = ms("2026-01-01T12:00:00Z")
    assert after_downtime(job, last_due, last_due + DAY) == (True, None)
    skip = spec(last_date_ms=last_due, misfire_policy=MisfirePolicy.SKIP)
    assert after_downtime(skip, last_due, last_due + DAY) == (False, None)


def test_after_downtime_across_dst() -> None:
    job = spec(cron_expression="30 2 * * *", timezone=NY)
    last_due = ms("2026-03-07T02:30:00-05:00")
    now = ms("2026-03-08T01:00:00-05:00")
    assert after_downtime(job, last_due, now) == (True, ms("2026-03-08T03:00:00-04:00"))


ALL_ZONES = sorted(zoneinfo.available_timezones() - {"localtime", "posixrules"})


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["* * * * * *", "*/15 * * * *", "30 2 * * *", "0 0 29 2 *", "@monthly"]),
    st.sampled_from(ALL_ZONES),
    st.integers(0, MAX_EPOCH_MS) | st.integers(0, ms("2040-01-01T00:00:00Z")),
)
def test_next_fire_never_raises_in_any_zone(cron: str, tz: str, after: int) -> None:
    nxt = next_fire(cron, tz, after)
    assert nxt is None or after < nxt <= MAX_EPOCH_MS
    if nxt is None:
        assert after > ms("9990-01-01T00:00:00Z")


# --- jitter -------------------------------------------------------------------------------


def test_jitter_offsets_are_fixed_by_job_and_occurrence_and_spread_evenly() -> None:
    from scheduled_db.jobs.schedule import attempt_fire_ms, jitter_offset

    offsets = [jitter_offset(f"job-{i}", 1_800_000_000_000, 10_000) for i in range(10_000)]
    assert all(0 <= o < 10_000 for o in offsets)
    assert offsets == [jitter_offset(f"job-{i}", 1_800_000_000_000, 10_000) for i in range(10_000)]
    per_second = [sum(s * 1000 <= o < (s + 1) * 1000 for o in offsets) for s in range(10)]
    assert min(per_second) > 900 and max(per_second) < 1100  # about 1,000 each
    assert jitter_offset("a", 1, 10_000) != jitter_offset("a", 2, 10_000)  # per occurrence
    spec = JobSpec("j", JobType.UNICO, 5_000, jitter_ms=1_000)
    moved = 5_000 + jitter_offset("j", 5_000, 1_000)
    assert attempt_fire_ms(spec, 5_000, 5_000, False) == moved  # a first attempt moves
    assert attempt_fire_ms(spec, 5_000, 9_000, False) == 9_000  # a retry keeps its time
    assert attempt_fire_ms(spec, 5_000, 5_000, True) == 5_000  # so does a triggered run
    assert attempt_fire_ms(JobSpec("j", JobType.UNICO, 5_000), 5_000, 5_000, False) == 5_000
