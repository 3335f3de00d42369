"""Job ids as the original takes them: any text of 1 to 256 characters but "/" and
control characters, percent-encoded as one path segment.  Through a real node's
HTTP, through a follower that forwards the writes to the leader, and through the
command line; every wait is a bounded poll of a condition."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from scheduled_db.cli.main import main as cli_main
from scheduled_db.testing.harness import NodeProcess, wait_leader, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import ClusterNode, job, running_cluster

# Each would be refused before (letters, digits and . _ : - only); the last is the
# longest id there is: 256 characters of 4 bytes of UTF-8 each.
ODD_IDS = [
    "job 1",
    "tarea-año",
    "user@x.com",
    "100%",
    "why?",
    "#7",
    "a+b",
    "任务 ✓",
    " padded ",
    "\U0001f600" * 256,
]
REFUSED_IDS = ["", "x" * 257, "a/b", "/", "line\nbreak", "nul\x00", "tab\t", "del\x7f", "ls\u2028"]


def path(job_id: str, suffix: str = "") -> str:
    return "/jobs/" + quote(job_id, safe="") + suffix


def later() -> float:
    return time.time() + 3600


def cli(*argv: str) -> tuple[int, Any]:
    """Run the command line in this process: (exit code, its JSON output or None)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(list(argv), {})
    text = out.getvalue()
    return code, json.loads(text) if text.strip() else None


def test_odd_ids_are_created_read_listed_cancelled_and_deleted(node: NodeProcess) -> None:
    for job_id in ODD_IDS:
        status, _, body = node.http.call("POST", "/jobs", job(job_id, later()))
        assert status == 200 and body["id"] == job_id, (job_id, body)
        assert node.http.call("GET", path(job_id))[2]["id"] == job_id
        assert node.http.call("GET", path(job_id, "/status"))[2]["job_id"] == job_id
        assert node.http.call("GET", path(job_id, "/executions"))[2]["job_id"] == job_id
    # Pages of two: a cursor after the 1,024-byte id is still one the server takes.
    listed: list[str] = []
    query = "/jobs?limit=2"
    while True:
        status, _, page = node.http.call("GET", query)
        assert status == 200, page
        listed += [j["id"] for j in page["jobs"]]
        if page["next_cursor"] is None:
            break
        query = f"/jobs?limit=2&cursor={page['next_cursor']}"
    assert sorted(listed) == sorted(ODD_IDS)
    for job_id in ODD_IDS:
        status, _, body = node.http.call("POST", path(job_id, "/cancel"), {"reason": job_id})
        assert status == 200 and body["job_id"] == job_id and body["reason"] == job_id
        assert node.http.call("DELETE", path(job_id))[0] == 204
        assert node.http.call("GET", path(job_id))[0] == 404


@pytest.mark.parametrize("job_id", REFUSED_IDS)
def test_ids_no_job_can_have_are_refused_400_naming_id(node: NodeProcess, job_id: str) -> None:
    status, _, body = node.http.call("POST", "/jobs", job(job_id, later()))
    assert status == 400 and body["field"] == "id" and body["error"].startswith("id: "), body
    if job_id:  # the same text in a path names no job
        assert node.http.call("GET", path(job_id))[0] == 404


def test_a_delivery_names_an_odd_id_in_its_body_and_ascii_in_its_key(
    node: NodeProcess, receiver: Receiver
) -> None:
    job_id = "tarea año 100%"
    at = round(time.time() + 1.5, 3)
    assert node.http.call("POST", "/jobs", job(job_id, at, receiver.url("/ok")))[0] == 200
    receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=15)
    (got,) = receiver.received("/ok")
    assert json.loads(got.body)["job_id"] == job_id
    # A header carries ASCII: the id is percent-encoded there, and only there.
    assert got.headers["Idempotency-Key"] == f"tarea%20a%C3%B1o%20100%25:{round(at * 1000)}"


def test_the_command_line_encodes_ids_in_paths(node: NodeProcess) -> None:
    for job_id in ("tarea-año", "a b?c#d", "100%"):
        body = json.dumps(job(job_id, later()))
        assert cli("jobs", "create", "--url", node.base, "--json", body)[0] == 0
        code, shown = cli("jobs", "get", job_id, "--url", node.base)
        assert code == 0 and shown["id"] == job_id
        code, shown = cli("jobs", "cancel", job_id, "--reason", "done", "--url", node.base)
        assert code == 0 and shown["reason"] == "done"
        code, shown = cli("jobs", "status", job_id, "--url", node.base)
        assert code == 0 and shown["cancellation_reason"] == "done"


def test_a_follower_forwards_writes_on_odd_ids_to_the_leader(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as nodes:
        leader = wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        for job_id in ODD_IDS:
            status, _, body = follower.http.call("POST", "/jobs", job(job_id, later()))
            assert status == 200 and body["id"] == job_id, (job_id, body)
        wait_everywhere(nodes, lambda n, i: n.http.call("GET", path(i))[0] == 200, "the creates")
        for job_id in ODD_IDS:  # the encoded path reaches the leader as the same id
            status, _, body = follower.http.call("POST", path(job_id, "/cancel"), {"reason": "r"})
            assert status == 200 and body["job_id"] == job_id, (job_id, body)

        def cancelled(n: ClusterNode, job_id: str) -> bool:
            shown = n.http.call("GET", path(job_id, "/status"))[2]
            return bool(shown["status"] == "cancelled" and shown["cancellation_reason"] == "r")

        wait_everywhere(nodes, cancelled, "the cancels")
        for job_id in ODD_IDS:
            assert follower.http.call("DELETE", path(job_id))[0] == 204
        wait_everywhere(nodes, lambda n, i: n.http.call("GET", path(i))[0] == 404, "the deletes")


def wait_everywhere(nodes: list[ClusterNode], done: Any, what: str) -> None:
    for n in nodes:
        for job_id in ODD_IDS:
            wait_until(lambda n=n, i=job_id: done(n, i), 10, f"{what} on {n.node_id}")
