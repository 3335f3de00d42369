"""When jobs run: cron expressions in IANA time zones, first runs, misfires.

Everything here is a pure function of its arguments; "now" is always passed in.

Cron language
    Five fields ``minute hour day-of-month month day-of-week``, or six with
    *seconds first* (``second minute hour ...``), or one of the macros
    ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.  A field is
    ``*``, a value, a range ``a-b``, a step ``*/n``, ``a/n`` or ``a-b/n``, or a
    comma list of those; months and weekdays take names (``JAN``, ``MON``);
    day-of-week 7 is Sunday; ``?`` means ``*`` in the day fields; ``L`` in
    day-of-month is the month's last day.  When both day fields are restricted
    a day matching *either* fires (POSIX cron).  Each field is expanded here
    into an explicit list before croniter sees it, so croniter's own quirks
    (seconds *last* in 6 fields, ``5-5`` meaning "every", random ``R`` and
    hashed ``H`` values) never reach a schedule.

Daylight saving time
    The expression names *local wall-clock* times.  A wall time that occurs
    twice (the repeated hour when clocks fall back) fires once, at its first
    occurrence.  A wall time that does not exist (the hour skipped when clocks
    spring forward) fires once, at the first instant after the gap (02:30 on a
    02:00->03:00 night fires at 03:00); several skipped times collapse into
    that one run.  croniter only enumerates naive wall times; the mapping of
    wall times to instants is done here.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from croniter import croniter

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.model import JobSpec, JobType, MisfirePolicy
from scheduled_db.jobs.timestamps import MAX_EPOCH_MS

MAX_CRON_CHARS = 256
DEFAULT_MISFIRE_GRACE_MS = 1_000  # a run less late than this is on time, not missed

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Feb counts 29 days: a schedule that only fires on Feb 29 is rare but valid.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ITEM = re.compile(
    r"(?:\*|(?P<a>[0-9]{1,2}|[A-Za-z]{3})(?:-(?P<b>[0-9]{1,2}|[A-Za-z]{3}))?)"
    r"(?:/(?P<step>[0-9]{1,2}))?",
    re.ASCII,
)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Searches from here on may run off the calendar (year 9999) and find no run.
_CALENDAR_END_MS = 253_086_768_000_000  # 9990-01-01T00:00:00Z
_HOST_SPECIFIC_ZONES = frozenset({"localtime", "posixrules"})  # differ between nodes


class _CronSyntaxError(ValueError):
    """A problem in a cron expression; :func:`parse_cron` names the field."""


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i
    day_field: bool = False  # accepts "?"


_SECOND = _FieldSpec("second", 0, 59)
_MINUTE = _FieldSpec("minute", 0, 59)
_HOUR = _FieldSpec("hour", 0, 23)
_DOM = _FieldSpec("day-of-month", 1, 31, day_field=True)
_MONTH = _FieldSpec("month", 1, 12, _MONTHS)
_DOW = _FieldSpec("day-of-week", 0, 7, _WEEKDAYS, day_field=True)


@dataclass(frozen=True, slots=True)
class _Field:
    """One expanded field: ``values`` is None for ``*``; ``last`` is day-of-month ``L``."""

    values: frozenset[int] | None
    last: bool = False

    def croniter_text(self) -> str:
        if self.values is None:
            return "*"
        return ",".join([str(v) for v in sorted(self.values)] + (["l"] if self.last else []))


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A validated cron expression.

    ``expression`` is the client's text with whitespace collapsed (what the API
    echoes); ``croniter_text`` is the expanded six-field form, seconds *last*,
    that is handed to croniter.
    """

    expression: str
    croniter_text: str


def parse_cron(expression: object, field: str = "cron_expression") -> CronSchedule:
    """Validate a cron expression; raise :class:`ValidationError` on ``field``.

    Rejects expressions that can never fire (``0 0 30 2 *``).
    """
    if not isinstance(expression, str):
        raise ValidationError(field, "must be a string")
    if len(expression) > MAX_CRON_CHARS:
        raise ValidationError(field, f"must be at most {MAX_CRON_CHARS} characters")
    if not expression.isascii():
        raise ValidationError(field, "must contain only ASCII characters")
    try:
        return _parse_cron_text(expression)
    except _CronSyntaxError as exc:
        raise ValidationError(field, str(exc)) from None


@lru_cache(maxsize=1024)
def _parse_cron_text(expression: str) -> CronSchedule:
    fields = expression.split()
    if len(fields) == 1 and fields[0].lower() in _MACROS:
        normal = fields[0].lower()
        fields = _MACROS[normal].split()
    else:
        normal = " ".join(fields)
    if len(fields) not in (5, 6):
        raise _CronSyntaxError("must have 5 fields, 6 with seconds first, or be a macro")
    # Seconds come FIRST in our 6-field form; croniter wants them last.
    seconds = fields[0] if len(fields) == 6 else "0"
    minute, hour, dom, month, dow = fields[-5:]
    expanded = [
        _parse_field(minute, _MINUTE),
        _parse_field(hour, _HOUR),
        _parse_field(dom, _DOM),
        _parse_field(month, _MONTH),
        _parse_field(dow, _DOW),
        _parse_field(seconds, _SECOND),
    ]
    _check_can_fire(expanded[2], expanded[3], expanded[4])
    return CronSchedule(normal, " ".join(f.croniter_text() for f in expanded))


def _parse_field(text: str, spec: _FieldSpec) -> _Field:
    if text == "*" or (text == "?" and spec.day_field):
        return _Field(None)
    values: set[int] = set()
    last = False
    for item in text.split(","):
        if item in ("L", "l") and spec is _DOM:
            last = True
        else:
            values.update(_parse_item(item, spec))
    if spec is _DOW:
        values = {0 if v == 7 else v for v in values}  # 7 is Sunday too
    return _Field(frozenset(values), last)


def _parse_item(item: str, spec: _FieldSpec) -> range:
    match = _ITEM.fullmatch(item)
    if match is None:
        raise _CronSyntaxError(f"invalid {spec.name} field {item!r}")
    a, b, step_text = match.group("a", "b", "step")
    star_high = 6 if spec is _DOW else spec.high  # "*" in day-of-week must not add 7
    low = spec.low if a is None else _value(a, spec)
    high = _value(b, spec) if b is not None else star_high if a is None or step_text else low
    if low > high:
        raise _CronSyntaxError(f"{spec.name} range {item!r} runs backwards")
    step = 1 if step_text is None else int(step_text)
    if not 1 <= step <= spec.high - spec.low + 1:
        raise _CronSyntaxError(f"{spec.name} step in {item!r} is out of range")
    return range(low, high + 1, step)


def _value(text: str, spec: _FieldSpec) -> int:
    if text.isdigit():
        value = int(text)
    elif text.lower() in spec.names:
        value = spec.low + spec.names.index(text.lower())
    else:
        raise _CronSyntaxError(f"invalid {spec.name} value {text!r}")
    if not spec.low <= value <= spec.high:
        raise _CronSyntaxError(f"{spec.name} value {value} is out of {spec.low}-{spec.high}")
    return value


def _check_can_fire(dom: _Field, month: _Field, dow: _Field) -> None:
    # Only "day-of-month AND month" can be impossible: a restricted weekday ORs
    # in other days, and L always exists.
    if dom.values is None or dom.last or month.values is None or dow.values is not None:
        return
    if min(dom.values) > max(_MONTH_DAYS[m - 1] for m in month.values):
        raise _CronSyntaxError("never fires: no chosen month has the chosen day")


def validate_timezone(name: object, field: str = "timezone") -> str:
    """Return ``name`` if it is an IANA time zone this node knows, else raise
    :class:`ValidationError` on ``field``.  Host-specific names such as
    ``localtime`` are rejected: every node must read a zone the same way."""
    if not isinstance(name, str):
        raise ValidationError(field, "must be a string naming an IANA time zone")
    if name not in _known_zones() or name in _HOST_SPECIFIC_ZONES:
        raise ValidationError(field, f"unknown time zone {name[:64]!r}")
    return name


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # Scanning the tz database is slow (~50 ms); the set never changes in a process.
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(validate_timezone(name))


def next_fire(cron: str, tz: str, after_ms: int) -> int | None:
    """The first run of ``cron`` in zone ``tz`` strictly after ``after_ms``.

    Returns epoch ms, or None when there is none before year 10000.  Raises
    :class:`ValidationError` for an invalid expression or zone.  See the
    module docstring for how DST gaps and repeated hours are handled.
    """
    schedule = parse_cron(cron)
    zone = _zone(tz)
    try:
        start = _search_start(after_ms, zone)
        # The explicit lists make croniter's wall-clock search exact; the loop
        # guards the (unexpected) case of a candidate that is not after after_ms.
        it = croniter(schedule.croniter_text, start, ret_type=datetime)
        for _ in range(4):
            instant_ms = _wall_to_instant_s(it.get_next(datetime), zone) * 1000
            if instant_ms > after_ms:
                return instant_ms if instant_ms <= MAX_EPOCH_MS else None
    except (OverflowError, ValueError):  # croniter's "no date found" is a ValueError
        if after_ms < _CALENDAR_END_MS:
            raise  # a parsed expression always has a run within 8 years: this is a bug
        return None
    return None


def _search_start(after_ms: int, zone: zoneinfo.ZoneInfo) -> datetime:
    """The naive wall time croniter searches strictly after."""
    after_s = after_ms // 1000
    local = datetime.fromtimestamp(after_s, zone)
    wall = local.replace(tzinfo=None)
    if local.fold == 1:
        # after_ms is in the second pass of a repeated hour: each wall time of
        # that hour already fired on the first pass, so resume where it ends.
        transition = _transition_s(_instant_s(wall, zone, 0), after_s, zone)
        wall = max(wall, _wall(transition - 1, zone))
    return wall


def _wall(epoch_s: int, zone: zoneinfo.ZoneInfo) -> datetime:
    return datetime.fromtimestamp(epoch_s, zone).replace(tzinfo=None)


def _instant_s(wall: datetime, zone: zoneinfo.ZoneInfo, fold: int) -> int:
    return (wall.replace(tzinfo=zone, fold=fold) - _UTC_EPOCH) // timedelta(seconds=1)


def _wall_to_instant_s(wall: datetime, zone: zoneinfo.ZoneInfo) -> int:
    """The instant a wall time fires: its first occurrence, or the end of the gap."""
    first = _instant_s(wall, zone, 0)  # fold=0 is the earlier of two occurrences
    if _wall(first, zone) == wall:
        return first
    # In a gap fold=1 reads the wall with the later (larger) offset, fold=0 with
    # the earlier one, so the transition lies between the two readings.
    return _transition_s(_instant_s(wall, zone, 1), first, zone)


def _transition_s(before_s: int, after_s: int, zone: zoneinfo.ZoneInfo) -> int:
    """The first second in ``(before_s, after_s]`` with ``after_s``'s UTC offset.

    Assumes one offset change between the two (true for DST and zone changes).
    """
    target = datetime.fromtimestamp(after_s, zone).utcoffset()
    low, high = before_s, after_s
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            high = mid
        else:
            low = mid
    return high


def next_run(spec: JobSpec, after_ms: int) -> int | None:
    """The run of a recurring job strictly after ``after_ms``, or None when the
    series is over (past ``last_date``, inclusive) or the job is one-time."""
    if spec.type is not JobType.RECURRENTE or spec.cron_expression is None:
        return None
    run = next_fire(spec.cron_expression, spec.timezone, after_ms)
    if run is None or (spec.last_date_ms is not None and run > spec.last_date_ms):
        return None
    return run


def first_fire(spec: JobSpec, created_ms: int) -> int | None:
    """The first run of a job created at ``created_ms``.

    One-time: its ``timestamp``.  Recurring: the first run not before
    ``timestamp`` when given, and in any case strictly after creation; None when
    that run would fall after ``last_date``.
    """
    if spec.type is JobType.UNICO:
        return spec.timestamp_ms
    after = created_ms
    if spec.timestamp_ms is not None:
        after = max(after, spec.timestamp_ms - 1)
    return next_run(spec, after)


def after_downtime(
    spec: JobSpec,
    last_due_ms: int,
    now_ms: int,
    *,
    grace_ms: int = DEFAULT_MISFIRE_GRACE_MS,
) -> tuple[bool, int | None]:
    """Decide what a job whose run was due at ``last_due_ms`` does at ``now_ms``.

    Returns ``(fire_now, next_ms)``: whether to fire one run now (its occurrence
    time, hence idempotency key, is ``last_due_ms``) and the run to schedule
    after it (None when the series is over).

    - Not yet due: ``(False, last_due_ms)``.
    - One-time job, due: ``(True, None)``: it fires once, however late (under
      either misfire policy: skipping would mean never running it).
    - Recurring, on time (late by at most ``grace_ms``) or ``fire_once``: one
      run now for every run missed since ``last_due_ms``, then the next run
      strictly after ``now_ms``.
    - Recurring, ``skip`` and late: no run now; the next run after ``now_ms``.
    """
    if last_due_ms > now_ms:
        return False, last_due_ms
    if spec.type is JobType.UNICO:
        return True, None
    following = next_run(spec, now_ms)
    late = now_ms - last_due_ms > grace_ms
    if late and spec.misfire_policy is MisfirePolicy.SKIP:
        return False, following
    return True, following


# --- runs not fired ----------------------------------------------------------------------

MAX_COUNTED_RUNS = 1_000  # runs counted one by one in a range; beyond, "at least" this


@dataclass(frozen=True, slots=True)
class Runs:
    """The runs of a schedule in a range: how many (at most MAX_COUNTED_RUNS), the
    first and the latest (exact, past the cap too); None when there are none.
    ``after`` is the first run past the range (None: the series ends in it)."""

    count: int = 0
    first: int | None = None
    last: int | None = None
    after: int | None = None


def runs_between(spec: JobSpec, after_ms: int, until_ms: int) -> Runs:
    """The runs of a recurring job in ``(after_ms, until_ms]``, ``last_date`` honoured."""
    first = last = None
    count = 0
    while count < MAX_COUNTED_RUNS:
        run = next_run(spec, last if last is not None else after_ms)
        if run is None or run > until_ms:
            return Runs(count, first, last, run)
        first = run if first is None else first
        last, count = run, count + 1
    assert last is not None
    # Counted enough: find the latest run by looking back from until_ms in growing steps.
    step = 1_000
    while True:
        low = max(last, until_ms - step)
        run = next_run(spec, low)
        if run is not None and run <= until_ms:
            break
        if low == last:
            return Runs(count, first, last, run)
        step *= 2
    while (following := next_run(spec, run)) is not None and following <= until_ms:
        run = following
    return Runs(count, first, run, following)


# --- jitter -------------------------------------------------------------------------------


def jitter_offset(job_id: str, occurrence_ms: int, jitter_ms: int) -> int:
    """How long after ``occurrence_ms`` the job's first attempt fires: a pseudo-random
    number in [0, jitter_ms) fixed by the job and the occurrence, so every leader,
    before and after a failover, picks the same one (no state to replicate), and
    jobs due at the same instant spread evenly over the window."""
    if jitter_ms <= 0:
        return 0
    digest = hashlib.sha256(f"{job_id}\0{occurrence_ms}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % jitter_ms


def jitter_of(spec: JobSpec, occurrence_ms: int, trigger: bool) -> int:
    """How far the job's jitter moves ``occurrence_ms`` (0 for a triggered run, or a
    job without jitter); its retries keep the figure."""
    if spec.jitter_ms is None or trigger:
        return 0
    return jitter_offset(spec.id, occurrence_ms, spec.jitter_ms)


def attempt_fire_ms(spec: JobSpec, occurrence_ms: int, fire_at_ms: int, trigger: bool) -> int:
    """When an attempt due at ``fire_at_ms`` fires: its occurrence's first attempt
    (due at the occurrence itself) moved by the job's jitter; a retry, or a run asked
    for by a trigger, at its own time."""
    if fire_at_ms != occurrence_ms:
        return fire_at_ms
    return occurrence_ms + jitter_of(spec, occurrence_ms, trigger)
