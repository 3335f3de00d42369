"""actors/runtime/tracing.py: when tracing turns on, what stops start-up, and the spans
the node makes (recorded by the SDK's in-memory exporter; the OTLP export itself is
tested against a real node in tests/integration/test_tracing.py)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from actors.raft.messages import Leadership, Propose, ProposeOutcome
from actors.runtime import tracing
from actors.webhook.attempt import delivery_span, end_delivery_span, request_headers
from actors.webhook.messages import Deliver, DeliveryOutcome
from tests.actors.probe import Inbox
from tests.command_gen import TRACEPARENT

URL = "http://collector:4318"
STORED_TRACE = int(TRACEPARENT.split("-")[1], 16)
STORED_SPAN = int(TRACEPARENT.split("-")[2], 16)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, every span kept in memory; off again after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "HTTPS://collector"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{URL}/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_SDK_DISABLED": "TRUE"}, False),
        # The original's forms: its gRPC host:port (a WARNING at start), and "disabled".
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4317"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "disabled"}, False),
    ],
)
def test_tracing_is_asked_for_only_by_an_endpoint_url(environ: dict[str, str], on: bool) -> None:
    assert (tracing.asked_endpoint(environ) is not None) is on


def test_with_no_endpoint_setup_turns_nothing_on() -> None:
    assert tracing.setup({"OTEL_EXPORTER_OTLP_ENDPOINT": "disabled"}, "n1") is None
    assert not tracing.enabled() and tracing.current_traceparent() is None
    assert tracing.start_span("x", parent=TRACEPARENT) is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "TRACES_PROTOCOL=http/json"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4317"}, "must be an http"),
    ],
)
def test_a_setting_tracing_cannot_honour_stops_start_up(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(tracing.TracingError, match=named):
        tracing.setup({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, **environ}, "n1")
    assert not tracing.enabled()


def test_an_endpoint_without_the_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules: importing it fails as if the package were not installed.
    exporter = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    monkeypatch.setitem(sys.modules, exporter, None)
    with pytest.raises(tracing.TracingError) as caught:
        tracing.setup({"OTEL_EXPORTER_OTLP_ENDPOINT": URL}, "n1")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is set" in str(caught.value)
    assert str(caught.value).endswith("pip install 'scheduled-db[otel]'")
    assert not tracing.enabled()


def test_tracing_is_imported_by_no_module_but_its_own() -> None:
    root = Path(__file__).resolve().parents[3]
    imports = re.compile(r"^\s*(from|import) opentelemetry", re.MULTILINE)
    importers = [
        path.relative_to(root).as_posix()
        for tree in ("actors", "scheduled_db")
        for path in sorted((root / tree).rglob("*.py"))
        if imports.search(path.read_text())
    ]
    assert importers == ["actors/runtime/tracing.py"]


def _deliver(
    job_type: str = "unico", trigger: bool = False, stored: str | None = TRACEPARENT
) -> Deliver:
    return Deliver("job-1", job_type, 5_000, 2, 3, "http://hooks:8000/x", None, 1_000,
                   trigger=trigger, traceparent=stored)  # fmt: skip


def _outcome(ok: bool, status: int | None, error: str | None = None) -> DeliveryOutcome:
    return DeliveryOutcome("job-1", 5_000, 2, ok, 1, 9, 2, status, 7, error, error, True)


def _finished(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_the_scheduled_run_of_a_one_time_job_is_a_child_of_its_creation(
    spans: InMemorySpanExporter,
) -> None:
    span = delivery_span(_deliver(), "hooks:8000")
    assert span is not None
    header = request_headers(_deliver(), "ua", tracing.traceparent_of(span))["traceparent"]
    end_delivery_span(span, _outcome(True, 200))
    done = _finished(spans)
    assert done.parent is not None and done.context is not None
    assert (done.context.trace_id, done.parent.span_id) == (STORED_TRACE, STORED_SPAN)
    assert header == f"00-{STORED_TRACE:032x}-{done.context.span_id:016x}-01"
    assert done.kind is SpanKind.CLIENT and done.status.status_code is StatusCode.UNSET
    assert done.attributes is not None
    assert dict(done.attributes) | {"http.response.status_code": 200} == dict(done.attributes)
    assert (done.attributes["scheduled_db.job.id"], done.attributes["scheduled_db.attempt"]) == (
        "job-1",
        2,
    )


@pytest.mark.parametrize(("job_type", "trigger"), [("recurrente", False), ("unico", True)])
def test_every_other_run_is_a_trace_of_its_own_linked_to_the_creation(
    spans: InMemorySpanExporter, job_type: str, trigger: bool
) -> None:
    span = delivery_span(_deliver(job_type, trigger), "hooks:8000")
    assert span is not None
    end_delivery_span(span, _outcome(False, 503, "http_error"))
    done = _finished(spans)
    assert done.parent is None and done.context is not None
    assert done.context.trace_id != STORED_TRACE
    (link,) = done.links
    assert (link.context.trace_id, link.context.span_id) == (STORED_TRACE, STORED_SPAN)
    assert done.status.status_code is StatusCode.ERROR
    assert done.attributes is not None and done.attributes["error.type"] == "http_error"


def test_a_job_with_no_stored_context_or_a_bad_one_gets_a_trace_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    for stored in (None, "00-garbage"):
        span = delivery_span(_deliver(stored=stored), "hooks:8000")
        assert span is not None
        tracing.end_span(span)
    first, second = spans.get_finished_spans()
    assert first.parent is None and second.parent is None and not second.links


def test_a_server_span_is_current_while_the_request_runs(spans: InMemorySpanExporter) -> None:
    headers = {"traceparent": TRACEPARENT}
    with tracing.server_span("POST /jobs", headers, {"http.route": "/jobs"}) as span:
        current = tracing.current_traceparent()
        assert current is not None and current == tracing.traceparent_of(span)
        assert re.fullmatch(f"00-{STORED_TRACE:032x}-[0-9a-f]{{16}}-01", current)
        out: dict[str, str] = {}
        tracing.inject(out)
        assert out["traceparent"] == current
    assert tracing.current_traceparent() is None
    done = _finished(spans)
    assert done.kind is SpanKind.SERVER and done.parent is not None
    assert (done.parent.trace_id, done.parent.span_id) == (STORED_TRACE, STORED_SPAN)


def test_a_traced_proposal_has_a_span_per_request_from_propose_to_apply(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    from tests.actors.raft.test_raft_actor import Member, _create

    node = Member(tmp_path / "n1", "n1", ("n1",))
    node.start()
    try:
        node.inbox.wait_for(Leadership, lambda e: e.established)
        other = f"00-{'ab' * 16}-{'cd' * 8}-01"
        outbox = Inbox()
        node.raft.tell(Propose(_create("traced"), outbox.put, (TRACEPARENT, other)))
        outcome = outbox.wait_for(ProposeOutcome)
        assert outcome.error is None
        assert node.propose(_create("untraced")).error is None  # no traceparents: no span
    finally:
        node.stop()
        node.transport.stop()
        node.events.stop()
    done = spans.get_finished_spans()
    assert [s.name for s in done] == ["raft propose", "raft propose"]
    parents = {(s.parent.trace_id, s.parent.span_id) for s in done if s.parent is not None}
    assert parents == {(STORED_TRACE, STORED_SPAN), (int("ab" * 16, 16), int("cd" * 8, 16))}
    for span in done:
        assert [e.name for e in span.events] == ["committed", "applied"]
        assert (
            span.attributes is not None
            and span.attributes["scheduled_db.raft.index"] == outcome.index
        )
