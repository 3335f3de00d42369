"""Seeded generators of bad HTTP requests for the API fuzz (tests/integration/test_api_fuzz.py).

:class:`RawRequests` builds whole requests as bytes, for a plain socket: any method,
target and version, headers that are overlong, duplicated, contradictory or not
Latin-1, bodies that are malformed JSON, deeply nested, oversize, not UTF-8, or
whose Content-Encoding or chunking is broken.  Every request it makes is complete
(no Content-Length promises more bytes than follow), so each deserves an answer.

:class:`ClientRequests` makes (method, path, body) triples for an HTTP client, which
encodes them properly: the ids, query values and JSON bodies are what is random.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

ROUTES = [
    "/jobs", "/jobs/{id}", "/jobs/{id}/status", "/jobs/{id}/executions", "/jobs/{id}/cancel",
    "/health", "/ready", "/metrics", "/debug/digest", "/join", "/leave",
    "/cluster/members/{id}", "/", "/{junk}", "//jobs", "/jobs/", "/JOBS", "/jobs/{id}/{junk}",
]  # fmt: skip
ENDPOINTS = [
    ("POST", "/jobs"), ("POST", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs"),
    ("GET", "/jobs/{id}"), ("GET", "/jobs/{id}/status"), ("GET", "/jobs/{id}/executions"),
    ("DELETE", "/jobs/{id}"), ("POST", "/jobs/{id}/cancel"), ("POST", "/join"),
    ("POST", "/leave"), ("DELETE", "/cluster/members/{id}"), ("GET", "/health"),
    ("OPTIONS", "/jobs"), ("HEAD", "/jobs/{id}"),
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]
ODD_METHODS = [b"get", b"G ET", b"", b"GET\x00", b"\xff\xfe", b"X" * 300, b"M-SEARCH"]
ODD_IDS = [
    "..", ".", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%00", "%ff%fe", "%", "%zz", "%C0%AE%C0%AE",
    "a" * 300, "%E9", "~", ";x", "x%3Fy", "%23", "..%5c..%5c", "%252e%252e", "%u002e", "%0d%0aX:y",
]  # fmt: skip
QUERY_KEYS = ["limit", "status", "cursor", "consistent", "reason", "id", "%ff", "", "limit[]"]
QUERY_VALUES = [
    "-1", "0", "1", "1000", "1001", "9" * 60, "abc", "%ff", "", "true", "false", "TRUE",
    "pending", "cancelled", "%00", "A" * 1100, "djE6", "djE6am9iLTE", "%E2%80%AE", "1e3",
]  # fmt: skip
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/merge-patch+json", "application/json;;;", "application/json; charset=",
    "*/*", "", "\u00e9/json",
]  # fmt: skip
VERSIONS = [b"HTTP/1.1"] * 8 + [b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/9.9", b"HTTX/1.1"]


@dataclass(frozen=True)
class Raw:
    """One request as bytes, and the method it used (how to read the answer)."""

    data: bytes
    method: str


class RawRequests:
    def __init__(self, rng: random.Random, ids: list[str]) -> None:
        self.rng = rng
        self.ids = ids

    def make(self) -> Raw:
        rng = self.rng
        method: str | None
        if rng.random() < 0.6:  # a real endpoint, so the body and query get read
            method, route = rng.choice(ENDPOINTS)
            target = self.target(route)
        else:
            method = rng.choice(METHODS) if rng.random() < 0.9 else None
            target = self.target(rng.choice(ROUTES))
        line_method = method.encode() if method else rng.choice(ODD_METHODS)
        version = rng.choice(VERSIONS)
        body, headers = self.body_and_headers(method or "GET")
        headers += self.odd_headers()
        head = line_method + b" " + target + b" " + version + b"\r\n"
        head += b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        return Raw(head + b"\r\n" + body, method or "GET")

    # --- request target -------------------------------------------------------------

    def target(self, route: str) -> bytes:
        rng = self.rng
        if rng.random() < 0.05:
            return rng.choice([b"*", b"http://evil.example/jobs", b"jobs", b"/" + b"a" * 9000])
        path = route.replace("{id}", self.job_id()).replace("{junk}", self.junk())
        if rng.random() < 0.4:
            path += "?" + self.query()
        return path.encode("utf-8", "surrogateescape")

    def job_id(self) -> str:
        rng = self.rng
        pick = rng.random()
        if pick < 0.3 and self.ids:
            return rng.choice(self.ids)
        if pick < 0.7:
            return rng.choice(ODD_IDS)
        raw = rng.randbytes(rng.randint(1, 12))
        return "".join(f"%{b:02X}" for b in raw)

    def junk(self) -> str:
        alphabet = "abc%2F./_-~:@!$&'()*+,;=0123456789\u00e9"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 20)))

    def query(self) -> str:
        rng = self.rng
        count = rng.choice([1, 2, 3, 5, 300])
        pairs = [f"{rng.choice(QUERY_KEYS)}={rng.choice(QUERY_VALUES)}" for _ in range(count)]
        return "&".join(pairs)[:7000]

    # --- headers and body ------------------------------------------------------------

    def body_and_headers(self, method: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        rng = self.rng
        headers: list[tuple[bytes, bytes]] = [(b"Host", b"127.0.0.1")]
        if rng.random() < 0.8:
            headers.append((b"Connection", b"close"))
        body = self.body() if method not in ("GET", "HEAD") or rng.random() < 0.1 else b""
        if rng.random() < 0.9:
            headers.append((b"Content-Type", rng.choice(CONTENT_TYPES).encode("utf-8")))
        encoding = rng.random()
        if encoding < 0.06:
            body = zlib.compress(body)
            headers.append((b"Content-Encoding", b"deflate"))
        elif encoding < 0.12:
            headers.append((b"Content-Encoding", rng.choice([b"gzip", b"deflate", b"br", b"x"])))
        if rng.random() < 0.15:
            headers.append((b"Transfer-Encoding", b"chunked"))
            return self.chunked(body), headers
        length = rng.random()
        if length < 0.85:
            headers.append((b"Content-Length", str(len(body)).encode()))
        elif length < 0.92:
            headers.append((b"Content-Length", rng.choice([b"-1", b"abc", b"1e3", b" 1", b"+1"])))
        else:
            headers += [(b"Content-Length", str(len(body)).encode()), (b"Content-Length", b"0")]
        return body, headers

    def chunked(self, body: bytes) -> bytes:
        if self.rng.random() < 0.2:  # broken framing, still complete on the wire
            return self.rng.choice([b"zz\r\n{}\r\n0\r\n\r\n", b"-1\r\n\r\n", b"2\r\n{}0\r\n\r\n"])
        step = self.rng.randint(1, 64)
        parts = [body[i : i + step] for i in range(0, len(body), step)]
        return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"

    def body(self) -> bytes:
        rng = self.rng
        kind = rng.randrange(12)
        if kind == 0:
            return b""
        if kind == 1:
            return b"[" * rng.choice([100, 5_000, 200_000]) + b"]" * rng.choice([0, 100])
        if kind == 2:
            return b'{"type":"unico","payload":"' + b"x" * (1 << 20) + b'"}'  # past max_body
        if kind == 3:
            return rng.choice([b"\xff\xfe{}", b'{"id":"\xc0\xae"}', b"\xef\xbb\xbf{}", b"{\x00}"])
        if kind == 4:
            return rng.randbytes(rng.randint(1, 400))
        if kind == 5:
            return rng.choice(
                [b"{", b'{"a":1,}', b"{'a':1}", b'{"timestamp":NaN}', b'{"timestamp":1e999}',
                 b'{"max_attempts":' + b"9" * 100 + b"}", b'{"id":"\\ud800"}', b"null", b"[]",
                 b'"str"', b"12", b'{"type":"unico","type":"recurrente"}', b"{}" * 3]
            )  # fmt: skip
        return json.dumps(job_body(rng, self.ids)).encode()

    def odd_headers(self) -> list[tuple[bytes, bytes]]:
        rng = self.rng
        if rng.random() > 0.25:
            return []
        choices: list[list[tuple[bytes, bytes]]] = [
            [(b"X-Big", b"a" * rng.choice([100, 8_000, 9_000]))],
            [(b"X-H%d" % i, b"v") for i in range(rng.choice([50, 120]))],
            [(b"Expect", rng.choice([b"100-continue", b"bogus", b""]))],
            [(b"Origin", rng.choice([b"http://evil.example", b"null", b"\xff"]))],
            [(b"Authorization", b"Bearer " + rng.randbytes(8).hex().encode())],
            [(b"Bad Header", b"x")],
            [(b"X-Fold", b"a\r\n b")],
            [(b"X-Nul", b"a\x00b")],
            [(b"X-Latin", bytes(range(0x80, 0xA0)))],
            [(b"Host", b"other.example")],
            [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
        ]
        return rng.choice(choices)


# --- job bodies --------------------------------------------------------------------------


def nested(depth: int) -> list[object]:
    """A list nested ``depth`` deep: past the payload's depth limit of 64."""
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def job_body(rng: random.Random, ids: list[str]) -> dict[str, Any]:
    """A job body, valid or nearly so, with random fields sometimes."""
    far = 2_000_000_000 + rng.randint(0, 10**6)
    body: dict[str, Any] = rng.choice(
        [
            {"type": "unico", "timestamp": far},
            {"type": "recurrente", "cron_expression": rng.choice(["*/5 * * * *", "@daily"])},
        ]
    )
    odd: dict[str, list[Any]] = {
        "id": ["..", "", "a/b", "x" * 300, "é", rng.choice(ids) if ids else "x", None, 7],
        "timestamp": [-1, 0, 10**20, "9999-12-31T23:59:60Z", "2026-02-30T00:00:00Z", True, 1.5],
        "cron_expression": ["* * *", "61 * * * *", "0 0 30 2 *", "@reboot", "", "\u00e9"],
        "timezone": ["Mars/Base", "../../etc/passwd", "localtime", "", "UTC\x00", 3],
        "webhook_url": ["ftp://x/", "http://user:pw@h/", "http://[::1", "http://h:0/", "x" * 3000],
        "payload": [[1], "s", {"a": nested(70)}, {"\ud800": 1}],
        "max_attempts": [0, 101, -1, 1.5, "3", True],
        "timeout": ["0s", "2h", "x", -1, 10**30],
        "misfire_policy": ["never", "", None],
        "last_date": [0, "2000-01-01T00:00:00Z", far - 1],
        "unknown": [1],
        "": [None],
    }
    for name in rng.sample(sorted(odd), rng.randint(0, 2)):
        body[name] = rng.choice(odd[name])
    if rng.random() < 0.3 and "id" not in body:
        body["id"] = f"fz-{rng.randrange(10**9)}"
    return body


class ClientRequests:
    """Requests an HTTP client sends properly encoded: (method, path, JSON body or None)."""

    def __init__(self, rng: random.Random, ids: list[str]) -> None:
        self.rng = rng
        self.ids = ids

    def make(self) -> tuple[str, str, Any]:
        rng = self.rng
        if rng.random() < 0.6:
            method, route = rng.choice(ENDPOINTS)
        else:
            method, route = (
                rng.choice(["GET", "POST", "DELETE", "PUT", "PATCH"]),
                rng.choice(ROUTES),
            )
        job_id = quote(self.text_id(), safe="")
        path = route.replace("{id}", job_id).replace("{junk}", job_id)
        if rng.random() < 0.5:
            params = {rng.choice(QUERY_KEYS): self.text() for _ in range(rng.randint(1, 4))}
            path += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
        body: Any = None
        if method in ("POST", "PUT", "PATCH"):
            body = job_body(rng, self.ids) if rng.random() < 0.8 else self.json_value(3)
        return method, path, body

    def text_id(self) -> str:
        if self.ids and self.rng.random() < 0.3:
            return self.rng.choice(self.ids)
        return self.text()

    def text(self) -> str:
        alphabet = "aZ09._:-/?#%&=+ \\\u00e9\u202e\U0001f600\x00\x7f"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 30)))

    def json_value(self, depth: int) -> Any:
        rng = self.rng
        pick = rng.randrange(7 if depth > 0 else 5)
        if pick == 0:
            return rng.randint(-(2**70), 2**70)
        if pick == 1:
            return rng.random() * 10 ** rng.randint(-10, 300)
        if pick == 2:
            return self.text()
        if pick == 3:
            return rng.choice([None, True, False])
        if pick == 4:
            return "x" * rng.choice([0, 10, 5000])
        if pick == 5:
            return [self.json_value(depth - 1) for _ in range(rng.randint(0, 4))]
        return {self.text(): self.json_value(depth - 1) for _ in range(rng.randint(0, 4))}
