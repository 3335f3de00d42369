"""Property tests for job bodies and list queries: a sound job or a field error.

Valid bodies with some fields replaced by near-valid or arbitrary values (see
tests/property_inputs.py), unknown fields, any JSON value as a body, and any
``now`` from 1970 to the last millisecond of year 9999.  An accepted job is checked
against its invariants and carried through the command encoding, the state
machine and the record encoding, as the leader proposes it and every replica
stores it.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson
from hypothesis import event, given, settings
from hypothesis import strategies as st

from scheduled_db.errors import ValidationError, safe_text
from scheduled_db.jobs.model import Job, JobSpec, JobType
from scheduled_db.jobs.schedule import first_fire, parse_cron, validate_timezone
from scheduled_db.jobs.timestamps import MAX_EPOCH_MS, format_rfc3339
from scheduled_db.jobs.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    JOB_FIELDS,
    MAX_ATTEMPTS,
    MAX_JOB_ID_CHARS,
    MAX_PAYLOAD_DEPTH,
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    decode_cursor,
    parse_job_spec,
    parse_limit,
    validate_status_filter,
)
from scheduled_db.state import commands as c
from scheduled_db.state import records as r
from scheduled_db.state.results import ResultCode
from tests.fsm_helpers import Machine
from tests.property_inputs import (
    CALENDAR_END_MS,
    CI,
    NOW,
    any_timestamp,
    cron_texts,
    expect_error,
    mostly,
    rfc3339_like,
    zones,
)

GEN_ID = "00000000-0000-4000-8000-000000000000"


def _id_char_ok(ch: str) -> bool:
    """What a job id may hold, restated from the Unicode database (not the code's regex)."""
    return ch != "/" and unicodedata.category(ch) not in ("Cc", "Cs", "Zl", "Zp")


# --- job bodies --------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["\ud800", "\x00", "\u2028", "\U0001f600", "unico", "recurrente"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


def nested_payload(depth: int) -> dict[str, Any]:
    """A payload whose innermost value sits ``depth`` containers deep (the payload is one)."""
    inner: Any = 1
    for _ in range(depth - 1):
        inner = [inner]
    return {"deep": inner}


future_seconds = st.integers(NOW // 1000 + 1, MAX_EPOCH_MS // 1000)
near_timestamps = st.one_of(
    future_seconds,
    future_seconds.map(lambda s: format_rfc3339(s * 1000)),
    st.floats(NOW / 1000, MAX_EPOCH_MS / 1000),
    rfc3339_like().map(lambda case: case[0]),
    st.sampled_from([NOW // 1000, NOW / 1000, "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:60Z"]),
    any_timestamp,
)
NEAR_VALID: dict[str, st.SearchStrategy[object]] = {
    "id": st.from_regex(r"[A-Za-z0-9._:-]{1,12}", fullmatch=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [".", "..", "a/b", "a\x00b", "é", " a", "x" * 256, "x" * 257, "", "a\u2028", "\ud800"]
    ),
    "type": st.sampled_from(["unico", "recurrente", "UNICO", "Recurrente", "once", ""]),
    "timestamp": near_timestamps,
    "cron_expression": cron_texts,
    "timezone": zones,
    "last_date": near_timestamps,
    "webhook_url": st.sampled_from(
        ["http://example.com/h", "https://10.0.0.1:8443/x?y=1", "http://[::1]/", "http://h:0/"]
        + ["ftp://h/", "http://user:pw@h/", "http://", "http://exa mple.com/", "http://[::1/"]
        + ["http://h:99999/", "//h/x", "http://" + "a" * 64 + ".com/", "http://h/" + "p" * 2048]
    ),
    "payload": st.dictionaries(st.text(max_size=6), json_values, max_size=4)
    | st.integers(MAX_PAYLOAD_DEPTH - 2, MAX_PAYLOAD_DEPTH + 1).map(nested_payload),
    "misfire_policy": st.sampled_from(["fire_once", "skip", "SKIP", "never"]),
    "max_attempts": st.integers(-1, MAX_ATTEMPTS + 2) | st.sampled_from([1.0, True, "3"]),
    "timeout": st.sampled_from(["1s", "1h", "3601s", "999ms", "0.5s", "1m30s", "30", "1d"])
    | st.integers(-1, 3700)
    | st.floats(0, 4000)
    | st.sampled_from([float("nan"), float("inf"), 10**400]),
}
valid_unico = st.fixed_dictionaries(
    {"type": st.just("unico"), "timestamp": future_seconds},
    optional={"id": st.from_regex(r"[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,20}", fullmatch=True)},
)
valid_recurrente = st.fixed_dictionaries(
    {
        "type": st.just("recurrente"),
        "cron_expression": st.sampled_from(
            ["*/5 * * * *", "0 0 29 2 *", "@hourly", "0 30 2 * * *"]
        ),
    },
    optional={"timezone": st.sampled_from(["UTC", "Europe/Madrid", "America/New_York"])},
)


@st.composite
def job_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with some fields replaced by near-valid or arbitrary values and,
    sometimes, fields the API does not know."""
    body: dict[str, Any] = dict(draw(valid_unico | valid_recurrente))
    for name in draw(st.lists(st.sampled_from(sorted(NEAR_VALID)), max_size=5, unique=True)):
        body[name] = draw(mostly(NEAR_VALID[name], json_values))
    for name in draw(st.lists(st.sampled_from(sorted(JOB_FIELDS)), max_size=2, unique=True)):
        body.pop(name, None)
    extra = st.sampled_from(["Type", "id ", "__proto__", "x" * 300, "", "timestamp\x00"])
    for name in draw(mostly(st.just([]), st.lists(extra | st.text(max_size=8), max_size=2))):
        body[name] = draw(json_values)
    return body


nows = st.sampled_from([NOW, 0, CALENDAR_END_MS - 1, MAX_EPOCH_MS - 1000]) | st.integers(
    0, MAX_EPOCH_MS
)


def check_job_contract(body: object, now: int) -> JobSpec | None:
    """A JobSpec meeting every invariant, or a ValidationError naming a field of the body."""
    try:
        spec = parse_job_spec(body, now, generated_id=GEN_ID)
    except ValidationError as exc:
        named = set(JOB_FIELDS) | {"body"}
        if isinstance(body, dict):
            named |= {safe_text(k, 100) for k in body if isinstance(k, str)}
        expect_error(exc, *named)
        known = exc.field in JOB_FIELDS or exc.field == "body"
        event(f"rejected on {exc.field if known else 'an unknown field'}")
        return None
    event(f"accepted {spec.type.value}")
    assert isinstance(body, dict)
    check_spec_invariants(spec, now)
    check_round_trips(spec, now)
    return spec


def check_spec_invariants(spec: JobSpec, now: int) -> None:
    assert 1 <= len(spec.id) <= MAX_JOB_ID_CHARS and all(_id_char_ok(ch) for ch in spec.id)
    assert spec.id not in (".", "..")
    assert validate_timezone(spec.timezone) == spec.timezone
    fire = first_fire(spec, now)
    assert fire is not None and now < fire <= MAX_EPOCH_MS
    if spec.type is JobType.UNICO:
        assert spec.cron_expression is None and fire == spec.timestamp_ms
    else:
        assert spec.cron_expression is not None
        assert parse_cron(spec.cron_expression).expression == spec.cron_expression
        assert spec.timestamp_ms is None or fire >= spec.timestamp_ms
    if spec.last_date_ms is not None:
        assert now < spec.last_date_ms <= MAX_EPOCH_MS
        assert spec.timestamp_ms is None or spec.last_date_ms > spec.timestamp_ms
        assert fire <= spec.last_date_ms
    assert spec.max_attempts is None or 1 <= spec.max_attempts <= MAX_ATTEMPTS
    assert spec.timeout_ms is None or MIN_TIMEOUT_MS <= spec.timeout_ms <= MAX_TIMEOUT_MS
    if spec.payload is not None:
        # Compact UTF-8 JSON as the API writes it (a float's exponent without "+").
        assert len(orjson.dumps(spec.payload)) <= DEFAULT_MAX_PAYLOAD_BYTES


def check_round_trips(spec: JobSpec, now: int) -> None:
    """The job as the leader proposes it, as every replica applies it and stores it."""
    fire = first_fire(spec, now)
    assert fire is not None
    command = c.CreateJob(spec, now, fire)
    decoded = c.decode_command(c.encode_command(command))
    # Equal type for type (repr tells 1 from 1.0 and True, a list from a tuple): the
    # leader applies this command undecoded, its followers the decoded one.
    assert decoded == command and repr(decoded) == repr(command)
    machine = Machine()
    result = machine.one(command)
    assert result.code is ResultCode.OK and result.job == Job(spec, now, fire), result
    stored = machine.state.get(r.job_key(spec.id))
    assert stored is not None and r.decode_job(stored) == Job(spec, now, fire)


@settings(CI, max_examples=400)
@given(job_bodies(), nows)
def test_any_near_valid_body_is_a_sound_job_or_a_field_error(
    body: dict[str, Any], now: int
) -> None:
    check_job_contract(body, now)


@CI
@given(json_values)
def test_any_json_value_as_a_body(body: object) -> None:
    check_job_contract(body, NOW)


@CI
@given(valid_unico | valid_recurrente, nows)
def test_valid_bodies_round_trip_unless_now_leaves_no_run(body: dict[str, Any], now: int) -> None:
    spec = check_job_contract(body, now)
    if now == NOW:
        assert spec is not None, body


# --- list query parameters ---------------------------------------------------------------

query_text = st.text(max_size=40) | st.sampled_from(
    ["0", "1", "1000", "1001", "-1", "1e3", "0x10", "٣", "999999999", "9" * 40, " 5", "pending"]
)


@CI
@given(query_text | st.none() | st.integers() | st.booleans())
def test_query_parameters_are_values_or_field_errors(value: object) -> None:
    for check, field in (
        (parse_limit, "limit"),
        (decode_cursor, "cursor"),
        (validate_status_filter, "status"),
    ):
        try:
            got = check(value)
        except ValidationError as exc:
            expect_error(exc, field)
            continue
        if check is parse_limit:
            assert isinstance(got, int) and 1 <= got <= 1000
