"""One webhook delivery attempt over HTTP, and how it ended, as a DeliveryOutcome.

The WebhookActor decides when an attempt runs (its destination's turn, an abort);
this module makes the request and turns whatever happened into an outcome.
Every way a request can fail maps to one :class:`~scheduled_db.jobs.model.ErrorType`:

- ``timeout``: no complete response within ``Deliver.timeout_ms`` (connecting,
  sending and reading the body all count); or, with nothing sent, no turn to send
  within that time (:func:`not_sent_in_time`);
- ``dns_error``: the host name did not resolve;
- ``tls_error``: the TLS handshake or the certificate check failed;
- ``connection_error``: refused, reset, closed early, or a malformed response;
  an invalid URL too, and an address the SSRF guard refuses (``address not
  allowed: ...``), but those two are not retryable: the URL and the policy stay
  what they are until a person changes them;
- ``http_error``: any status but 2xx, with a sanitized snippet of the body.

Redirects are not followed, to any address (see :mod:`scheduled_db.firing.retry`): a 3xx
is a non-retryable ``http_error``, so a receiver cannot bounce a delivery past the
SSRF guard.

With tracing on, each attempt has a span (:func:`delivery_span`), and its request
carries that span's W3C ``traceparent``, so the receiver's trace joins ours.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from actors.runtime import tracing
from actors.webhook.client import (
    AddressNotAllowedError,
    DNSError,
    FencedError,
    InvalidURLError,
    Response,
    TLSError,
    WebhookClient,
)
from actors.webhook.messages import Deliver, DeliveryOutcome
from scheduled_db.firing.retry import RETRY_AFTER_STATUSES, classify, parse_retry_after
from scheduled_db.jobs.model import ErrorType, idempotency_key
from scheduled_db.jobs.validation import BODILESS_METHODS
from scheduled_db.policy import signing
from scheduled_db.policy.signing import Scheme

# Read at most this much of a response: enough to drain a typical small body, so
# the connection goes back to the pool, without letting a receiver fill our memory.
BODY_READ_LIMIT = 64 * 1024
SNIPPET_CHARS = 200  # of the body, in an http_error's message
MESSAGE_CHARS = 300  # of any error message (an exception's text can be long)

ABORTED = "aborted"  # the error type of an attempt cut short by an abort or a stop
# The error type of an attempt not sent because this node's leader lease had ended
# (actors/raft/lease.py): nothing reached the receiver, and no attempt is used up.
FENCED = "fenced"

# The error type of a delivery taken back before it was sent (a Withdraw: its job
# was paused): nothing reached the receiver, and no attempt is used up.
WITHDRAWN = "withdrawn"

Clock = Callable[[], int]


def request_body(deliver: Deliver, sent_ms: int) -> bytes:
    """The JSON the receiver gets: ours, then the original's ``timestamp`` (the send
    time) and ``data`` (the payload, null when none), so receivers written for either
    read it.  Instants are whole epoch seconds, with ``_ms`` beside, as in the API.
    A notice's body is its own, fixed when its outcome was applied."""
    if deliver.notice is not None:
        return json.dumps(deliver.notice.body, separators=(",", ":")).encode()
    body = {
        "job_id": deliver.job_id,
        "type": deliver.job_type,
        "scheduled_at": (deliver.scheduled_at_ms + (deliver.jittered_ms or 0)) // 1000,
        "scheduled_at_ms": deliver.scheduled_at_ms + (deliver.jittered_ms or 0),
        "executed_at": sent_ms // 1000,
        "executed_at_ms": sent_ms,
        "attempt": deliver.attempt,
        "payload": deliver.payload,
        "timestamp": sent_ms // 1000,
        "data": deliver.payload,
    }
    if deliver.manual:  # asked for by POST /jobs/{id}/trigger; absent otherwise
        body["trigger"] = True
    if deliver.jittered_ms is not None:  # a job with jitter (even by 0 ms this time)
        body["nominal_at"] = deliver.scheduled_at_ms // 1000
        body["nominal_at_ms"] = deliver.scheduled_at_ms
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Secrets:
    """What this node signs deliveries with and fills secret headers from (its
    configuration: never in the Raft log)."""

    signing: bytes | None = None  # webhooks.signing_secret
    named: Mapping[str, bytes] = field(default_factory=dict)  # webhooks.signing_secrets
    scheme: Scheme = Scheme.SCHEDULED_DB
    headers: Mapping[str, str] = field(default_factory=dict)  # webhooks.header_secrets


def request_headers(
    deliver: Deliver, user_agent: str, traceparent: str | None = None
) -> dict[str, str]:
    """The headers of one attempt; the idempotency key is the same for every attempt
    of one occurrence (and across failovers), so receivers can drop duplicates.
    ``traceparent``: the attempt's span, when tracing is on."""
    content = {} if deliver.method in BODILESS_METHODS else {"Content-Type": "application/json"}
    headers = {
        **content,
        "User-Agent": user_agent,
        "Idempotency-Key": delivery_key(deliver),
        "X-Scheduled-DB-Attempt": str(deliver.attempt),
        "X-Scheduled-DB-Term": str(deliver.term),
    }
    if traceparent is not None:
        headers["traceparent"] = traceparent
    return headers


def delivery_key(deliver: Deliver) -> str:
    """The idempotency key of a delivery: its occurrence's; for a notice, the
    occurrence's with ``/<event>/<attempt>`` after it (``invoice-42:1800000000000/
    failure/3``: the notice about attempt 3; "/" is never in the part before)."""
    key = idempotency_key(deliver.job_id, deliver.scheduled_at_ms, deliver.manual)
    notice = deliver.notice
    return key if notice is None else f"{key}/{notice.event}/{notice.attempt}"


async def attempt(
    client: WebhookClient,
    deliver: Deliver,
    user_agent: str,
    clock: Clock,
    start_ms: int,
    sent_ms: int,
    secrets: Secrets | None = None,
    may_send: Callable[[], bool] | None = None,
    traceparent: str | None = None,
) -> DeliveryOutcome:
    """Send the occurrence to its URL with the job's method and headers and report
    how that went; signed (see :mod:`scheduled_db.policy.signing`, under the
    scheme of ``secrets``) with the secret the job names, else with the node's
    signing secret if there is one.  A job naming a secret this node does not have
    (to sign with, or for a header) is not sent without it: the attempt fails
    (retryably: the configuration, or the next leader's, may have it).

    ``may_send`` is asked just before the request leaves (the leader lease); when
    it says no, the outcome is of type :data:`FENCED` and nothing was sent.
    ``traceparent`` goes with the request (the attempt's span, when tracing is on).

    Raises only ``asyncio.CancelledError`` (an abort); every failure of the request
    itself is an outcome.
    """
    secrets = secrets or Secrets()
    body = b"" if deliver.method in BODILESS_METHODS else request_body(deliver, sent_ms)
    headers = request_headers(deliver, user_agent, traceparent)
    missing = _add_job_headers(headers, deliver, secrets)
    signing_secret = secrets.signing
    ref = deliver.signing_secret_ref
    if ref is not None:
        signing_secret = secrets.named.get(ref)
        if signing_secret is None:
            missing = missing or f"signing secret {ref}"
    if missing is not None:
        message = f"not sent: {missing} is not configured on this node"
        error_type = ErrorType.CONNECTION_ERROR.value
        return _outcome(deliver, start_ms, None, clock(), error_type, message, retryable=True)
    if signing_secret is not None:
        key, sent_s = headers["Idempotency-Key"], sent_ms // 1000
        scheme = secrets.scheme
        headers.update(signing.signature_headers(scheme, signing_secret, key, sent_s, body))
    try:
        async with asyncio.timeout(deliver.timeout_ms / 1000):
            response = await client.post(deliver.url, body, headers, may_send, deliver.method)
    except FencedError as exc:
        return _outcome(deliver, start_ms, None, clock(), FENCED, str(exc), retryable=False)
    except (OSError, InvalidURLError) as exc:  # TimeoutError is an OSError
        error_type, retryable, message = classify_error(exc, deliver.timeout_ms)
        return _outcome(
            deliver, start_ms, sent_ms, clock(), error_type, message, retryable=retryable
        )
    end_ms = clock()
    return http_outcome(deliver, start_ms, sent_ms, end_ms, response)


def _add_job_headers(headers: dict[str, str], deliver: Deliver, secrets: Secrets) -> str | None:
    """Add the job's own headers, a secret's value from this node's configuration;
    what is missing (a header secret's name), or None."""
    for name, value, secret in deliver.headers:
        if secret:
            found = secrets.headers.get(value)
            if found is None:
                return f"header secret {value}"
            value = found
        headers[name] = value
    return None


def http_outcome(
    deliver: Deliver,
    start_ms: int,
    sent_ms: int,
    end_ms: int,
    response: Response,
) -> DeliveryOutcome:
    """The outcome of an attempt that got a response."""
    status = response.status
    ok, retryable = classify(status)
    if ok:
        return _outcome(deliver, start_ms, sent_ms, end_ms, None, None, http_status=status)
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.retry_after, end_ms)
    message = f"HTTP {status}"
    if 300 <= status < 400:
        message += " (redirects are not followed)"
    snippet = body_snippet(response.body)
    if snippet:
        message += f": {snippet}"
    return _outcome(
        deliver,
        start_ms,
        sent_ms,
        end_ms,
        ErrorType.HTTP_ERROR.value,
        message,
        retryable=retryable,
        http_status=status,
        retry_after_ms=retry_after,
    )


def aborted(deliver: Deliver, start_ms: int, sent_ms: int | None, end_ms: int) -> DeliveryOutcome:
    """The outcome of an attempt cut short (its job went away, or leadership did)."""
    message = "aborted before it was sent" if sent_ms is None else "aborted in flight"
    return _outcome(deliver, start_ms, sent_ms, end_ms, ABORTED, message, retryable=False)


def withdrawn(deliver: Deliver, start_ms: int, end_ms: int) -> DeliveryOutcome:
    """The outcome of a delivery taken back before it was sent (see :data:`WITHDRAWN`)."""
    message = "withdrawn before it was sent"
    return _outcome(deliver, start_ms, None, end_ms, WITHDRAWN, message, retryable=False)


def not_sent_in_time(
    deliver: Deliver, start_ms: int, end_ms: int, destination: str
) -> DeliveryOutcome:
    """The outcome of an attempt that waited its whole timeout for a turn to send to
    ``destination`` (its receiver answers slowly or not at all, or has a backlog):
    a timeout, retried like any other, with nothing sent."""
    message = f"not sent: no turn to send to {destination} within {deliver.timeout_ms} ms"
    error_type = ErrorType.TIMEOUT.value
    return _outcome(deliver, start_ms, None, end_ms, error_type, message, retryable=True)


def failed(
    deliver: Deliver, start_ms: int, sent_ms: int | None, end_ms: int, exc: BaseException
) -> DeliveryOutcome:
    """The outcome of an attempt that hit an error nobody foresaw (retried, since the
    error says nothing about the receiver)."""
    message = _truncate(f"{type(exc).__name__}: {exc}", MESSAGE_CHARS)
    error_type = ErrorType.CONNECTION_ERROR.value
    return _outcome(deliver, start_ms, sent_ms, end_ms, error_type, message, retryable=True)


def classify_error(exc: BaseException, timeout_ms: int) -> tuple[str, bool, str]:
    """``(error_type, retryable, message)`` for an exception raised by a request."""
    text = _truncate(f"{type(exc).__name__}: {exc}", MESSAGE_CHARS)
    if isinstance(exc, DNSError):
        return ErrorType.DNS_ERROR.value, True, text
    if isinstance(exc, TLSError | ssl.SSLError):
        return ErrorType.TLS_ERROR.value, True, text
    if isinstance(exc, TimeoutError):
        return ErrorType.TIMEOUT.value, True, f"no response within {timeout_ms} ms"
    if isinstance(exc, InvalidURLError | AddressNotAllowedError):
        return ErrorType.CONNECTION_ERROR.value, False, text  # retrying cannot fix the URL
    return ErrorType.CONNECTION_ERROR.value, True, text


def body_snippet(body: bytes) -> str:
    """At most :data:`SNIPPET_CHARS` printable characters of a response body, with
    whitespace runs collapsed: it ends up in the API and the logs, so no control
    characters (terminal escapes, forged log lines) get through."""
    text = body[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace")
    printable = "".join(c if c.isprintable() else " " for c in text)
    return _truncate(" ".join(printable.split()), SNIPPET_CHARS)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _outcome(
    deliver: Deliver,
    start_ms: int,
    sent_ms: int | None,
    end_ms: int,
    error_type: str | None,
    message: str | None,
    *,
    retryable: bool = False,
    http_status: int | None = None,
    retry_after_ms: int | None = None,
) -> DeliveryOutcome:
    """An attempt's outcome: a success when there is no ``error_type``."""
    return DeliveryOutcome(
        job_id=deliver.job_id,
        scheduled_at_ms=deliver.scheduled_at_ms,
        attempt=deliver.attempt,
        ok=error_type is None,
        start_ms=start_ms,
        end_ms=end_ms,
        sent_ms=sent_ms,
        http_status=http_status,
        response_time_ms=None if sent_ms is None else end_ms - sent_ms,
        error_type=error_type,
        error_message=message,
        retryable=retryable,
        retry_after_ms=retry_after_ms,
        trigger=deliver.trigger,
        notice=None if deliver.notice is None else deliver.notice.key,
    )


def delivery_span(deliver: Deliver, destination: str) -> tracing.Span | None:
    """The span of one attempt (None while tracing is off).  The scheduled run of a
    one-time job is the child of the request that created the job: one trace from
    ``POST /jobs`` to the receiver.  Any other run (a recurring job's, a triggered
    one) starts a trace of its own, linked to the creation: one trace per run, not
    a trace that grows for as long as the job lives."""
    if not tracing.enabled():
        return None  # nothing to build the attributes for
    stored = deliver.traceparent
    one_run = deliver.job_type == "unico" and not deliver.manual
    attributes: dict[str, str | int | bool] = {
        "scheduled_db.job.id": deliver.job_id,
        "scheduled_db.occurrence_ms": deliver.scheduled_at_ms,
        "scheduled_db.attempt": deliver.attempt,
        "scheduled_db.job.type": deliver.job_type,
        "http.request.method": "POST",
        "server.address": destination,
    }
    if deliver.manual:
        attributes["scheduled_db.trigger"] = True
    return tracing.start_span(
        "webhook deliver",
        tracing.Kind.CLIENT,
        parent=stored if one_run else None,
        linked=None if one_run else stored,
        attributes=attributes,
    )


def end_delivery_span(span: tracing.Span, outcome: DeliveryOutcome) -> None:
    """End an attempt's span with how the attempt ended."""
    if outcome.http_status is not None:
        span.set_attribute("http.response.status_code", outcome.http_status)
    if outcome.error_type is not None:
        span.set_attribute("error.type", outcome.error_type)
    span.set_attribute("scheduled_db.retryable", outcome.retryable)
    error = None if outcome.ok else outcome.error_message or outcome.error_type
    tracing.end_span(span, error)
