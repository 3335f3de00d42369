"""Tests for scheduled_db.jobs.validation: the POST /jobs body and list-query parameters."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.model import JOB_STATUSES, JobSpec, JobStatus, JobType, MisfirePolicy
from scheduled_db.jobs.timestamps import parse_timestamp
from scheduled_db.jobs.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    JOB_FIELDS,
    MAX_PAYLOAD_DEPTH,
    decode_cursor,
    encode_cursor,
    parse_job_spec,
    parse_limit,
    validate_status_filter,
)

NOW = parse_timestamp("2026-01-01T00:00:00Z")
GEN = "6f1c2b1e-8a4c-4d0e-9a7b-3f2d1c0b9a87"
TOMORROW = "2026-01-02T00:00:00Z"


def parse(body: object, **kwargs: Any) -> JobSpec:
    kwargs.setdefault("header_secret_names", ("token",))
    return parse_job_spec(body, NOW, generated_id=GEN, **kwargs)


def unico(**fields: object) -> dict[str, object]:
    return {"type": "unico", "timestamp": TOMORROW, **fields}


def recurrente(**fields: object) -> dict[str, object]:
    return {"type": "recurrente", "cron_expression": "*/5 * * * *", **fields}


def test_minimal_unico() -> None:
    assert parse(unico()) == JobSpec(
        id=GEN, type=JobType.UNICO, timestamp_ms=parse_timestamp(TOMORROW)
    )


def test_full_recurrente() -> None:
    body = {
        "id": "report.daily:eu-1_A",
        "type": "recurrente",
        "timestamp": "2026-01-05T00:00:00+01:00",
        "cron_expression": " 0  9 * * MON-FRI ",
        "timezone": "Europe/Madrid",
        "last_date": 1_798_761_600,  # 2027-01-01T00:00:00Z as epoch seconds
        "webhook_url": "https://hooks.example.com:8443/jobs?x=1#frag",
        "payload": {"a": [1, 2.5, None, True, "ü"], "b": {"c": {}}},
        "misfire_policy": "skip",
        "max_attempts": 5,
        "timeout": "1m30s",
    }
    assert parse(body) == JobSpec(
        id="report.daily:eu-1_A",
        type=JobType.RECURRENTE,
        timestamp_ms=parse_timestamp("2026-01-04T23:00:00Z"),
        cron_expression="0 9 * * MON-FRI",
        timezone="Europe/Madrid",
        last_date_ms=1_798_761_600_000,
        webhook_url="https://hooks.example.com:8443/jobs?x=1#frag",
        payload={"a": [1, 2.5, None, True, "ü"], "b": {"c": {}}},
        misfire_policy=MisfirePolicy.SKIP,
        max_attempts=5,
        timeout_ms=90_000,
    )


def test_nulls_mean_absent() -> None:
    body = unico(
        id=None,
        timezone=None,
        last_date=None,
        webhook_url=None,
        payload=None,
        misfire_policy=None,
        max_attempts=None,
        timeout=None,
        cron_expression=None,
    )
    assert parse(body) == parse(unico())


@pytest.mark.parametrize(
    ("timeout", "ms"),
    [("1s", 1_000), ("1h", 3_600_000), (30, 30_000), (1.5, 1_500), ("45", 45_000)],
)
def test_timeout_forms(timeout: object, ms: int) -> None:
    assert parse(unico(timeout=timeout)).timeout_ms == ms


def test_recurrente_start_in_the_past_is_allowed() -> None:
    spec = parse(recurrente(timestamp="2020-01-01T00:00:00Z"))
    assert spec.timestamp_ms == parse_timestamp("2020-01-01T00:00:00Z")


def test_macro_is_stored_lowercase() -> None:
    assert parse(recurrente(cron_expression="@Daily")).cron_expression == "@daily"


def test_unico_accepts_a_later_last_date() -> None:
    assert parse(unico(last_date="2026-01-03T00:00:00Z")).last_date_ms is not None


HUGE = 10**400
BAD_BODIES: list[tuple[object, str, str]] = [
    (None, "body", "JSON object"),
    ([], "body", "JSON object"),
    ("x", "body", "JSON object"),
    (5, "body", "JSON object"),
    ({1: "x"}, "body", "must be strings"),
    (unico(extra=1), "extra", "unknown field"),
    (unico(zz=1, aa=2), "aa", "also: zz"),
    (unico(**{"bad\nname": 1}), "bad\\x0aname", "unknown field"),
    ({}, "type", "is required"),
    ({"type": "UNICO", "timestamp": TOMORROW}, "type", "unico or recurrente"),
    ({"type": True}, "type", "unico or recurrente"),
    ({"type": ["unico"]}, "type", "unico or recurrente"),
    (unico(id=""), "id", "1 to 256"),
    (unico(id="a" * 257), "id", "1 to 256"),
    (unico(id="\U0001f600" * 257), "id", "1 to 256"),
    (unico(id="a/b"), "id", "'/'"),
    (unico(id="/"), "id", "'/'"),
    (unico(id="a\x00"), "id", "control characters or line breaks (it holds U+0000)"),
    (unico(id="line\nbreak"), "id", "(it holds U+000A)"),
    (unico(id="tab\t"), "id", "U+0009"),
    (unico(id="del\x7f"), "id", "U+007F"),
    (unico(id="nel\x85"), "id", "U+0085"),
    (unico(id="ls\u2028"), "id", "line breaks (it holds U+2028)"),
    (unico(id="\ud800"), "id", "lone surrogate"),
    (unico(id=".."), "id", "'.' or '..'"),
    (unico(id="."), "id", "'.' or '..'"),
    (unico(id=7), "id", "must be a string"),
    (unico(id=True), "id", "must be a string"),
    ({"type": "unico"}, "timestamp", "required for unico"),
    (unico(timestamp="2025-12-31T23:59:59Z"), "timestamp", "in the future"),
    (unico(timestamp="2026-01-01T00:00:00Z"), "timestamp", "in the future"),
    (unico(timestamp=True), "timestamp", "boolean"),
    (unico(timestamp="2026-01-02T00:00:00"), "timestamp", "UTC offset"),
    (unico(timestamp=float("nan")), "timestamp", "finite"),
    (unico(timestamp=HUGE), "timestamp", "after 9999"),
    (unico(timestamp={"a": 1}), "timestamp", "string or a number"),
    (unico(cron_expression="* * * * *"), "cron_expression", "only allowed for recurrente"),
    ({"type": "recurrente"}, "cron_expression", "required for recurrente"),
    (recurrente(cron_expression=5), "cron_expression", "must be a string"),
    (recurrente(cron_expression="* * *"), "cron_expression", "5 fields"),
    (recurrente(cron_expression="0 0 30 2 *"), "cron_expression", "never fires"),
    (recurrente(timezone="Mars/Olympus"), "timezone", "unknown time zone"),
    (recurrente(timezone=0), "timezone", "must be a string"),
    (unico(last_date="2025-06-01T00:00:00Z"), "last_date", "in the future"),
    (unico(last_date=TOMORROW), "last_date", "after timestamp"),
    (unico(last_date="yesterday"), "last_date", "not a valid timestamp"),
    (
        recurrente(cron_expression="0 0 1 1 *", last_date="2026-06-01T00:00:00Z"),
        "last_date",
        "no run of the schedule",
    ),
    (
        recurrente(cron_expression="0 0 1 1 *", timestamp="9999-06-01T00:00:00Z"),
        "cron_expression",
        "never fires",
    ),
    (unico(webhook_url=5), "webhook_url", "must be a string"),
    (unico(webhook_url=""), "webhook_url", "1 to 2048"),
    (unico(webhook_url="https://e.com/" + "a" * 2040), "webhook_url", "1 to 2048"),
    (unico(webhook_url="/relative/path"), "webhook_url", "absolute http"),
    (unico(webhook_url="example.com/hook"), "webhook_url", "absolute http"),
    (unico(webhook_url="ftp://example.com/"), "webhook_url", "absolute http"),
    (unico(webhook_url="javascript:alert(1)"), "webhook_url", "absolute http"),
    (unico(webhook_url="http://"), "webhook_url", "valid host"),
    (unico(webhook_url="http:///path"), "webhook_url", "valid host"),
    (unico(webhook_url="http://:80/"), "webhook_url", "valid host"),
    (unico(webhook_url="http://user:pw@example.com/"), "webhook_url", "credentials"),
    (unico(webhook_url="http://user@example.com/"), "webhook_url", "credentials"),
    (unico(webhook_url="http://exa mple.com/"), "webhook_url", "URL characters"),
    (unico(webhook_url="http://example.com/\n"), "webhook_url", "URL characters"),
    (unico(webhook_url="http://example.com\\@evil.com/"), "webhook_url", "URL characters"),
    (unico(webhook_url="http://ex\u00e4mple.com/"), "webhook_url", "URL characters"),
    (unico(webhook_url="http://[::1/"), "webhook_url", "not a valid URL"),
    (unico(webhook_url="http://example.com:99999/"), "webhook_url", "not a valid URL"),
    (unico(webhook_url="http://example.com:abc/"), "webhook_url", "not a valid URL"),
    (unico(webhook_url="http://example.com:0/"), "webhook_url", "port"),
    (unico(webhook_url="http://exa%41mple.com/"), "webhook_url", "valid host"),
    (unico(webhook_url="http://-bad-.com/"), "webhook_url", "valid host"),
    (unico(payload=[1, 2]), "payload", "JSON object"),
    (unico(payload="text"), "payload", "JSON object"),
    (unico(payload={"n": float("nan")}), "payload", "NaN or Infinity"),
    (unico(payload={"n": [float("inf")]}), "payload", "NaN or Infinity"),
    (unico(payload={"n": 2**64}), "payload", "64-bit"),
    (unico(payload={"n": -(2**63) - 1}), "payload", "64-bit"),
    (unico(payload={"s": "\ud800"}), "payload", "not valid Unicode"),
    (unico(payload={"\udfff": 1}), "payload", "not valid Unicode"),
    (unico(payload={"t": (1, 2)}), "payload", "not JSON"),
    (unico(payload={"b": b"bytes"}), "payload", "not JSON"),
    (unico(misfire_policy="never"), "misfire_policy", "fire_once or skip"),
    (unico(misfire_policy=1), "misfire_policy", "fire_once or skip"),
    (unico(max_attempts=0), "max_attempts", "between 1 and 100"),
    (unico(max_attempts=101), "max_attempts", "between 1 and 100"),
    (unico(max_attempts=HUGE), "max_attempts", "between 1 and 100"),
    (unico(max_attempts=True), "max_attempts", "integer"),
    (unico(max_attempts=3.0), "max_attempts", "integer"),
    (unico(max_attempts="3"), "max_attempts", "integer"),
    (unico(timeout="0s"), "timeout", "between 1s and 1h"),
    (unico(timeout="999ms"), "timeout", "between 1s and 1h"),
    (unico(timeout="1h1ms"), "timeout", "between 1s and 1h"),
    (unico(timeout=0.5), "timeout", "between 1s and 1h"),
    (unico(timeout=-5), "timeout", "between 1s and 1h"),
    (unico(timeout=HUGE), "timeout", "between 1s and 1h"),
    (unico(timeout=float("nan")), "timeout", "between 1s and 1h"),
    (unico(timeout=float("inf")), "timeout", "between 1s and 1h"),
    (unico(timeout="ten seconds"), "timeout", "must be a duration"),
    (unico(timeout=True), "timeout", "duration such as"),
    (unico(timeout=[]), "timeout", "duration such as"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_BODIES)
def test_rejects(body: object, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(body)
    assert info.value.field == field
    assert message in info.value.message
    text = str(info.value)
    assert text.startswith(f"{field}: ") and "\n" not in text
    text.encode("utf-8")  # renderable even when the input was not


@pytest.mark.parametrize(
    "job_id",
    ["tarea-año", "job 1", "user@x.com", "50%", "why?", "#7", "a+b", " padded ", "任务-1",
     "\u202eevil", "..x", "~", "\U0001f600" * 256, "x" * 256],
)  # fmt: skip
def test_accepts_any_id_of_1_to_256_characters_without_slash_or_controls(job_id: str) -> None:
    # As the original does (any string), but for what no path or log line can carry.
    assert parse(unico(id=job_id)).id == job_id


def test_payload_depth_limit() -> None:
    def nested(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(depth - 1):
            value = {"k": value}
        return value

    assert parse(unico(payload=nested(MAX_PAYLOAD_DEPTH))).payload is not None
    with pytest.raises(ValidationError, match="nested deeper"):
        parse(unico(payload=nested(MAX_PAYLOAD_DEPTH + 1)))
    deep: list[Any] = []
    for _ in range(100_000):  # far past the recursion limit of any recursive walker
        deep = [deep]
    with pytest.raises(ValidationError, match="nested deeper"):
        parse(unico(payload={"deep": deep}))


def test_payload_size_limit_is_compact_utf8_json() -> None:
    overhead = len('{"s":""}')
    fits = {"s": "x" * (DEFAULT_MAX_PAYLOAD_BYTES - overhead)}
    assert parse(unico(payload=fits)).payload == fits
    with pytest.raises(ValidationError, match="limit is 262144"):
        parse(unico(payload={"s": "x" * (DEFAULT_MAX_PAYLOAD_BYTES - overhead + 1)}))
    # Multi-byte characters count as their UTF-8 bytes.
    with pytest.raises(ValidationError, match="limit is 100"):
        parse(unico(payload={"s": "\u00fc" * 50}), max_payload_bytes=100)


# --- property tests ----------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["\ud800", "\x00", "\u2028", "unico", "recurrente", "skip", "fire_once"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
FIELD_NAMES = list(JOB_FIELDS)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.isoformat(sep=" ", timespec="seconds")),
    st.integers(NOW // 1000 - 10**6, NOW // 1000 + 10**9),
    st.floats(NOW / 1000 - 1e6, NOW / 1000 + 1e9),
    st.integers(NOW // 1000, NOW // 1000 + 10**8).map(str),
    st.sampled_from(["", "now", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z", "0"]),
)
cron_tokens = ["*", "?", "L", "l", "0", "5", "59", "60", "*/5", "1-5", "5-1", "MON", "jan"]
cron_tokens += ["7", "13", "32", "#", "/", "-", ",", "*/0", "1#2", "H", "R", "@daily", "@hourly"]
crons = st.lists(st.sampled_from(cron_tokens), min_size=1, max_size=7).flatmap(
    lambda parts: st.sampled_from([" ", ",", "  ", "\t"]).map(lambda sep: sep.join(parts))
)
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "http:", "//"]),
    st.sampled_from(["example.com", "127.0.0.1", "[::1]", "", "u:p@h", "a..b", "x" * 70, "[::1"]),
    st.sampled_from(["", ":80", ":0", ":65536", ":x", ":"]),
    st.text(alphabet="/?#%&=a \\\x00\u00e9", max_size=10),
)
TARGETED: dict[str, st.SearchStrategy[object]] = {
    "id": st.text(alphabet="aZ09._:-/ \x00\u00e9", max_size=300) | st.just("x" * 256),
    "type": st.sampled_from(["unico", "recurrente", "Unico", ""]),
    "timestamp": timestamps,
    "cron_expression": crons,
    "timezone": st.sampled_from(["UTC", "Europe/Madrid", "America/New_York", "", "Etc/GMT+5"])
    | st.text(max_size=20),
    "last_date": timestamps,
    "webhook_url": urls,
    "payload": st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    "misfire_policy": st.sampled_from(["fire_once", "skip", "FIRE_ONCE", ""]),
    "max_attempts": st.integers(-3, 105) | st.floats(0, 200),
    "timeout": st.sampled_from(["1s", "30s", "1h", "61m", "0.5s", "250ms", "1h1ms", "x"])
    | st.integers(-2, 4000)
    | st.floats(),
    "signing_secret_ref": st.sampled_from(["billing", "", "no such name"]) | st.text(max_size=8),
    "labels": st.dictionaries(
        st.sampled_from(["team", "env", "app.kubernetes.io/name", "-x", "a=b", ""])
        | st.text(max_size=70),
        st.text(max_size=300) | json_values,
        max_size=34,
    ),
    "method": st.sampled_from(["POST", "get", "PUT", "PATCH", "DELETE", "HEAD", ""]),
    "jitter": st.sampled_from(["10s", "0s", "25h", "1ms", "x", ""])
    | st.integers(-2, 90_000)
    | st.floats(),
    "headers": st.dictionaries(
        st.sampled_from(["Authorization", "X-Team", "Host", "x-scheduled-db-attempt", "a b", ""])
        | st.text(max_size=12),
        st.text(max_size=20)
        | st.sampled_from([{"secret_ref": "token"}, {"secret_ref": "nope"}, {"x": 1}])
        | json_values,
        max_size=34,
    ),
    "on_failure": st.fixed_dictionaries(
        {},
        optional={
            "url": urls,
            "headers": st.sampled_from([{"X-Team": "a"}, {"Host": "x"}, {"secret_ref": "token"}]),
            "every_attempt": st.booleans() | json_values,
            "other": json_values,
        },
    ),
    "on_success": st.fixed_dictionaries(
        {}, optional={"url": urls, "headers": st.just({"X-A": "b"}), "every_attempt": st.just(True)}
    ),
    "overlap": st.sampled_from(["skip", "allow", "buffer_one", "SKIP", ""]),
}
bodies = st.fixed_dictionaries(
    {"type": st.sampled_from(["unico", "recurrente"]) | TARGETED["type"] | json_values},
    optional={name: TARGETED[name] | json_values for name in FIELD_NAMES if name != "type"},
)


def check_contract(body: object) -> None:
    """Any input gives a JobSpec or a ValidationError, never another exception;
    an accepted spec survives the JSON and msgpack encodings the system uses."""
    try:
        spec = parse(body)
    except ValidationError as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc)
        str(exc).encode("utf-8")
        return
    wire = spec.to_wire()
    assert JobSpec.from_wire(msgpack.unpackb(msgpack.packb(wire), strict_map_key=False)) == spec
    json.dumps(wire, allow_nan=False).encode("utf-8")
    assert spec.type is JobType.RECURRENTE or (spec.timestamp_ms or 0) > NOW


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_as_body(body: object) -> None:
    check_contract(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_any_mix_of_fields(body: dict[str, object]) -> None:
    check_contract(body)


simple_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
VALID: dict[str, st.SearchStrategy[object]] = {
    "id": st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="/"),
        min_size=1,
        max_size=40,
    ).filter(lambda text: text not in (".", "..")),
    "timezone": st.sampled_from(["UTC", "Europe/Madrid", "America/New_York", "Asia/Kolkata"]),
    "webhook_url": st.sampled_from(
        [
            "http://example.com",
            "https://a.b.example:8443/x?y=1",
            "http://10.0.0.1/h",
            "http://[::1]:80/",
        ]
    ),
    "payload": st.dictionaries(st.text(max_size=5), simple_json, max_size=4),
    "misfire_policy": st.sampled_from(["fire_once", "skip"]),
    "max_attempts": st.integers(1, 100),
    "timeout": st.sampled_from(["1s", "30s", "1h", "1m30s", "2.5s"]) | st.integers(1, 3600),
    "labels": st.dictionaries(
        st.sampled_from(["team", "env", "app.kubernetes.io/name", "a", "x_1"]),
        st.text(alphabet="abc 1-ñ", max_size=20),
        max_size=5,
    ),
    "method": st.sampled_from(["POST", "put", "PATCH"]),
    "jitter": st.sampled_from(["10s", "1m", "250ms", "24h"]) | st.integers(1, 86_400),
    "headers": st.dictionaries(
        st.sampled_from(["Authorization", "X-Team", "x-api-key", "Accept"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
        | st.just({"secret_ref": "token"}),
        max_size=4,
    ),
}
future = st.integers(NOW // 1000 + 1, NOW // 1000 + 10**9) | st.datetimes(
    min_value=datetime(2026, 1, 2), max_value=datetime(2050, 1, 1)
).map(lambda d: d.isoformat() + "+00:00")
valid_unico = st.fixed_dictionaries(
    {"type": st.just("unico"), "timestamp": future},
    optional={"last_date": st.just("9999-01-01T00:00:00Z"), **VALID},
)
valid_recurrente = st.fixed_dictionaries(
    {
        "type": st.just("recurrente"),
        "cron_expression": st.sampled_from(
            ["* * * * *", "*/7 3 * * MON", "0 0 L * *", "30 0 12 * * *", "@yearly", "0 0 29 2 *"]
        ),
    },
    optional={
        "timestamp": future | st.integers(0, NOW // 1000),
        "last_date": st.just("9000-01-01T00:00:00Z"),
        **VALID,
    },
)
valid_bodies = valid_unico | valid_recurrente
# Errors a change to one field may surface on another field that depends on it.
DEPENDENTS = {
    "type": {"timestamp", "cron_expression", "last_date"},
    "timestamp": {"last_date", "cron_expression"},
    "cron_expression": {"last_date"},
    "timezone": {"last_date"},
    "method": {"payload"},  # a GET or DELETE carries no payload
}


@settings(max_examples=200, deadline=None)
@given(valid_bodies)
def test_valid_bodies_are_accepted(body: dict[str, Any]) -> None:
    spec = parse(body)
    assert spec.id == body.get("id", GEN)
    assert spec.type.value == body["type"]
    assert spec.timezone == body.get("timezone", "UTC")
    assert spec.payload == body.get("payload")
    check_contract(body)


@settings(max_examples=400, deadline=None)
@given(valid_bodies, st.sampled_from(FIELD_NAMES + ["unknown"]), st.data())
def test_one_bad_field_on_a_valid_body_is_named(
    body: dict[str, Any], field: str, data: st.DataObject
) -> None:
    value = data.draw(TARGETED.get(field, json_values) | json_values)
    changed = {**body, field: value}
    check_contract(changed)
    try:
        parse(changed)
    except ValidationError as exc:
        nested = ("headers", "on_failure", "on_success")  # headers.<name>, on_failure.url...
        named = exc.field.split(".", 1)[0] if field in nested else exc.field
        assert named in {field} | DEPENDENTS.get(field, set())


# --- query parameters --------------------------------------------------------


def test_status_filter() -> None:
    for status in JOB_STATUSES:
        assert validate_status_filter(status.value) is status
    with pytest.raises(ValidationError):  # an executions entry's status, never a job's
        validate_status_filter("skipped")
    assert validate_status_filter("skipped", executions=True) is JobStatus.SKIPPED
    for bad in ["", "PENDING", "done", None, 1, ["pending"]]:
        with pytest.raises(ValidationError) as info:
            validate_status_filter(bad)
        assert str(info.value) == "status: Invalid status value"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 100), ("", 100), ("1", 1), ("1000", 1000), ("0050", 50), (7, 7)],
)
def test_limit(value: object, expected: int) -> None:
    assert parse_limit(value) == expected


@pytest.mark.parametrize(
    "value", ["0", "1001", "-1", "1.5", "abc", " 5", "\u0665", "9" * 20, True, 0, 5000, []]
)
def test_limit_rejects(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_limit(value)
    assert info.value.field == "limit"


@given(st.text(max_size=300))
def test_cursor_round_trips(key: str) -> None:
    token = encode_cursor(key)
    assert token.isascii() and "=" not in token
    assert decode_cursor(token) == key


@given(st.one_of(st.text(max_size=40), st.none(), st.integers(), st.binary().map(repr)))
def test_decode_cursor_accepts_or_raises_validation_error(token: object) -> None:
    try:
        decode_cursor(token)
    except ValidationError as exc:
        assert str(exc) == "cursor: Invalid cursor"


def test_decode_cursor_rejects_foreign_tokens() -> None:
    assert decode_cursor(None) is None and decode_cursor("") is None
    for bad in ["!!!", "a" * 2000, "aGVsbG8", 5]:  # "aGVsbG8" is base64 of "hello": no prefix
        with pytest.raises(ValidationError):
            decode_cursor(bad)


# --- method and headers --------------------------------------------------------------


def test_method_defaults_to_post_and_is_kept_only_when_another() -> None:
    assert parse(unico()).method is None and parse(unico()).http_method == "POST"
    assert parse(unico(method="post")).method is None  # POST is the default: not stored
    assert parse(unico(method="put")).method == "PUT"
    assert parse(unico(method="GET")).http_method == "GET"
    for bad in ("HEAD", "CONNECT", "", 1):
        with pytest.raises(ValidationError) as err:
            parse(unico(method=bad))
        assert err.value.field == "method"
    with pytest.raises(ValidationError) as err:
        parse(unico(method="GET", payload={"a": 1}))
    assert err.value.field == "payload"


def test_headers_keep_their_order_and_secret_refs() -> None:
    spec = parse(unico(headers={"X-Team": "billing", "Authorization": {"secret_ref": "token"}}))
    assert spec.headers == (("X-Team", "billing", False), ("Authorization", "token", True))
    assert parse(unico(headers={})).headers == () and parse(unico(headers=None)).headers == ()


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"Host": "x"}, "headers.Host"),
        ({"content-length": "1"}, "headers.content-length"),
        ({"Idempotency-Key": "k"}, "headers.Idempotency-Key"),
        ({"X-Scheduled-DB-Attempt": "9"}, "headers.X-Scheduled-DB-Attempt"),
        ({"Transfer-Encoding": "chunked"}, "headers.Transfer-Encoding"),
        ({"webhook-signature": "v1,x"}, "headers.webhook-signature"),
        ({"a b": "x"}, "headers.a b"),
        ({"X-A": "line\r\nInjected: 1"}, "headers.X-A"),
        ({"X-A": "é"}, "headers.X-A"),
        ({"X-A": "x" * 4097}, "headers.X-A"),
        ({"X-A": 1}, "headers.X-A"),
        ({"X-A": {"secret_ref": "nope"}}, "headers.X-A"),
        ({"X-A": {"secret_ref": "token", "more": 1}}, "headers.X-A"),
        ({"X-A": "1", "x-a": "2"}, "headers.x-a"),
        ({f"X-{i}": "v" for i in range(33)}, "headers"),
        ({f"X-{i}": "v" * 4000 for i in range(5)}, "headers"),
        (["X-A"], "headers"),
    ],
)
def test_bad_headers_are_refused_naming_the_header(headers: object, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse(unico(headers=headers))
    assert err.value.field == field


def test_jitter_is_a_duration_up_to_a_day_and_zero_is_none() -> None:
    assert parse(unico(jitter="30s")).jitter_ms == 30_000
    assert parse(unico(jitter=1.5)).jitter_ms == 1_500
    assert parse(unico(jitter=0)).jitter_ms is None and parse(unico()).jitter_ms is None
    for bad in ("25h", -1, "soon", True, 86_401):
        with pytest.raises(ValidationError) as err:
            parse(unico(jitter=bad))
        assert err.value.field == "jitter"
