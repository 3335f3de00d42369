"""Tracing against a real node process: OpenTelemetry spans exported over OTLP/HTTP to
a collector in this process (tests/integration/otlp_collector.py), and the
``traceparent`` a real webhook receiver gets; and, with no endpoint set, a node that
never imports OpenTelemetry at all."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.testing.harness import NodeProcess, WaitTimeout, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.otlp_collector import Collector, Span

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
WAIT_S = 20.0


@pytest.fixture
def collector() -> Iterator[Collector]:
    started = Collector().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def traced_node(tmp_path: Path, collector: Collector) -> Iterator[NodeProcess]:
    """A node exporting its spans to ``collector`` every 50 ms."""
    proc = NodeProcess(
        tmp_path / "data",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="50",
        NO_PROXY="127.0.0.1",  # the exporter (requests) would honour a proxy variable
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop_if_running()


def _create_soon(node: NodeProcess, job_id: str, url: str, **headers: str) -> dict[str, Any]:
    body = {"id": job_id, "type": "unico", "timestamp": round(time.time() + 1.5, 3),
            "webhook_url": url}  # fmt: skip
    status, _, job = node.http.call("POST", "/jobs", body, headers=headers)
    assert status == 200, job
    return job  # type: ignore[no-any-return]


def _one(spans: list[Span], name: str, **attributes: Any) -> Span | None:
    found = [
        s for s in spans
        if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]  # fmt: skip
    assert len(found) <= 1, found
    return found[0] if found else None


def test_one_trace_runs_from_post_jobs_through_the_delivery_to_the_receiver(
    traced_node: NodeProcess, collector: Collector, receiver: Receiver
) -> None:
    job = _create_soon(traced_node, "traced-1", receiver.url("/ok"))
    receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=WAIT_S)
    delivery = collector.wait_for(
        lambda spans: _one(spans, "webhook deliver", **{"scheduled_db.job.id": "traced-1"}),
        WAIT_S,
        "delivery span",
    )
    spans = collector.wait_for(
        lambda spans: [s for s in spans if s.trace_id == delivery.trace_id]
        if _one(spans, "POST /jobs") and _one(spans, "raft propose") else None,
        WAIT_S,
        "request and proposal spans",
    )  # fmt: skip
    request = _one(spans, "POST /jobs")
    proposal = _one(spans, "raft propose")
    assert request is not None and proposal is not None, [s.name for s in spans]
    # One trace: the request is its root, the proposal and the delivery its children.
    assert request.parent_span_id == "" and request.kind == "SERVER"
    assert request.attributes["http.route"] == "/jobs"
    assert request.attributes["http.response.status_code"] == 200
    assert proposal.parent_span_id == request.span_id
    assert proposal.events == ("committed", "applied")
    assert delivery.parent_span_id == request.span_id and delivery.kind == "CLIENT"
    assert delivery.attributes["scheduled_db.occurrence_ms"] == job["timestamp_ms"]
    assert delivery.attributes["scheduled_db.attempt"] == 1
    assert delivery.attributes["http.response.status_code"] == 200
    assert not delivery.error and delivery.resource["service.name"] == "scheduled-db"
    assert delivery.resource["service.instance.id"] == traced_node.node_id
    # The receiver's request carries the delivery span's context: its trace joins ours.
    (received,) = receiver.received("/ok")
    match = TRACEPARENT.fullmatch(received.headers["traceparent"])
    assert match is not None, received.headers["traceparent"]
    assert match.groups()[:2] == (request.trace_id, delivery.span_id)
    assert int(match.group(3), 16) & 1  # sampled


def test_a_clients_traceparent_is_the_parent_and_spans_are_named_by_route(
    traced_node: NodeProcess, collector: Collector, receiver: Receiver
) -> None:
    client = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    _create_soon(traced_node, "joined-año", receiver.url("/ok"), traceparent=client)
    status, _ = traced_node.call("GET", "/jobs/joined-a%C3%B1o", headers={"traceparent": client})
    assert status == 200
    receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=WAIT_S)
    request = collector.wait_for(lambda spans: _one(spans, "POST /jobs"), WAIT_S, "POST span")
    read = collector.wait_for(lambda spans: _one(spans, "GET /jobs/{id}"), WAIT_S, "GET span")
    delivery = collector.wait_for(
        lambda spans: _one(spans, "webhook deliver"), WAIT_S, "delivery span"
    )
    assert (request.trace_id, request.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert (read.trace_id, read.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert read.attributes["url.path"] == "/jobs/joined-año"  # the path: an attribute
    assert (delivery.trace_id, delivery.parent_span_id) == (CLIENT_TRACE, request.span_id)
    header = receiver.received("/ok")[0].headers["traceparent"]
    assert header == f"00-{CLIENT_TRACE}-{delivery.span_id}-01"


def test_with_no_endpoint_set_the_node_never_imports_opentelemetry(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The import log of the whole life of a node (start, a create, a delivery, reads,
    the stop) names no opentelemetry module, and the receiver gets no traceparent."""
    node = NodeProcess(tmp_path / "data", PYTHONPROFILEIMPORTTIME="1")
    node.start()
    try:
        _create_soon(node, "untraced", receiver.url("/ok"))
        receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=WAIT_S)
        assert node.call("GET", "/jobs/untraced")[0] == 200
        assert node.call("GET", "/metrics")[0] == 200
    finally:
        node.stop_if_running()
    imports = [line for line in node.log().splitlines() if line.startswith("import time:")]
    assert any(line.endswith("aiohttp") for line in imports)  # the log is the import log
    assert not [line for line in imports if "opentelemetry" in line]
    assert "traceparent" not in receiver.received("/ok")[0].headers


def test_an_endpoint_without_the_otel_extra_stops_start_up_with_one_line(tmp_path: Path) -> None:
    # A module named opentelemetry first on the path: the package is as good as absent.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "opentelemetry.py").write_text("")
    from scheduled_db.testing.harness import ROOT

    node = NodeProcess(
        tmp_path / "data",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
        PYTHONPATH=f"{shadow}:{ROOT}",
    )
    node.start(wait=False)
    try:
        wait_until(lambda: not node.alive(), WAIT_S, "the node to stop")
    except WaitTimeout:
        node.stop_if_running()
        raise
    assert node.proc is not None and node.proc.returncode == 2
    lines = node.log().strip().splitlines()
    assert len(lines) == 1, lines
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in lines[0]
    assert "pip install 'scheduled-db[otel]'" in lines[0]
