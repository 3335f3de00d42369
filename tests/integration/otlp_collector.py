"""An OTLP/HTTP trace collector for tests: an aiohttp server on 127.0.0.1 (ephemeral
port), on a thread and event loop of its own, that takes ``POST /v1/traces``
(protobuf, gzip or not), decodes each body with opentelemetry-proto's
``ExportTraceServiceRequest`` and keeps every span it carried.

Point a node at it with ``OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint``.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Link:
    trace_id: str
    span_id: str


@dataclass(frozen=True)
class Span:
    """One exported span, ids in lowercase hex as in a ``traceparent``."""

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    kind: str  # "SERVER", "CLIENT", "INTERNAL"...
    attributes: dict[str, Any]
    events: tuple[str, ...]
    links: tuple[Link, ...]
    error: bool  # status ERROR
    resource: dict[str, Any] = field(default_factory=dict)


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return None if kind is None else getattr(v, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def decode(body: bytes) -> list[Span]:
    """Every span of one export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                out.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=ProtoSpan.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                        attributes=_attributes(s.attributes),
                        events=tuple(e.name for e in s.events),
                        links=tuple(Link(k.trace_id.hex(), k.span_id.hex()) for k in s.links),
                        error=s.status.code == ProtoStatus.STATUS_CODE_ERROR,
                        resource=resource,
                    )
                )
    return out


class Collector:
    """Start with :meth:`start`, always :meth:`stop`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.spans: list[Span] = []
        self.exports = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="otlp-collector")
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The base URL (OTEL_EXPORTER_OTLP_ENDPOINT: the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Collector:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(TIMEOUT_S)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            future.result(TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT_S)
        assert not self._thread.is_alive(), "collector loop did not stop"
        self._loop.close()

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        spans = decode(body)
        with self._cond:
            self.spans.extend(spans)
            self.exports += 1
            self._cond.notify_all()
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    def named(self, name: str) -> list[Span]:
        with self._cond:
            return [s for s in self.spans if s.name == name]

    def wait_for(self, pred: Callable[[list[Span]], Any], timeout: float, what: str) -> Any:
        """The first true value of ``pred(spans so far)``, waiting (bounded) for exports."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (found := pred(list(self.spans))):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({s.name for s in self.spans})
                    raise AssertionError(f"no {what} within {timeout:g} s; spans: {names}")
                self._cond.wait(left)
            return found
