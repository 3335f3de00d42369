"""Requests aiohttp answers by itself get JSON error bodies and one-line logs.

A real HttpActor (its own loop thread, an ephemeral port) over a MemoryBackend;
requests go over raw sockets, since no HTTP client sends them this broken.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import zlib
from collections.abc import Iterator
from http.client import HTTPResponse

import pykka
import pytest

from actors.api.actor import HttpActor
from actors.api.protocol import BAD_REQUEST, client_fault
from actors.runtime.metrics import ApiMetrics
from tests.actors.http_harness import FakeClock, check_error_body, make_config
from tests.actors.memory_backend import MemoryBackend

TIMEOUT_S = 10.0


@pytest.fixture
def port() -> Iterator[int]:
    ref: pykka.ActorRef[HttpActor] = HttpActor.start(
        MemoryBackend(), make_config(), ApiMetrics(), FakeClock()
    )
    try:
        yield ref.proxy().bound_port().get(timeout=TIMEOUT_S)
    finally:
        ref.stop(timeout=TIMEOUT_S)


def exchange(port: int, data: bytes, method: str = "POST") -> tuple[int, str, bytes]:
    """Send ``data`` as is; the (status, content type, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        response = HTTPResponse(sock, method=method)
        response.begin()
        return response.status, response.getheader("Content-Type", ""), response.read()


def records_settle(caplog: pytest.LogCaptureFixture, needle: str) -> None:
    """Wait (bounded) for a log record containing ``needle``: aiohttp logs after answering."""
    deadline = time.monotonic() + TIMEOUT_S
    while not any(needle in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, f"no log record with {needle!r}"
        time.sleep(0.01)


def assert_no_error_logs(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not bad, [(r.name, r.getMessage()) for r in bad]


MANY_HEADERS = b"".join(b"X-%d: a\r\n" % i for i in range(200))
MALFORMED = [
    pytest.param(b"GAR BAGE\r\n\r\n", id="bad-method"),
    pytest.param(
        b"POST /jobs HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        id="length-and-chunked",
    ),
    pytest.param(b"POST /jobs HTTP/1.1\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
    pytest.param(
        b"POST /jobs HTTP/1.1\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", id="brotli"
    ),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-hello"),
]


OVERSIZED = [
    pytest.param(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n", id="long-header"),
    pytest.param(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", id="long-line"),
    pytest.param(b"GET / HTTP/1.1\r\n" + MANY_HEADERS + b"\r\n", id="many-headers"),
]


@pytest.mark.parametrize("data", OVERSIZED)
def test_headers_past_the_limits_get_a_json_431_and_one_log_line(
    port: int, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, content_type, raw = exchange(port, data)
    assert status == 431
    body = check_error_body(status, raw, content_type.split(";")[0])
    assert body["code"] == "headers_too_large"
    records_settle(caplog, "refused a malformed request")
    assert_no_error_logs(caplog)
    status, _, _ = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
    assert status == 200  # and the server goes on serving


@pytest.mark.parametrize("data", MALFORMED)
def test_a_request_the_parser_refuses_gets_a_json_400_and_one_log_line(
    port: int, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, content_type, raw = exchange(port, data)
    assert status == 400
    assert check_error_body(status, raw, content_type.split(";")[0]) == {
        "error": BAD_REQUEST,
        "code": "bad_request",
    }
    records_settle(caplog, "refused a malformed request")
    assert_no_error_logs(caplog)
    assert "\n" not in next(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    status, _, _ = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
    assert status == 200  # and the server goes on serving


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", ["/jobs", "/jobs/j1/cancel"])
def test_a_body_that_breaks_its_content_encoding_is_a_400_without_tracebacks(
    port: int, encoding: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Encoding: {encoding}\r\nContent-Length: 9\r\n\r\n"
    status, content_type, raw = exchange(port, head.encode() + b"not-zlib!")
    assert status == 400
    body = check_error_body(status, raw, content_type.split(";")[0])
    assert body["code"] == "invalid_body" and body["field"] == "body"
    records_settle(caplog, "dropped the rest of a malformed request body")
    assert_no_error_logs(caplog)


def test_a_well_encoded_body_is_still_read(port: int) -> None:
    body = zlib.compress(json.dumps({"type": "unico", "timestamp": 2_000_000_000}).encode())
    head = "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Encoding: deflate\r\nContent-Length: {len(body)}\r\n\r\n"
    status, _, raw = exchange(port, head.encode() + body)
    assert status == 200 and json.loads(raw)["timestamp"] == 2_000_000_000


def test_a_body_cut_short_by_the_client_logs_no_error(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    head = b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(head + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n')
    records_settle(caplog, '"POST /jobs HTTP/1.1" 400')  # the access log: answered 400
    assert_no_error_logs(caplog)


@pytest.mark.parametrize("path", ["/jobs", "/no/such/route"])
def test_an_unknown_expectation_is_a_json_417(port: int, path: str) -> None:
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\n{{}}"
    status, content_type, raw = exchange(port, request.encode())
    assert status == 417
    body = check_error_body(status, raw, content_type.split(";")[0])
    assert body == {"error": "Expectation Failed", "code": "expectation_failed"}


def test_client_fault_names_only_the_clients_mistakes() -> None:
    from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

    assert client_fault(BadHttpMessage("Bad\n\n  b'x'\n   ^")) == "Bad b'x' ^"
    assert client_fault(LineTooLong(b"a" * 500, 10)) is not None
    assert len(client_fault(LineTooLong(b"a" * 500, 10)) or "") <= 123
    assert client_fault(RuntimeError("a bug")) is None
    assert client_fault(None) is None
