"""The API's limits against a real listener (the HttpActor: ApiRunner on an ephemeral
port): header count and size, slow headers and bodies, body and payload size, and
the per-client rate limit.  Raw sockets where the test is about the bytes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from actors.api.actor import HttpActor
from actors.api.limits import FORWARD_PROOF_HEADER, FORWARDED_HEADER, forward_proof
from actors.runtime.metrics import ApiMetrics
from scheduled_db.policy.auth import token_digest
from tests.actors.http_harness import START_MS, FakeClock, check_error_body, make_config
from tests.actors.memory_backend import MemoryBackend

TIMEOUT_S = 10.0
SECRET = "limits-test-cluster-secret"


@contextmanager
def node(values: Mapping[str, object] | None = None) -> Iterator[int]:
    """A real API listener over a MemoryBackend with ``values`` applied; yields its port."""
    ref = HttpActor.start(MemoryBackend(), make_config(values), ApiMetrics(), FakeClock())
    try:
        yield ref.proxy().ports().get(timeout=TIMEOUT_S).http
    finally:
        ref.stop(timeout=TIMEOUT_S)


def exchange(
    port: int, raw: bytes, timeout: float = TIMEOUT_S
) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read to the end of the answer (the server closes), parse it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_response(data)


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-type" in headers:  # the media type alone, as aiohttp's client gives it
        headers["content-type"] = headers["content-type"].split(";")[0]
    return status, headers, body


def request(
    port: int, method: str, path: str, body: Any = None, headers: Mapping[str, str] = {}
) -> tuple[int, dict[str, str], bytes]:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + payload)


def job(job_id: str, payload: object = None) -> dict[str, object]:
    body: dict[str, object] = {
        "id": job_id,
        "type": "unico",
        "timestamp": START_MS // 1000 + 3600,
        "webhook_url": "https://example.com/hook",
    }
    if payload is not None:
        body["payload"] = payload
    return body


# --- headers ----------------------------------------------------------------------------


def test_too_many_headers_is_a_json_431() -> None:
    with node({"http.max_headers": 20}) as port:
        extra = "".join(f"X-H{i}: v\r\n" for i in range(25))
        raw = f"GET /health HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()
        status, headers, body = exchange(port, raw)
        assert status == 431
        assert check_error_body(status, body, headers["content-type"])["code"] == (
            "headers_too_large"
        )
        # 19 headers (with Host) pass: the limit is the configured one.
        ok = "".join(f"X-H{i}: v\r\n" for i in range(18))
        raw = f"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{ok}\r\n".encode()
        assert exchange(port, raw)[0] == 200


def test_an_oversized_header_or_request_line_is_a_json_431() -> None:
    with node({"http.max_header_size": "1KiB"}) as port:
        raw = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
        status, headers, body = exchange(port, raw)
        assert status == 431
        assert "1024 bytes" in check_error_body(status, body, headers["content-type"])["error"]
        raw = b"GET /jobs?x=" + b"a" * 2000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        status, headers, body = exchange(port, raw)
        assert status == 431
        check_error_body(status, body, headers["content-type"])
        raw = b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Ok: " + b"a" * 900
        assert exchange(port, raw + b"\r\n\r\n")[0] == 200


def test_garbage_instead_of_http_is_a_json_400() -> None:
    with node() as port:
        status, headers, body = exchange(
            port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"
        )
        assert status == 400
        assert check_error_body(status, body, headers["content-type"])["code"] == "bad_request"


# --- slow clients -----------------------------------------------------------------------


def test_headers_trickled_slower_than_the_idle_timeout_are_cut_off() -> None:
    with (
        node({"http.idle_timeout": "1s"}) as port,
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock,
    ):
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        closed_at = None
        for i in range(40):  # one header line every 0.1 s: never a complete request
            try:
                sock.sendall(b"X-Slow-%d: v\r\n" % i)
            except OSError:
                closed_at = time.monotonic()
                break
            sock.settimeout(0.1)
            try:
                if sock.recv(1) == b"":
                    closed_at = time.monotonic()
                    break
            except TimeoutError:
                pass
        assert closed_at is not None, "the server kept a trickling client for 4 s"
        assert closed_at - started < 3.0


def test_a_body_slower_than_the_body_timeout_gets_408() -> None:
    with node({"http.body_timeout": "500ms"}) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
            sock.sendall(
                b"POST /jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"id": '
            )
            started = time.monotonic()
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and data.endswith(b"}\n"):
                    break
            elapsed = time.monotonic() - started
        status, headers, body = parse_response(data)
        assert status == 408
        assert check_error_body(status, body, headers["content-type"])["field"] == "body"
        assert 0.4 < elapsed < 5.0


# --- sizes ------------------------------------------------------------------------------


def test_a_body_over_max_body_is_413_and_a_payload_over_max_payload_is_400() -> None:
    with node({"http.max_body": "4KiB", "http.max_payload": "1KiB"}) as port:
        status, headers, body = request(port, "POST", "/jobs", job("big", {"x": "a" * 5000}))
        assert status == 413
        check_error_body(status, body, headers["content-type"])
        status, headers, body = request(port, "POST", "/jobs", job("mid", {"x": "a" * 2000}))
        assert status == 400
        assert check_error_body(status, body, headers["content-type"])["field"] == "payload"
        assert request(port, "POST", "/jobs", job("small", {"x": "a" * 900}))[0] == 200


# --- rate limit -------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_once_the_burst_is_spent() -> None:
    with node({"api.rate_limit": 0.5, "api.rate_burst": 3}) as port:
        statuses = [request(port, "GET", "/jobs")[0] for _ in range(3)]
        assert statuses == [200, 200, 200]
        status, headers, body = request(port, "GET", "/jobs")
        assert status == 429
        assert headers["retry-after"] == "2"  # one token at 0.5/s
        assert check_error_body(status, body, headers["content-type"])["code"] == "rate_limited"
        # Probes are never limited.
        assert request(port, "GET", "/health")[0] == 200


def test_rate_limit_is_per_token_when_tokens_are_configured() -> None:
    tokens = [
        {"name": "alice", "token_sha256": token_digest("alice-token-1234"), "role": "write"},
        {"name": "bob", "token_sha256": token_digest("bob-token-123456"), "role": "write"},
    ]
    with node({"api.rate_limit": 0.1, "api.rate_burst": 2, "api.tokens": tokens}) as port:
        alice = {"Authorization": "Bearer alice-token-1234"}
        bob = {"Authorization": "Bearer bob-token-123456"}
        assert [request(port, "GET", "/jobs", headers=alice)[0] for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert request(port, "GET", "/jobs", headers=bob)[0] == 200


def test_a_forwarded_write_is_exempt_only_with_a_valid_proof() -> None:
    values = {"api.rate_limit": 0.1, "api.rate_burst": 1, "cluster.secret": SECRET}
    with node(values) as port:
        assert request(port, "GET", "/jobs")[0] == 200
        assert request(port, "GET", "/jobs")[0] == 429
        forged = {FORWARDED_HEADER: "node-2", FORWARD_PROOF_HEADER: "0" * 64}
        assert request(port, "GET", "/jobs", headers=forged)[0] == 429
        proven = {FORWARDED_HEADER: "node-2", FORWARD_PROOF_HEADER: forward_proof(SECRET, "node-2")}
        assert request(port, "GET", "/jobs", headers=proven)[0] == 200
