"""Validation of client input: the ``POST /jobs`` body and the list-query parameters.

The contract: for any JSON-decodable input these functions return a value or
raise :class:`~scheduled_db.errors.ValidationError` naming the offending field,
never another exception.  A JSON ``null`` in an optional field means "absent".
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Collection
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson

from scheduled_db.config.units import parse_duration_ms
from scheduled_db.errors import ValidationError, safe_text
from scheduled_db.jobs.model import (
    JOB_STATUSES,
    MAX_JOB_ID_CHARS,
    Callback,
    JobSpec,
    JobStatus,
    JobType,
    MisfirePolicy,
    Overlap,
)
from scheduled_db.jobs.schedule import first_fire, parse_cron, validate_timezone
from scheduled_db.jobs.timestamps import parse_timestamp
from scheduled_db.policy.signing import SECRET_NAME

MAX_URL_CHARS = 2048
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024  # of the payload as compact UTF-8 JSON
MAX_PAYLOAD_DEPTH = 64  # well under msgpack's and json's own nesting limits
MAX_ATTEMPTS = 100
MIN_TIMEOUT_MS = 1_000
MAX_TIMEOUT_MS = 3_600_000
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A list cursor is an id's UTF-8 in unpadded base64: up to 1,366 characters for
# the longest id (256 characters of 4 bytes each).
MAX_CURSOR_CHARS = 2048

JOB_FIELDS = (  # what a job body may hold; anything else is refused by name
    "id",
    "type",
    "timestamp",
    "cron_expression",
    "timezone",
    "last_date",
    "webhook_url",
    "payload",
    "misfire_policy",
    "max_attempts",
    "timeout",
    "signing_secret_ref",
    "labels",
    "method",
    "headers",
    "jitter",
    "on_failure",
    "on_success",
    "overlap",
)
MAX_JITTER_MS = 86_400_000  # a day
METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
BODILESS_METHODS = frozenset({"GET", "DELETE"})  # sent without a body (as Cloud Scheduler)
MAX_HEADERS = 32
MAX_HEADER_NAME_CHARS = 128
MAX_HEADER_VALUE_CHARS = 4096
MAX_HEADERS_BYTES = 16 * 1024  # names and values together
# A header name: an RFC 9110 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)
# A header value: visible ASCII, spaces and tabs (no CR, LF, NUL: no header injection).
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*", re.ASCII)
# Headers a job may not set: what HTTP itself manages (hop-by-hop, Host, the body's
# framing) and what the cluster sends for every delivery (a receiver must be able to
# trust them: the idempotency key, the attempt and term, the signatures).
REFUSED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
        "Idempotency-Key", "webhook-id", "webhook-timestamp", "webhook-signature",
        "traceparent", "tracestate",
    )
)  # fmt: skip
OWN_HEADER_PREFIX = "x-scheduled-db-"
MAX_LABELS = 32
MAX_LABEL_KEY_CHARS = 63
MAX_LABEL_VALUE_CHARS = 256
# A label key: letters, digits and "-_./", beginning and ending with a letter or a
# digit (Kubernetes' keys, prefix and all: "team", "app.kubernetes.io/name").  It is
# written in a query as ``label=key=value``, so it has no "=".
LABEL_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?", re.ASCII)
# A label value: any text without control characters (nor the separators and lone
# surrogates ids refuse), empty included.
_LABEL_VALUE_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# What no job id may contain: "/" (a job is addressed as one path segment,
# /jobs/{id}), control characters (Unicode Cc: NUL, tab, newlines, DEL, C1), the
# line and paragraph separators U+2028/U+2029 (they break log lines and some JSON
# readers) and lone surrogates (no Unicode text: they have no UTF-8 form to store).
# Anything else goes, as in the original: spaces, "@", "%", "?", "#", "+", any script.
_ID_REFUSED = re.compile(r"[/\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# RFC 3986 characters only: no spaces, quotes, backslashes or non-ASCII, which
# URL parsers disagree about.  Clients percent-encode anything else.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.ASCII)
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.ASCII)  # inet_aton's number forms
_INT_RANGE = (-(2**63), 2**64 - 1)  # what the msgpack wire and storage can carry
_CURSOR = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_CURSOR_PREFIX = "v1:"
_STATUSES = frozenset(status.value for status in JOB_STATUSES)


def parse_job_spec(
    body: object,
    now_ms: int,
    *,
    generated_id: str,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    secret_names: Collection[str] = (),
    header_secret_names: Collection[str] = (),
) -> JobSpec:
    """Validate the JSON body of ``POST /jobs`` into a :class:`JobSpec`.

    ``generated_id`` (a fresh uuid4 from the caller) is used when the body has
    no ``id``; ``secret_names`` are the signing secrets a job may name,
    ``header_secret_names`` the header secrets.  Raises :class:`ValidationError`
    on the first bad field.
    """
    fields = _as_object(body)
    job_type = _job_type(fields.get("type"))
    timestamp_ms = _timestamp(fields.get("timestamp"), job_type, now_ms)
    spec = JobSpec(
        id=_job_id(fields.get("id"), generated_id),
        type=job_type,
        timestamp_ms=timestamp_ms,
        cron_expression=_cron(fields.get("cron_expression"), job_type),
        timezone=_timezone(fields.get("timezone")),
        last_date_ms=_last_date(fields.get("last_date"), timestamp_ms, now_ms),
        webhook_url=_webhook_url(fields.get("webhook_url")),
        payload=_payload(fields.get("payload"), max_payload_bytes),
        misfire_policy=_misfire_policy(fields.get("misfire_policy")),
        max_attempts=_max_attempts(fields.get("max_attempts")),
        timeout_ms=_timeout(fields.get("timeout")),
        jitter_ms=_jitter(fields.get("jitter")),
        signing_secret_ref=_secret_ref(fields.get("signing_secret_ref"), secret_names),
        labels=parse_labels(fields.get("labels")),
        method=_method(fields.get("method")),
        headers=parse_headers(fields.get("headers"), header_secret_names),
        on_failure=_callback(fields.get("on_failure"), "on_failure", header_secret_names),
        on_success=_callback(fields.get("on_success"), "on_success", header_secret_names),
        overlap=_overlap(fields.get("overlap"), job_type),
    )
    if spec.http_method in BODILESS_METHODS and spec.payload is not None:
        raise ValidationError("payload", f"a {spec.http_method} delivery has no body to carry it")
    _check_fires(spec, now_ms)
    return spec


def _method(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in METHODS:
        raise ValidationError("method", f"must be one of {', '.join(METHODS)}")
    method = value.upper()
    return None if method == "POST" else method


def parse_headers(
    value: object, secret_names: Collection[str], where: str = "headers"
) -> tuple[tuple[str, str, bool], ...]:
    """A job's ``headers`` object (or a callback's, at ``where``): name -> a string,
    or ``{"secret_ref": name}`` naming one of ``webhooks.header_secrets``; null or
    {} is none."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValidationError(where, "must be an object of header name to value")
    if len(value) > MAX_HEADERS:
        raise ValidationError(where, f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    out = []
    size = 0
    for name, given in value.items():
        field = f"{where}.{safe_text(name)[:MAX_HEADER_NAME_CHARS]}"
        _header_name(name, field, seen)
        text, secret = _header_value(given, field, secret_names)
        size += len(name) + len(text)
        out.append((name, text, secret))
    if size > MAX_HEADERS_BYTES:
        raise ValidationError(where, f"at most {MAX_HEADERS_BYTES} bytes of names and values")
    return tuple(out)


CALLBACK_FIELDS = {
    "on_failure": ("url", "headers", "every_attempt"),
    "on_success": ("url", "headers"),
}


def _callback(value: object, where: str, secret_names: Collection[str]) -> Callback | None:
    """``on_failure`` / ``on_success``: ``{"url": ..., "headers": {...}}`` (and, on
    failure, ``"every_attempt": true``); null is none."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(where, 'must be an object: {"url": "https://..."}')
    allowed = CALLBACK_FIELDS[where]
    for name in value:
        if name not in allowed:
            field = f"{where}.{safe_text(str(name))[:64]}"
            raise ValidationError(field, f"is not a field of {where} ({', '.join(allowed)})")
    url = _webhook_url(value.get("url"), f"{where}.url")
    if url is None:
        raise ValidationError(f"{where}.url", "is required")
    every = value.get("every_attempt", False)
    if not isinstance(every, bool):
        raise ValidationError(f"{where}.every_attempt", "must be true or false")
    headers = parse_headers(value.get("headers"), secret_names, f"{where}.headers")
    return Callback(url, headers, every)


def _overlap(value: object, job_type: JobType) -> Overlap | None:
    if value is None:
        return None
    choices = ", ".join(o.value for o in Overlap)
    if not isinstance(value, str) or value not in {o.value for o in Overlap}:
        raise ValidationError("overlap", f"must be one of {choices}")
    if job_type is not JobType.RECURRENTE:
        raise ValidationError("overlap", "only a recurring job has runs that can overlap")
    overlap = Overlap(value)
    return None if overlap is Overlap.SKIP else overlap


def _header_name(name: str, field: str, seen: set[str]) -> None:
    if not (0 < len(name) <= MAX_HEADER_NAME_CHARS and _HEADER_NAME.fullmatch(name)):
        raise ValidationError(field, "a header name is letters, digits and !#$%&'*+-.^_`|~")
    lower = name.lower()
    if lower in REFUSED_HEADERS or lower.startswith(OWN_HEADER_PREFIX):
        raise ValidationError(field, f"{name} is set by the cluster or by HTTP itself")
    if lower in seen:
        raise ValidationError(field, f"{name} is given twice (names are case-insensitive)")
    seen.add(lower)


def header_value_ok(text: str) -> bool:
    return len(text) <= MAX_HEADER_VALUE_CHARS and _HEADER_VALUE.fullmatch(text) is not None


def _header_value(given: object, field: str, secret_names: Collection[str]) -> tuple[str, bool]:
    if isinstance(given, str):
        if not header_value_ok(given):
            raise ValidationError(
                field,
                f"a header value is at most {MAX_HEADER_VALUE_CHARS} printable ASCII "
                "characters (no line breaks)",
            )
        return given, False
    if isinstance(given, dict) and set(given) == {"secret_ref"}:
        ref = given["secret_ref"]
        if not isinstance(ref, str) or not SECRET_NAME.fullmatch(ref):
            raise ValidationError(field, "secret_ref must be the name of a header secret")
        if ref not in secret_names:
            raise ValidationError(
                field, f"{ref} is not one of this cluster's webhooks.header_secrets"
            )
        return ref, True
    raise ValidationError(field, 'must be a string or {"secret_ref": "<name>"}')


def parse_labels(value: object) -> tuple[tuple[str, str], ...]:
    """A job's ``labels`` object as sorted (key, value) pairs; null or {} is none."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValidationError("labels", "must be an object of string values")
    if len(value) > MAX_LABELS:
        raise ValidationError("labels", f"at most {MAX_LABELS} labels")
    for key, text in value.items():
        label_problem(key, text)
    return tuple(sorted(value.items()))


def label_problem(key: object, value: object, field: str = "labels") -> None:
    """Raise a ValidationError naming ``field`` if (key, value) is no valid label."""
    if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
        shown = safe_text(key, 40) if isinstance(key, str) else repr(key)
        raise ValidationError(
            field,
            f"label key {shown} must be 1-{MAX_LABEL_KEY_CHARS} letters, digits or '-_./', "
            "beginning and ending with a letter or digit",
        )
    if not isinstance(value, str):
        raise ValidationError(field, f"the value of label {key} must be a string")
    if len(value) > MAX_LABEL_VALUE_CHARS or _LABEL_VALUE_REFUSED.search(value):
        raise ValidationError(
            field,
            f"the value of label {key} must be at most {MAX_LABEL_VALUE_CHARS} characters "
            "without control characters",
        )


def parse_label_selector(text: str) -> tuple[str, str]:
    """A ``label`` query parameter, ``key=value``, as (key, value)."""
    key, eq, value = text.partition("=")
    if not eq:
        raise ValidationError("label", "must be key=value, e.g. label=team=billing")
    label_problem(key, value, field="label")
    return key, value


def _as_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    if not all(isinstance(key, str) for key in body):
        raise ValidationError("body", "field names must be strings")
    unknown = sorted(key for key in body if key not in JOB_FIELDS)
    if unknown:
        others = ", ".join(safe_text(k, 40) for k in unknown[1:5])
        raise ValidationError(unknown[0], f"unknown field{f' (also: {others})' if others else ''}")
    return body


def _job_type(value: object) -> JobType:
    if value is None:
        raise ValidationError("type", "is required: unico or recurrente")
    if value not in ("unico", "recurrente"):
        raise ValidationError("type", "must be unico or recurrente")
    return JobType(value)


def _job_id(value: object, generated_id: str) -> str:
    if value is None:
        return generated_id
    if not isinstance(value, str):
        raise ValidationError("id", "must be a string")
    problem = job_id_problem(value)
    if problem is not None:
        raise ValidationError("id", problem)
    return value


def job_id_problem(job_id: str) -> str | None:
    """Why ``job_id`` cannot be a job's id (the end of "id ..."), or None if it can.

    1 to :data:`MAX_JOB_ID_CHARS` characters (code points, compared exactly: no
    Unicode normalisation), none of them refused by ``_ID_REFUSED``, and not ``.``
    or ``..``, which HTTP clients resolve away from ``/jobs/..``: the job would be
    unreachable."""
    if not 1 <= len(job_id) <= MAX_JOB_ID_CHARS:
        return f"must be 1 to {MAX_JOB_ID_CHARS} characters"
    refused = _ID_REFUSED.search(job_id)
    if refused is not None:
        char = refused.group()
        if char == "/":
            return "must not contain '/'"
        if "\ud800" <= char <= "\udfff":
            return f"must be Unicode text (it holds a lone surrogate, U+{ord(char):04X})"
        return f"must not contain control characters or line breaks (it holds U+{ord(char):04X})"
    if job_id in (".", ".."):
        return "must not be '.' or '..'"
    return None


def _timestamp(value: object, job_type: JobType, now_ms: int) -> int | None:
    if value is None:
        if job_type is JobType.UNICO:
            raise ValidationError("timestamp", "is required for unico jobs")
        return None
    timestamp_ms = parse_timestamp(value, "timestamp")
    if job_type is JobType.UNICO and timestamp_ms <= now_ms:
        raise ValidationError("timestamp", "must be in the future")
    return timestamp_ms


def _cron(value: object, job_type: JobType) -> str | None:
    if job_type is JobType.UNICO:
        if value is not None:
            raise ValidationError("cron_expression", "is only allowed for recurrente jobs")
        return None
    if value is None:
        raise ValidationError("cron_expression", "is required for recurrente jobs")
    return parse_cron(value, "cron_expression").expression


def _timezone(value: object) -> str:
    return "UTC" if value is None else validate_timezone(value, "timezone")


def _last_date(value: object, timestamp_ms: int | None, now_ms: int) -> int | None:
    if value is None:
        return None
    last_ms = parse_timestamp(value, "last_date")
    if last_ms <= now_ms:
        raise ValidationError("last_date", "must be in the future")
    if timestamp_ms is not None and last_ms <= timestamp_ms:
        raise ValidationError("last_date", "must be after timestamp")
    return last_ms


def _check_fires(spec: JobSpec, now_ms: int) -> None:
    """A recurring job must have at least one run, or it would sit pending forever."""
    if spec.type is JobType.RECURRENTE and first_fire(spec, now_ms) is None:
        if spec.last_date_ms is not None:
            raise ValidationError("last_date", "no run of the schedule falls before last_date")
        raise ValidationError("cron_expression", "never fires after the start time")


def _webhook_url(value: object, field: str = "webhook_url") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if not 1 <= len(value) <= MAX_URL_CHARS:
        raise ValidationError(field, f"must be 1 to {MAX_URL_CHARS} characters")
    if not _URL_CHARS.fullmatch(value):
        raise ValidationError(field, "must contain only URL characters (percent-encode the others)")
    try:
        parts = urlsplit(value)
        port, host = parts.port, parts.hostname
    except ValueError:  # bad [IPv6] literal or a non-numeric / out-of-range port
        raise ValidationError(field, "is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(field, "must be an absolute http or https URL")
    if "@" in parts.netloc:
        raise ValidationError(field, "must not contain credentials")
    if not host or not _valid_host(host):
        raise ValidationError(field, "must have a valid host name or IP address (IPv4 as a.b.c.d)")
    if port == 0:
        raise ValidationError(field, "port must be 1-65535")
    return value


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        # 2130706433, 0x7f.1, 0177.0.0.1, 127.1: resolvers read these as IPv4
        # addresses (127.0.0.1 here), no DNS name looks like that, and the SSRF
        # guard should judge the address a URL names, so only the a.b.c.d form is.
        return False
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def _payload(value: object, max_bytes: int) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("payload", "must be a JSON object")
    problem = _json_problem(value)
    if problem is not None:
        raise ValidationError("payload", problem)
    # Compact UTF-8 JSON, as the API writes it (orjson: the walk above leaves nothing
    # it refuses); a float's exponent counts without "+" or a leading zero.
    size = len(orjson.dumps(value))
    if size > max_bytes:
        raise ValidationError("payload", f"is {size} bytes as JSON; the limit is {max_bytes}")
    return value


def _json_problem(root: dict[Any, Any]) -> str | None:
    """Why ``root`` cannot be stored and sent as strict JSON, or None.  Iterative:
    a deep payload must not hit Python's recursion limit here."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_PAYLOAD_DEPTH:
                return f"is nested deeper than {MAX_PAYLOAD_DEPTH} levels"
            if isinstance(value, dict):
                if not all(isinstance(k, str) and _is_unicode(k) for k in value):
                    return "has a key that is not valid Unicode text"
                stack.extend((v, depth + 1) for v in value.values())
            else:
                stack.extend((v, depth + 1) for v in value)
        else:
            problem = _scalar_problem(value)
            if problem is not None:
                return problem
    return None


def _scalar_problem(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return None if _is_unicode(value) else "has a string that is not valid Unicode text"
    if isinstance(value, int):
        low, high = _INT_RANGE
        return None if low <= value <= high else "has an integer outside the 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must not contain NaN or Infinity"
    return "contains a value that is not JSON"


def _is_unicode(text: str) -> bool:
    # JSON's "\ud800" decodes to a lone surrogate, which no UTF-8 encoder accepts.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _secret_ref(value: object, names: Collection[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SECRET_NAME.fullmatch(value):
        raise ValidationError("signing_secret_ref", "must be the name of a signing secret")
    if value not in names:
        # The name is the client's own input, and names are not secrets.
        raise ValidationError(
            "signing_secret_ref", f"{value} is not one of this cluster's webhooks.signing_secrets"
        )
    return value


def _misfire_policy(value: object) -> MisfirePolicy:
    if value is None:
        return MisfirePolicy.FIRE_ONCE
    if value not in ("fire_once", "skip"):
        raise ValidationError("misfire_policy", "must be fire_once or skip")
    return MisfirePolicy(value)


def _max_attempts(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("max_attempts", "must be an integer")
    if not 1 <= value <= MAX_ATTEMPTS:
        raise ValidationError("max_attempts", f"must be between 1 and {MAX_ATTEMPTS}")
    return value


def _timeout(value: object) -> int | None:
    return _duration(value, "timeout", MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, "between 1s and 1h")


def _jitter(value: object) -> int | None:
    """``jitter``: a duration up to a day; 0 (or null) is none."""
    jitter_ms = _duration(value, "jitter", 0, MAX_JITTER_MS, "between 0s and 24h")
    return jitter_ms or None


def _duration(value: object, field: str, low_ms: int, high_ms: int, bounds: str) -> int | None:
    """A duration field: a string such as '30s', or seconds as a number."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            ms = parse_duration_ms(value)
        except ValueError as exc:
            raise ValidationError(field, str(exc)) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # Bound before converting: a float may be NaN or 1e308, an int 10**5000.
        if not (isinstance(value, int) or math.isfinite(value)) or not 0 <= value <= 86_400:
            raise ValidationError(field, f"must be {bounds}")
        seconds = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        ms = int((seconds * 1000).to_integral_value(rounding=ROUND_HALF_EVEN))
    else:
        raise ValidationError(field, "must be a duration such as '30s' or seconds")
    if not low_ms <= ms <= high_ms:
        raise ValidationError(field, f"must be {bounds}")
    return ms


def validate_status_filter(value: object, executions: bool = False) -> JobStatus:
    """The ``status`` query parameter as a :class:`JobStatus`: a job's, or with
    ``executions`` an attempt's (``skipped`` too)."""
    if not isinstance(value, str) or not (
        value in _STATUSES or (executions and value == JobStatus.SKIPPED.value)
    ):
        raise ValidationError("status", "Invalid status value")
    return JobStatus(value)


def parse_limit(value: object) -> int:
    """The ``limit`` query parameter: absent or empty gives 100; else 1..1000."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        number = 0
    if not 1 <= number <= MAX_LIMIT:
        raise ValidationError("limit", f"must be an integer between 1 and {MAX_LIMIT}")
    return number


def encode_cursor(key: str) -> str:
    """An opaque, URL-safe pagination cursor for "continue after ``key``"."""
    raw = (_CURSOR_PREFIX + key).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(token: object) -> str | None:
    """The key a cursor from :func:`encode_cursor` continues after; None when absent."""
    if token is None or token == "":
        return None
    if not isinstance(token, str) or len(token) > MAX_CURSOR_CHARS or not _CURSOR.fullmatch(token):
        raise ValidationError("cursor", "Invalid cursor")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor", "Invalid cursor") from None
    if not text.startswith(_CURSOR_PREFIX):
        raise ValidationError("cursor", "Invalid cursor")
    return text[len(_CURSOR_PREFIX) :]
