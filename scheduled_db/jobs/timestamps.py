"""Parsing and formatting of client times, durations and sizes.

Inside the system a point in time is an ``int`` of milliseconds since the Unix
epoch (UTC).  Clients send times as RFC 3339 strings with an offset, as
``YYYY-MM-DD HH:MM:SS`` (read as UTC), or as epoch *seconds* (a JSON number or a
numeric string).  Sub-millisecond precision is rounded half-to-even, the same
way for every input form, so one instant always parses to one value.

Accepted instants lie in 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z: the
range every node can turn into a calendar date without overflow.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from scheduled_db.errors import ValidationError

MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_TIMESTAMP_CHARS = 64
_MAX_INT64 = 2**63 - 1  # durations and sizes must fit the wire's signed 64-bit ints

_EPOCH = datetime(1970, 1, 1)
# re.ASCII throughout: \d must not match other scripts' digits ("٢٠٢٦").
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})([Tt ])(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?", re.ASCII)
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+", re.ASCII)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)", re.ASCII)
_DURATION_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000}
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?(?:([kmgt])(?:i?b)?|b)?", re.ASCII | re.IGNORECASE)
_SIZE_PREFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

_EXPECTED = "expected RFC 3339 (e.g. 2026-01-02T03:04:05Z) or epoch seconds"


def parse_timestamp(value: object, field: str = "timestamp") -> int:
    """Parse a client timestamp to epoch milliseconds.

    Accepts an RFC 3339 string with ``Z`` or a ``±HH:MM`` offset (``T`` or a
    space between date and time, up to 9 fractional digits), ``YYYY-MM-DD
    HH:MM:SS[.fff]`` without offset (UTC), epoch seconds as an ``int``/``float``,
    or epoch seconds as a decimal string.  Raises :class:`ValidationError` on
    ``field`` for anything else, including booleans, NaN/infinity, instants
    before 1970 or after year 9999, and strings longer than 64 characters.
    """
    if isinstance(value, bool):  # JSON true/false would otherwise pass as an int
        raise ValidationError(field, f"must be a timestamp, not a boolean ({_EXPECTED})")
    if isinstance(value, int):
        if 0 <= value <= MAX_EPOCH_MS // 1000:
            return value * 1000  # whole seconds: exact, no Decimal needed
        return _seconds_to_ms(_bounded_int(value, field), field)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, "must be a finite number")
        # repr() is the shortest decimal that round-trips: the number the client wrote.
        return _seconds_to_ms(Decimal(repr(value)), field)
    if isinstance(value, str):
        return _parse_timestamp_text(value, field)
    raise ValidationError(field, f"must be a string or a number ({_EXPECTED})")


def _bounded_int(value: int, field: str) -> Decimal:
    # Compare before converting: Decimal(10**5000) trips Python's int-to-str limit.
    if value < 0:
        raise ValidationError(field, "must not be before 1970-01-01T00:00:00Z")
    if value > MAX_EPOCH_MS // 1000:
        raise ValidationError(field, "must not be after 9999-12-31T23:59:59Z")
    return Decimal(value)


def _seconds_to_ms(seconds: Decimal, field: str) -> int:
    if seconds < 0:
        raise ValidationError(field, "must not be before 1970-01-01T00:00:00Z")
    if seconds > Decimal(MAX_EPOCH_MS) / 1000:
        raise ValidationError(field, "must not be after 9999-12-31T23:59:59Z")
    return int((seconds * 1000).to_integral_value(rounding=ROUND_HALF_EVEN))


def _parse_timestamp_text(text: str, field: str) -> int:
    if not text:
        raise ValidationError(field, "must not be empty")
    if len(text) > MAX_TIMESTAMP_CHARS:
        raise ValidationError(field, f"must be at most {MAX_TIMESTAMP_CHARS} characters")
    if _NUMERIC.fullmatch(text):
        return _seconds_to_ms(Decimal(text), field)
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValidationError(field, f"not a valid timestamp ({_EXPECTED})")
    year, month, day, sep, hour, minute, second, fraction, offset = match.groups()
    if offset is None and sep != " ":
        raise ValidationError(field, "needs a UTC offset such as Z or +02:00")
    try:
        wall = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        raise ValidationError(field, "not a valid calendar date and time") from None
    seconds = (wall - _EPOCH) // timedelta(seconds=1) - _offset_seconds(offset, field)
    return _seconds_to_ms(Decimal(seconds) + Decimal(f"0.{fraction or 0}"), field)


def _offset_seconds(offset: str | None, field: str) -> int:
    if offset is None or offset in ("Z", "z"):
        return 0
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if hours > 23 or minutes > 59:
        raise ValidationError(field, "UTC offset out of range")
    sign = -1 if offset[0] == "-" else 1
    return sign * (hours * 3600 + minutes * 60)


def format_epoch_seconds(ms: int) -> int | float:
    """Epoch seconds for the API's echo: an ``int`` when whole, else a ``float``
    carrying the milliseconds."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def format_rfc3339(ms: int) -> str:
    """``ms`` as RFC 3339 in UTC, with milliseconds only when non-zero."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"
