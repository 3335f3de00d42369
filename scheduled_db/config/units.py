"""Durations, sizes and booleans as people write them in YAML files and env vars.

Durations become integer milliseconds (the unit of every time inside the system) and
sizes become integer bytes.  Arithmetic goes through ``Fraction`` so that ``0.1`` or
``1.5s`` convert exactly instead of picking up binary floating-point error.

Each parser raises ``ValueError`` whose message says what is expected ("must be ...");
the caller adds which key and which source the value came from.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_MS_PER_UNIT = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
# "ms" is listed before "m" so that "250ms" is not read as 250 minutes plus a stray "s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

# KB/MB/GB are binary multiples, as in the original project's QUEUE_MEMORY_LIMIT
# parser, so a value carried over from it keeps its meaning; KiB/MiB/GiB say the same
# thing explicitly.
_BYTES_PER_UNIT = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?", re.IGNORECASE)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

DURATION_HELP = "a duration such as 250ms, 10s, 5m, 1h30m, or a number of seconds"
SIZE_HELP = "a size such as 512KiB, 500MB, 2GB (binary multiples), or a number of bytes"


def _exact(value: int | float) -> Fraction:
    """An int or float as an exact fraction; ``repr`` keeps 0.1 from becoming 0.1000...0555."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        return Fraction(repr(value))
    return Fraction(value)


def _whole(amount: Fraction) -> int:
    if amount.denominator != 1:
        raise ValueError("not whole")
    return int(amount)


def parse_duration_ms(value: object) -> int:
    """``"1h30m"`` -> 5400000.  A bare number (int, float or numeric string) is seconds."""
    try:
        return _whole(_duration_fraction(value))
    except ValueError:
        raise ValueError(f"must be {DURATION_HELP}") from None


def _duration_fraction(value: object) -> Fraction:
    if isinstance(value, bool):  # bool is an int subclass; `true` is not a duration
        raise ValueError("bool")
    if isinstance(value, int | float):
        return _exact(value) * 1000
    if not isinstance(value, str):
        raise ValueError("type")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return Fraction(text) * 1000
    if not _DURATION.fullmatch(text):
        raise ValueError("syntax")
    return sum(
        (Fraction(n) * _MS_PER_UNIT[unit] for n, unit in _DURATION_PART.findall(text)),
        Fraction(0),
    )


def parse_size_bytes(value: object) -> int:
    """``"2GB"`` -> 2147483648.  A bare number is bytes."""
    try:
        return _whole(_size_fraction(value))
    except ValueError:
        raise ValueError(f"must be {SIZE_HELP}") from None


def _size_fraction(value: object) -> Fraction:
    if isinstance(value, bool):
        raise ValueError("bool")
    if isinstance(value, int | float):
        return _exact(value)
    if not isinstance(value, str):
        raise ValueError("type")
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError("syntax")
    number, prefix, _plain_b = match.groups()
    return Fraction(number) * _BYTES_PER_UNIT[(prefix or "").lower()]


def parse_bool(value: object) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); YAML booleans pass through."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError("must be a boolean: true/false, yes/no, on/off or 1/0")


def format_duration_ms(ms: int) -> str:
    """The shortest spelling ``parse_duration_ms`` reads back: 5400000 -> ``"1h30m"``."""
    if ms <= 0:
        return f"{ms}ms"
    parts = []
    for unit, size in _MS_PER_UNIT.items():
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
