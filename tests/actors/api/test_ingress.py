"""The HttpActor for real: its own loop thread, ephemeral ports, a clean stop."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pykka
import pytest

from actors.api.actor import BoundPorts, HttpActor
from actors.api.messages import GetBoundPorts
from actors.runtime.metrics import ApiMetrics
from actors.runtime.replies import wait_reply
from tests.actors.http_harness import START_MS, FakeClock, make_config
from tests.actors.memory_backend import MemoryBackend

TIMEOUT_S = 10.0


def _request(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(TIMEOUT_S)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def _http_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("http-node-")]


@pytest.fixture
def started() -> Iterator[tuple[pykka.ActorRef[HttpActor], MemoryBackend, BoundPorts]]:
    backend = MemoryBackend()
    ref = HttpActor.start(backend, make_config(), ApiMetrics(), FakeClock(), metrics_enabled=True)
    try:
        ports = ref.proxy().ports().get(timeout=TIMEOUT_S)
        yield ref, backend, ports
    finally:
        if ref.is_alive():
            ref.stop(timeout=TIMEOUT_S)


def test_serves_the_api_and_the_metrics_port_then_releases_both(
    started: tuple[pykka.ActorRef[HttpActor], MemoryBackend, BoundPorts],
) -> None:
    ref, backend, ports = started
    assert ports.http > 0 and ports.metrics > 0 and ports.metrics != ports.http
    assert ref.proxy().bound_port().get(timeout=TIMEOUT_S) == ports.http

    body = {"id": "via-actor", "type": "unico", "timestamp": START_MS // 1000 + 60}
    status, raw = _request(ports.http, "POST", "/jobs", body)
    assert status == 200 and json.loads(raw)["id"] == "via-actor"
    status, raw = _request(ports.http, "GET", "/health")
    assert status == 200 and json.loads(raw)["jobs"]["current_count"] == 1

    status, raw = _request(ports.metrics, "GET", "/metrics")
    assert status == 200 and b"scheduled_db_queue_job_count 1.0" in raw
    assert b'route="/jobs",status="200"' in raw
    status, raw = _request(ports.metrics, "GET", "/jobs")  # the metrics port serves nothing else
    assert status == 404 and json.loads(raw) == {"error": "Not found", "code": "not_found"}

    ref.stop(timeout=TIMEOUT_S)
    assert _refused(ports.http) and _refused(ports.metrics)
    for port in (ports.http, ports.metrics):
        with socket.socket() as sock:  # the port can be bound again
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    assert _http_threads() == []


def test_metrics_listener_is_off_when_its_port_is_zero() -> None:
    ref = HttpActor.start(MemoryBackend(), make_config())
    try:
        http_port, metrics_port = wait_reply(ref, GetBoundPorts, TIMEOUT_S)
        ports = ref.proxy().ports().get(timeout=TIMEOUT_S)
        assert ports == (http_port, metrics_port) and metrics_port == 0
        status, raw = _request(ports.http, "GET", "/metrics")  # still on the API port
        assert status == 200 and b"scheduled_db_raft_is_leader 1.0" in raw
    finally:
        ref.stop(timeout=TIMEOUT_S)
    assert _http_threads() == []


def test_a_port_in_use_stops_the_actor_and_its_loop() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = make_config()
        config = replace(config, http=replace(config.http, port=taken.getsockname()[1]))
        ref = HttpActor.start(MemoryBackend(), config)
        with pytest.raises(pykka.ActorDeadError):
            ref.proxy().ports().get(timeout=TIMEOUT_S)
    assert not ref.is_alive()
    assert _http_threads() == []
