"""Hypothesis strategies for the property tests of client input (tests/test_properties*.py).

Hostile values and *near-valid* ones: timestamps shaped like RFC 3339 with odd
offsets, leap seconds and years 0/9999/10000 (each with the instant it means,
worked out by date arithmetic, or None when it must be refused), epoch numbers
from zero to 10**400, NaN and booleans; cron expressions of 5 and 6 fields built
from values, ranges, steps and names just inside and just outside their bounds,
macros real and invented; every IANA zone and names that only look like one.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.timestamps import MAX_EPOCH_MS, parse_timestamp

CI = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
NOW = parse_timestamp("2026-01-01T00:00:00Z")
CALENDAR_END_MS = parse_timestamp("9990-01-01T00:00:00Z")  # next_fire may give None after this
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, else ``odd``: near-valid input needs most parts valid."""
    return st.integers(0, 9).flatmap(lambda n: odd if n == 0 else usual)


def expect_error(exc: ValidationError, *fields: str) -> None:
    """A ValidationError the API can render: names one of ``fields``, one line, UTF-8."""
    assert exc.field in fields, (exc.field, fields)
    text = str(exc)
    assert "\n" not in text and "\r" not in text
    json.dumps({"error": text, **exc.details()}, ensure_ascii=False).encode("utf-8")


# --- timestamps --------------------------------------------------------------------------

ODD_OFFSETS = ["", "Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "+00:60"]
ODD_OFFSETS += ["+0000", "+00", "UTC", " Z", "+1:00", "\u2212" + "01:00", "+01:00:00"]


def _offset(sign: str, hours: int, minutes: int) -> str:
    return f"{sign}{hours:02d}:{minutes:02d}"


offsets = st.sampled_from(ODD_OFFSETS) | st.builds(
    _offset, st.sampled_from("+-"), st.integers(0, 30), st.integers(0, 70)
)
years = st.sampled_from([0, 1, 1969, 1970, 2026, 2038, 9998, 9999, 10000]) | st.integers(0, 12000)
fractions = st.none() | st.text("0123456789", max_size=12)


@st.composite
def rfc3339_like(draw: st.DrawFn) -> tuple[str, int | None]:
    """A timestamp string shaped like RFC 3339, and the epoch ms it means, or None when
    it must be rejected: the oracle is date arithmetic, not the parser's own code."""
    parts = (
        draw(mostly(st.integers(1970, 9999), years)),
        draw(mostly(st.integers(1, 12), st.integers(0, 13))),
        draw(mostly(st.integers(1, 28), st.integers(0, 32))),
        draw(mostly(st.integers(0, 23), st.integers(0, 25))),
        draw(mostly(st.integers(0, 59), st.integers(0, 61))),
        draw(mostly(st.integers(0, 59), st.integers(58, 61))),  # 60: a leap second
    )
    sep = draw(mostly(st.sampled_from("Tt "), st.sampled_from(["_", "", "  "])))
    fraction = draw(mostly(st.none() | st.text("0123456789", min_size=1, max_size=9), fractions))
    offset = draw(mostly(st.sampled_from(["Z", "+02:00", "-05:30"]), offsets))
    year, month, day, hour, minute, second = parts
    text = f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}"
    text += ("" if fraction is None else "." + fraction) + offset
    return text, _expected_ms(parts, sep, fraction, offset)


def _expected_ms(parts: tuple[int, ...], sep: str, fraction: str | None, offset: str) -> int | None:
    year, month, day, hour, minute, second = parts
    offset_s = _offset_seconds(offset)
    if offset_s is None or sep not in ("T", "t", " ") or (offset == "" and sep != " "):
        return None
    if not 1 <= year <= 9999 or fraction == "" or (fraction and len(fraction) > 9):
        return None
    try:
        ordinal = date(year, month, day).toordinal()
    except ValueError:
        return None
    if hour > 23 or minute > 59 or second > 59:  # no leap seconds: Python's clock has none
        return None
    whole = (ordinal - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60 + second - offset_s
    seconds = Decimal(whole) + Decimal("0." + (fraction or "0"))
    if not 0 <= seconds <= Decimal(MAX_EPOCH_MS) / 1000:
        return None
    return int((seconds * 1000).to_integral_value(rounding=ROUND_HALF_EVEN))


def _offset_seconds(offset: str) -> int | None:
    if offset in ("", "Z", "z"):
        return 0
    match = re.fullmatch(r"([+-])(\d\d):(\d\d)", offset)
    if match is None or int(match[2]) > 23 or int(match[3]) > 59:
        return None
    value = int(match[2]) * 3600 + int(match[3]) * 60
    return -value if match[1] == "-" else value


numeric_text = st.sampled_from(
    ["0", "-0", "-1", "1e5", "+5", " 5", "5 ", "0x10", "1_000", "١٢٣", "１２３", "0.", ".5"]
) | st.from_regex(r"-?[0-9]{1,16}(\.[0-9]{0,14})?", fullmatch=True)
huge_numbers = st.sampled_from([10**12, 10**15, 2**63, 2**64, 10**400, -(10**400)])
any_timestamp = st.one_of(
    st.integers(),
    huge_numbers,
    st.floats(),
    st.floats(-1e12, 3e11),
    st.booleans(),
    st.none(),
    numeric_text,
    st.text(max_size=80),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    rfc3339_like().map(lambda case: case[0]),
    rfc3339_like().map(lambda case: " " + case[0] + "x" * 40),
)


# --- cron expressions and time zones ---------------------------------------------------------

_MONTH_NAMES = ["jan", "FEB", "Mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAY_NAMES = ["sun", "MON", "Tue", "wed", "thu", "fri", "sat"]
# (low, high, names) of second, minute, hour, day-of-month, month, day-of-week.
_BOUNDS: tuple[tuple[int, int, list[str]], ...] = (
    (0, 59, []),
    (0, 59, []),
    (0, 23, []),
    (1, 31, []),
    (1, 12, _MONTH_NAMES),
    (0, 7, _DAY_NAMES),
)


def cron_value(low: int, high: int, names: list[str]) -> st.SearchStrategy[str]:
    near = st.integers(max(low - 2, 0), high + 2).map(str)
    named = st.sampled_from(names) if names else st.nothing()
    return near | named | st.sampled_from(["00", "007", "FOO", "x"])


def cron_item(low: int, high: int, names: list[str]) -> st.SearchStrategy[str]:
    value = cron_value(low, high, names)
    step = st.integers(0, high - low + 3).map(str)
    return st.one_of(
        st.just("*"),
        value,
        st.builds(lambda a, b: f"{a}-{b}", value, value),
        st.builds(lambda s: f"*/{s}", step),
        st.builds(lambda a, s: f"{a}/{s}", value, step),
        st.builds(lambda a, b, s: f"{a}-{b}/{s}", value, value, step),
        st.sampled_from(["?", "L", "l", "W", "5W", "1#2", "5L", "H", "R", "", "-", "/", "*/"]),
    )


def valid_cron_item(low: int, high: int, names: list[str]) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    step = st.integers(1, high - low + 1)
    ordered = st.tuples(value, value).map(sorted)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.sampled_from(names) if names else value.map(lambda v: f"{v:02d}"),
        ordered.map(lambda ab: f"{ab[0]}-{ab[1]}"),
        step.map(lambda s: f"*/{s}"),
        st.tuples(ordered, step).map(lambda x: f"{x[0][0]}-{x[0][1]}/{x[1]}"),
    )


def cron_field(low: int, high: int, names: list[str]) -> st.SearchStrategy[str]:
    item = mostly(valid_cron_item(low, high, names), cron_item(low, high, names))
    return st.lists(item, min_size=1, max_size=3).map(",".join)


def _join(fields: list[str], sep: str) -> str:
    return sep.join(fields)


separators = st.sampled_from([" ", "  ", "\t", " \t ", "\n", "\x0b"])
five_fields = st.tuples(*(cron_field(*b) for b in _BOUNDS[1:])).map(list)
six_fields = st.tuples(*(cron_field(*b) for b in _BOUNDS)).map(list)
other_counts = st.lists(cron_field(0, 59, []), max_size=8)
MACROS = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]
odd_macros = st.sampled_from(MACROS + ["@DAILY", "@reboot", "@every 5m", "@ daily", "@yearly *"])
cron_texts = mostly(
    st.builds(_join, five_fields | six_fields, separators),
    st.one_of(
        st.builds(_join, other_counts, separators),
        odd_macros,
        st.sampled_from(MACROS).map(lambda m: f"  {m}\t"),
        st.text(max_size=30),
        st.text("0123456789*/-,? LW#", max_size=30),
    ),
)
ALL_ZONES = sorted(zoneinfo.available_timezones())
zones = st.one_of(
    st.sampled_from(ALL_ZONES),
    st.sampled_from(["UTC", "Etc/GMT+12", "Etc/GMT-14", "Pacific/Kiritimati", "America/Godthab"]),
    st.sampled_from(["utc", "europe/madrid", "Europe/Madrid ", "", "localtime", "posixrules"]),
    st.sampled_from(
        ["../../etc/passwd", "/etc/localtime", "Europe/../UTC", "UTC\x00", "Mars/Olympus"]
    ),
    st.text(max_size=20),
    st.integers(),
    st.none(),
)
afters = st.integers(0, MAX_EPOCH_MS) | st.sampled_from(
    [0, NOW, CALENDAR_END_MS - 1, CALENDAR_END_MS, MAX_EPOCH_MS - 1, MAX_EPOCH_MS]
)


def valid_zone(tz: object) -> bool:
    return (
        isinstance(tz, str) and tz in ALL_ZONES + ["UTC"] and tz not in ("localtime", "posixrules")
    )


MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # a leap year's
