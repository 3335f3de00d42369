"""OpenTelemetry tracing: off, and never imported, unless an OTLP endpoint is set.

The only module that imports ``opentelemetry``, and only from :func:`setup`, when
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
a URL (and ``OTEL_SDK_DISABLED`` is not true).  The original scheduled-db read that
second variable too, as a gRPC ``host:port`` or ``disabled``: those leave tracing
off, the first with a WARNING from the configuration (``scheduled_db.config.original``).
Everything else calls the functions below, which do nothing and return None while
tracing is off: the cost on the hot path is one call that reads a module global.

Trace context crosses actor boundaries, and is kept with a job, as the W3C
``traceparent`` string (``00-<trace id>-<span id>-<flags>``): a frozen message
field, the same bytes on every replica, and nothing of OpenTelemetry's outside
this module.  The SDK reads its own variables (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_SCHEDULE_DELAY``,
``OTEL_EXPORTER_OTLP_HEADERS``...); the exporter is OTLP over HTTP (protobuf), the
one the ``otel`` extra installs, so another ``OTEL_EXPORTER_OTLP_PROTOCOL`` stops
start-up rather than being ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from scheduled_db.config.original import otlp_url

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanContext, Status, Tracer

INSTALL = "pip install 'scheduled-db[otel]'"
TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"  # ours alone: any value turns it on
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"  # shared with the original: a URL turns it on
PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
DISABLED_VAR = "OTEL_SDK_DISABLED"
SERVICE_NAME = "scheduled-db"
_PROTOCOL = "http/protobuf"


class TracingError(Exception):
    """Tracing is asked for but cannot run (start-up stops with this one line)."""


class Kind(Enum):
    """A span's kind (OpenTelemetry's SpanKind), named without importing it."""

    INTERNAL = "INTERNAL"
    SERVER = "SERVER"
    CLIENT = "CLIENT"


Attributes = Mapping[str, str | int | bool]


class Span(Protocol):
    """The part of an OpenTelemetry span the node uses."""

    def add_event(self, name: str) -> None: ...

    def set_attribute(self, key: str, value: str | int | bool) -> None: ...

    def set_status(self, status: Status) -> None: ...

    def get_span_context(self) -> SpanContext: ...

    def end(self) -> None: ...


class _On:
    """What tracing needs once it is on: the tracer and the SDK's pieces."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("scheduled_db")
        self.trace = trace
        self.propagate = propagate
        self.context = context
        self.w3c = TraceContextTextMapPropagator()
        self.kinds = {kind: trace.SpanKind[kind.value] for kind in Kind}
        self._status, self._error = Status, StatusCode.ERROR

    def error(self, description: str) -> Status:
        return self._status(self._error, description)

    def context_of(self, traceparent: str | None) -> Context | None:
        if traceparent is None:
            return None
        return self.w3c.extract({"traceparent": traceparent})


_on: _On | None = None


def asked_endpoint(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``(variable, value)`` of the endpoint that asks for tracing, if one does (see
    the module docstring)."""
    if environ.get(DISABLED_VAR, "").strip().lower() == "true":
        return None
    traces = environ.get(TRACES_ENDPOINT, "").strip()
    if traces:
        return TRACES_ENDPOINT, traces
    generic = environ.get(ENDPOINT, "").strip()
    return (ENDPOINT, generic) if otlp_url(generic) else None


def setup(environ: Mapping[str, str], node_id: str) -> str | None:
    """Turn tracing on if ``environ`` asks for it (:func:`asked_endpoint`); return
    where spans go, or None (then nothing of OpenTelemetry is imported).  Raises
    TracingError when it is asked for and the ``otel`` extra is missing, the traces
    endpoint is no URL, or another exporter protocol is asked for."""
    asked = asked_endpoint(environ)
    if asked is None:
        return None
    variable, endpoint = asked
    if not otlp_url(endpoint):
        raise TracingError(f"{variable}={endpoint}: must be an http:// or https:// URL")
    for name in PROTOCOL_VARS:
        protocol = environ.get(name, "").strip()
        if protocol and protocol != _PROTOCOL:
            raise TracingError(
                f"{name}={protocol}: only {_PROTOCOL} is supported (the otel extra's exporter)"
            )
    try:
        provider = _provider(node_id)
    except ImportError as exc:
        raise TracingError(
            f"tracing is asked for ({variable} is set) but OpenTelemetry is not installed "
            f"({exc.name or exc}): {INSTALL}"
        ) from None
    install(provider)
    return endpoint


def install(provider: TracerProvider) -> None:
    """Turn tracing on with ``provider`` (:func:`setup` builds it from the environment)."""
    global _on
    _on = _On(provider)


def _provider(node_id: str) -> TracerProvider:
    """A provider exporting in batches over OTLP/HTTP; the SDK reads its own variables."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    ours = Resource.create({"service.name": SERVICE_NAME, "service.instance.id": node_id})
    provider = TracerProvider(resource=ours.merge(OTELResourceDetector().detect()))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def shutdown() -> None:
    """Export what is left and stop (bounded by the exporter's timeout); idempotent."""
    global _on
    on, _on = _on, None
    if on is not None:
        on.provider.shutdown()


def enabled() -> bool:
    return _on is not None


# --- spans --------------------------------------------------------------------------


def start_span(
    name: str,
    kind: Kind = Kind.INTERNAL,
    parent: str | None = None,
    linked: str | None = None,
    attributes: Attributes | None = None,
) -> Span | None:
    """A span (None while tracing is off), the child of ``parent`` (a traceparent;
    a new trace without one), linked to ``linked``.  The caller ends it."""
    on = _on
    if on is None:
        return None
    links = None
    if linked is not None:
        context = on.trace.get_current_span(on.context_of(linked)).get_span_context()
        links = [on.trace.Link(context)] if context.is_valid else None
    return on.tracer.start_span(
        name,
        context=on.context_of(parent),
        kind=on.kinds[kind],
        attributes=attributes,
        links=links,
    )


def set_error(span: Span, description: str) -> None:
    """Mark ``span`` failed (status ERROR) with ``description``."""
    on = _on
    if on is not None:
        span.set_status(on.error(description))


def end_span(span: Span, error: str | None = None) -> None:
    """End ``span``; with ``error`` its status is ERROR with that description."""
    if error is not None:
        set_error(span, error)
    span.end()


def traceparent_of(span: Span | None) -> str | None:
    """The W3C traceparent naming ``span`` (None for none, or an invalid one)."""
    if span is None:
        return None
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The traceparent of the current span (the request being served), None if off."""
    on = _on
    if on is None:
        return None
    return traceparent_of(on.trace.get_current_span())


@contextlib.contextmanager
def server_span(
    name: str, headers: Mapping[str, str], attributes: Attributes
) -> Iterator[Span | None]:
    """The span of one request being served, current while the block runs: the
    child of the caller's context in ``headers`` (``traceparent``), if any."""
    on = _on
    if on is None:
        yield None
        return
    parent = on.propagate.extract(headers)
    span = on.tracer.start_span(
        name, context=parent, kind=on.kinds[Kind.SERVER], attributes=attributes
    )
    token = on.context.attach(on.trace.set_span_in_context(span))
    try:
        yield span
    except Exception as exc:  # not a cancellation: the client went away
        span.record_exception(exc)
        span.set_status(on.error(f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        on.context.detach(token)
        span.end()


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current context to outgoing ``headers`` (a forwarded request)."""
    on = _on
    if on is not None:
        on.propagate.inject(headers)
