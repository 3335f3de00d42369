"""A stand-in node for the client's tests: a real HTTP server on a loopback port that
records every request and answers from a script, one answer per request, in order.

The client is what is under test, so what matters is exactly what it sends (method,
path, query, headers, body) and what it makes of each answer.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # with the query, as sent
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stub:
    url: str = ""
    script: dict[tuple[str, str], deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    requests: list[Seen] = field(default_factory=list)

    def answer(self, method: str, path: str, *answers: Answer) -> None:
        """Answer the next requests to ``method path`` with ``answers``, in order; the
        last one keeps answering once the others are used up."""
        self.script[(method, path)].extend(answers)

    def next_answer(self, method: str, path: str) -> Answer:
        queue = self.script.get((method, path))
        if not queue:
            return Answer(404, {"error": "no route in the script", "code": "not_found"})
        return queue.popleft() if len(queue) > 1 else queue[0]

    def seen(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            stub.requests.append(
                Seen(self.command, self.path, headers, json.loads(raw) if raw else None)
            )
            answer = stub.next_answer(self.command, self.path)
            data = b"" if answer.body is None else answer.body
            if not isinstance(data, bytes):
                data = json.dumps(data).encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    return Handler


@contextmanager
def stub_node() -> Iterator[Stub]:
    stub = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
