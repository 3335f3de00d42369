"""scheduled_db.cli.main's client commands against a real local HTTP server.

The server is a stand-in for a node that records each request and answers with
canned JSON: the client is what is under test, so what matters is the exact
method, path and body it sends, and what it prints and exits with for each answer.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scheduled_db.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def run_cli(
    capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``main(argv)``: (exit code, stdout, stderr)."""
    code = main(list(argv), env or {})
    out, err = capsys.readouterr()
    return code, out, err


# --- a stand-in node for the client commands --------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    body: object | None
    content_type: str | None
    authorization: str | None = None


@dataclass
class StubNode:
    """Records every request; answers from ``routes`` (method, path with query) -> answer."""

    url: str = ""
    routes: dict[tuple[str, str], tuple[int, object]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, method: str, path: str, status: int, body: object = None) -> None:
        self.routes[(method, path)] = (status, body)


def handler_for(stub: StubNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw) if raw else None
            seen = Seen(self.command, self.path, body, self.headers["Content-Type"])
            seen.authorization = self.headers["Authorization"]
            stub.requests.append(seen)
            status, answer = stub.routes.get(
                (self.command, self.path), (404, {"error": "not_found", "message": "no route"})
            )
            if answer == "hang":  # answer only once the test is over
                stub.release.wait()
                return
            data = answer if isinstance(answer, bytes) else b""
            if answer is not None and not isinstance(answer, bytes):
                data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    return Handler


@pytest.fixture
def node() -> Iterator[StubNode]:
    stub = StubNode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield stub
    stub.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def client(capsys: pytest.CaptureFixture[str], node: StubNode, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv, "--url", node.url)


JOB = {"id": "job-1", "type": "unico", "status": "pending"}


def test_create_from_json(capsys: pytest.CaptureFixture[str], node: StubNode) -> None:
    node.answer("POST", "/jobs", 201, JOB)
    body = {"type": "unico", "timestamp": "2030-01-01T00:00:00Z", "webhook_url": "http://h/x"}
    code, out, err = client(capsys, node, "jobs", "create", "--json", json.dumps(body))
    assert (code, err) == (0, "")
    assert out == json.dumps(JOB, indent=2) + "\n"
    assert node.requests == [Seen("POST", "/jobs", body, "application/json")]


def test_create_from_flags(capsys: pytest.CaptureFixture[str], node: StubNode) -> None:
    node.answer("POST", "/jobs", 201, JOB)
    argv = ["--id", "job-1", "--type", "recurrente", "--cron", "*/5 * * * *"]
    argv += ["--timezone", "Europe/Madrid", "--last-date", "2031-01-01 00:00:00"]
    argv += ["--webhook-url", "https://h/x", "--payload", '{"a": [1]}', "--misfire-policy", "skip"]
    argv += ["--max-attempts", "5", "--webhook-timeout", "45s", "--signing-secret-ref", "k1"]
    code, _, _ = client(capsys, node, "jobs", "create", *argv)
    assert code == 0
    assert node.requests[0].body == {
        "id": "job-1",
        "type": "recurrente",
        "cron_expression": "*/5 * * * *",
        "timezone": "Europe/Madrid",
        "last_date": "2031-01-01 00:00:00",
        "webhook_url": "https://h/x",
        "payload": {"a": [1]},
        "misfire_policy": "skip",
        "max_attempts": 5,
        "timeout": "45s",
        "signing_secret_ref": "k1",
    }


def test_create_from_a_file_with_flags_laid_over_it(
    capsys: pytest.CaptureFixture[str], node: StubNode, tmp_path: Path
) -> None:
    node.answer("POST", "/jobs", 201, JOB)
    path = tmp_path / "job.json"
    path.write_text('{"id": "template", "type": "unico", "timestamp": 1900000000}')
    code, _, _ = client(capsys, node, "jobs", "create", "--file", str(path), "--id", "job-2")
    assert code == 0
    assert node.requests[0].body == {"id": "job-2", "type": "unico", "timestamp": 1900000000}


@pytest.mark.parametrize("source", [["-"], ["--file", "-"]])
def test_create_from_stdin(
    capsys: pytest.CaptureFixture[str],
    node: StubNode,
    monkeypatch: pytest.MonkeyPatch,
    source: list[str],
) -> None:
    node.answer("POST", "/jobs", 201, JOB)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"type": "unico"}'))
    code, _, _ = client(capsys, node, "jobs", "create", *source)
    assert (code, node.requests[0].body) == (0, {"type": "unico"})


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([], "jobs create: give the job as --json, --file, - (stdin) or flags"),
        (["--json", "{nope"], "jobs create: --json is not valid JSON: "),
        (["--payload", "[1,"], "jobs create: --payload is not valid JSON: "),
        (["--json", "[1]", "--id", "x"], "jobs create: the body must be a JSON object"),
        (["--file", "/no/such/file.json"], "jobs create: cannot read /no/such/file.json: No such"),
    ],
)
def test_create_usage_errors_send_nothing(
    capsys: pytest.CaptureFixture[str], node: StubNode, argv: list[str], problem: str
) -> None:
    code, out, err = client(capsys, node, "jobs", "create", *argv)
    assert (code, out, node.requests) == (2, "", [])
    (line,) = err.splitlines()
    assert line.startswith("scheduled-db: " + problem)


def test_a_rejected_create_prints_the_servers_error(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    error = {"error": "validation_error", "message": "type: is required", "field": "type"}
    node.answer("POST", "/jobs", 400, error)
    code, out, err = client(capsys, node, "jobs", "create", "--id", "x")
    assert (code, out) == (1, "")
    assert json.loads(err) == error


ODD = {"id": "a:b/c", "type": "unico", "status": "pending"}
ATTEMPT = {"attempt_num": 1, "status": "failed", "http_status": 500}


@pytest.mark.parametrize(
    ("action", "method", "path", "body"),
    [
        ("get", "GET", "/jobs/a%3Ab%2Fc", ODD),
        ("status", "GET", "/jobs/a%3Ab%2Fc/status", {"job_id": "a:b/c", "status": "pending"}),
        (
            "executions",
            "GET",
            "/jobs/a%3Ab%2Fc/executions",
            {"job_id": "a:b/c", "attempts": [ATTEMPT]},
        ),
    ],
)
def test_one_job_requests(
    capsys: pytest.CaptureFixture[str],
    node: StubNode,
    action: str,
    method: str,
    path: str,
    body: dict[str, object],
) -> None:
    node.answer(method, path, 200, body)
    code, out, _ = client(capsys, node, "jobs", action, "a:b/c")
    assert (code, json.loads(out)) == (0, body)
    assert [(r.method, r.path, r.body) for r in node.requests] == [(method, path, None)]


def test_delete_prints_the_job_it_deleted(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    node.answer("GET", "/jobs/job-1", 200, JOB)
    node.answer("DELETE", "/jobs/job-1", 204)
    assert client(capsys, node, "jobs", "delete", "job-1") == (
        0,
        json.dumps(JOB, indent=2) + "\n",
        "",
    )
    assert [r.method for r in node.requests] == ["GET", "DELETE"]


def test_delete_says_what_it_deleted_when_the_job_cannot_be_read(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    node.answer("GET", "/jobs/job-1", 503, {"error": "busy"})
    node.answer("DELETE", "/jobs/job-1", 204)
    assert client(capsys, node, "jobs", "delete", "job-1") == (0, "deleted job-1\n", "")


def test_delete_of_an_unknown_job_exits_1(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    code, out, err = client(capsys, node, "jobs", "delete", "ghost")
    assert (code, out) == (1, "") and json.loads(err)["error"] == "not_found"
    assert [r.method for r in node.requests] == ["GET", "DELETE"]


def test_the_output_closed_early_ends_quietly(node: StubNode) -> None:
    """``scheduled-db jobs list | head``: the reader goes away; no traceback."""
    node.answer("GET", "/jobs", 200, {"jobs": [JOB] * 200, "next_cursor": None})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEDULED_DB_URL": node.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduled_db", "jobs", "list"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as head does once it has its lines
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(30) == 141
    assert err == b""


def test_get_of_an_unknown_job_exits_1(capsys: pytest.CaptureFixture[str], node: StubNode) -> None:
    code, out, err = client(capsys, node, "jobs", "get", "ghost")
    assert (code, out) == (1, "")
    assert json.loads(err) == {"error": "not_found", "message": "no route"}


@pytest.mark.parametrize(
    ("extra", "body"),
    [(["--reason", "no longer needed"], {"reason": "no longer needed"}), ([], {})],
)
def test_cancel(
    capsys: pytest.CaptureFixture[str], node: StubNode, extra: list[str], body: dict[str, str]
) -> None:
    cancelled = {"job_id": "job-1", "status": "cancelled", "cancelled_at": 1900000000}
    node.answer("POST", "/jobs/job-1/cancel", 200, cancelled)
    code, out, _ = client(capsys, node, "jobs", "cancel", "job-1", *extra)
    assert (code, json.loads(out)["status"]) == (0, "cancelled")
    assert node.requests == [Seen("POST", "/jobs/job-1/cancel", body, "application/json")]


def test_list_passes_its_filters(capsys: pytest.CaptureFixture[str], node: StubNode) -> None:
    page = {"jobs": [JOB], "next_cursor": "c2"}
    node.answer("GET", "/jobs?status=pending&limit=1&cursor=c1", 200, page)
    argv = ["--status", "pending", "--limit", "1", "--cursor", "c1"]
    code, out, _ = client(capsys, node, "jobs", "list", *argv)
    assert (code, json.loads(out)) == (0, page)


def test_list_all_follows_next_cursor(capsys: pytest.CaptureFixture[str], node: StubNode) -> None:
    a, b, c = ({**JOB, "id": name} for name in "abc")
    node.answer("GET", "/jobs?limit=2", 200, {"jobs": [a, b], "next_cursor": "Yg"})
    last = {"jobs": [c], "total": 3, "next_cursor": None}
    node.answer("GET", "/jobs?limit=2&cursor=Yg", 200, last)
    code, out, _ = client(capsys, node, "jobs", "list", "--all", "--limit", "2")
    assert code == 0
    all_jobs = [a, b, c]
    assert json.loads(out) == {"jobs": all_jobs, "total": 3, "next_cursor": None}
    assert [r.path for r in node.requests] == ["/jobs?limit=2", "/jobs?limit=2&cursor=Yg"]


def test_list_all_stops_on_a_repeated_cursor(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    node.answer("GET", "/jobs", 200, {"jobs": [], "next_cursor": "again"})
    node.answer("GET", "/jobs?cursor=again", 200, {"jobs": [], "next_cursor": "again"})
    code, out, err = client(capsys, node, "jobs", "list", "--all")
    assert (code, out) == (1, "")
    assert err == "scheduled-db: jobs list: the server repeated the cursor 'again'\n"


def test_list_all_reports_an_error_page(capsys: pytest.CaptureFixture[str], node: StubNode) -> None:
    node.answer("GET", "/jobs", 200, {"jobs": [JOB], "next_cursor": "bad"})
    node.answer("GET", "/jobs?cursor=bad", 400, {"error": "validation_error"})
    code, out, err = client(capsys, node, "jobs", "list", "--all")
    assert (code, out, json.loads(err)) == (1, "", {"error": "validation_error"})


CLUSTER = {"node_id": "node-1", "role": "leader", "members": []}


@pytest.mark.parametrize(
    ("command", "path", "body"),
    [
        ("health", "/health", {"status": "ok"}),
        ("livez", "/livez", {"status": "ok"}),
        ("cluster-status", "/debug/cluster", CLUSTER),
    ],
)
def test_health_and_cluster_status(
    capsys: pytest.CaptureFixture[str],
    node: StubNode,
    command: str,
    path: str,
    body: dict[str, object],
) -> None:
    node.answer("GET", path, 200, body)
    code, out, _ = client(capsys, node, command)
    assert (code, json.loads(out), node.requests[0].path) == (0, body, path)


def test_health_exits_1_when_the_node_is_unhealthy(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    unhealthy = {"status": "unhealthy", "error": "Unhealthy: no leader", "code": "unhealthy"}
    node.answer("GET", "/health", 503, unhealthy)
    code, out, err = client(capsys, node, "health")
    assert (code, out, json.loads(err)) == (1, "", unhealthy)


def test_an_error_that_is_not_json_is_one_line(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    node.answer("GET", "/health", 502, b"<html>\n<h1>Bad Gateway</h1>\n</html>")
    code, _, err = client(capsys, node, "health")
    assert (code, err) == (
        1,
        "scheduled-db: HTTP 502 Bad Gateway: <html> <h1>Bad Gateway</h1> </html>\n",
    )


def test_the_url_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    node.answer("GET", "/health", 200, {"status": "healthy"})
    code, _, _ = run_cli(capsys, "health", env={"SCHEDULED_DB_URL": node.url + "/"})
    assert (code, node.requests[0].path) == (0, "/health")


def test_a_url_that_is_not_http(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "health", "--url", "localhost:8080")
    assert (code, err) == (
        2,
        "scheduled-db: --url must be an http:// or https:// URL (got 'localhost:8080')\n",
    )


def test_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # A bound socket that does not listen: connecting to its port is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        code, out, err = run_cli(capsys, "jobs", "get", "job-1", "--url", url)
    assert (code, out) == (2, "")
    assert err == f"scheduled-db: cannot reach {url}: connection refused\n"


def test_a_server_that_does_not_answer_in_time(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    node.answer("GET", "/health", 200, "hang")
    code, _, err = client(capsys, node, "health", "--timeout", "0.05")
    assert (code, err) == (2, f"scheduled-db: cannot reach {node.url}: no answer within 0.05s\n")


def test_the_api_token_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], node: StubNode
) -> None:
    node.answer("GET", "/jobs/job-1", 200, JOB)
    code, out, _ = run_cli(capsys, "jobs", "get", "job-1", "--url", node.url)
    assert code == 0 and node.requests[-1].authorization is None
    env = {"SCHEDULED_DB_TOKEN": "s3cret-token"}
    code, out, _ = run_cli(capsys, "jobs", "get", "job-1", "--url", node.url, env=env)
    assert code == 0 and node.requests[-1].authorization == "Bearer s3cret-token"
    assert "s3cret-token" not in out
