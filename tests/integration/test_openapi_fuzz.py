"""Schemathesis against a live node, driven by docs/openapi.yaml.

A real ``scheduled-db run`` process (scheduled_db/testing/harness.py) with one API
token of role ``write`` gets requests generated from the description: its examples,
schemathesis' coverage cases (boundaries, missing and mistyped fields) and random
valid and invalid requests, then chains of linked calls (create a job, then read,
cancel and delete it).  Every reply must be no 5xx, have a documented status, media
type and headers, and a body matching its schema; no body may carry a traceback, a
file path of the checkout or the installation, or the node's Raft address.

Bounded and repeatable: a fixed number of examples per operation, derandomised
generation (the same requests on every run) and no example database.

Generated jobs must not call random hosts: a webhook URL the node would accept is
pointed at a local receiver before it is sent (path and query kept).  Membership
changes are refused (the token is not admin), so the node stays a cluster of one.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import hypothesis
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.validation import parse_job_spec
from scheduled_db.policy.auth import token_digest
from scheduled_db.testing.harness import ROOT, NodeProcess
from tests.actors.openapi_spec import DOCS_SPEC
from tests.actors.webhook_receiver import Receiver

TOKEN = "fuzz-token-of-role-write"
# Random requests per operation, on top of its examples and schemathesis' coverage
# cases.  With the linked calls: half a minute on an idle 2-core machine, about two
# on a loaded one (400 and 150 ran clean too, in 2.5 minutes).
MAX_EXAMPLES = 100
STATEFUL_EXAMPLES = 40
STATEFUL_STEPS = 8
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    # No shrinking: replays against a node whose state has moved on prove little,
    # and they would make the run's length depend on what it finds.
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    stateful_step_count=STATEFUL_STEPS,
    derandomize=True,
    database=None,
    deadline=None,  # a request's latency is the node's, not the generator's
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Live:
    node: NodeProcess
    receiver: Receiver
    leaks: tuple[str, ...]
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.node.http_port}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    receiver = Receiver().start()
    node = NodeProcess(data, API_TOKENS=f"fuzz:{token_digest(TOKEN)}:write", LOG_LEVEL="WARNING")
    try:
        node.start()
        paths = {str(ROOT), str(data.parent), sys.prefix, sys.base_prefix}
        leaks = ("Traceback", 'File "', "site-packages", *paths, f"127.0.0.1:{node.raft_port}")
        yield Live(node, receiver, leaks)
        assert node.proc is not None and node.proc.poll() is None, node.log()
        assert_webhooks_local(node, receiver)
    finally:
        node.stop_if_running()
        receiver.stop()


# Loaded at import (the file is local); where the node listens is known only once it
# runs, so each call names it.  Not schemathesis.pytest.from_fixture: 4.32 reaches
# into a pytest internal (Node._nodeid) that pytest 9.2 removed.
DESCRIBED_API = schemathesis.openapi.from_path(
    str(DOCS_SPEC),
    config=schemathesis.Config.from_dict(
        {
            "seed": 20260101,
            "generation": {
                "mode": "all",  # valid and invalid requests
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,  # the token is ours (AUTH)
            },
            # Every built-in check (no 5xx; documented statuses, media types, headers
            # and bodies; invalid requests refused; 405 with Allow for other methods;
            # auth enforced; a deleted job gone, a created one readable) but one: a
            # request valid by the schema may still be refused with 400 (a timestamp
            # in the past, a cron that never fires), which the schema cannot say.
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    ),
)


def local_webhook(case: Any, receiver: Receiver) -> None:
    """Point a webhook URL the node would accept at the receiver (same path and query):
    a generated job must never call a real host, whatever the SSRF policy."""
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("webhook_url"), str):
        return
    url = body["webhook_url"]
    probe = {"type": "recurrente", "cron_expression": "@hourly", "webhook_url": url}
    try:
        parse_job_spec(probe, int(time.time() * 1000), generated_id="probe")
    except ValidationError:
        return  # refused by the node: it is never called
    parts = urlsplit(url)
    local = urlunsplit(("http", f"127.0.0.1:{receiver.port}", parts.path, parts.query, ""))
    body["webhook_url"] = local


def assert_webhooks_local(node: NodeProcess, receiver: Receiver) -> None:
    """Every job the run left behind calls the receiver, or nothing."""
    cursor: str | None = ""
    while cursor is not None:
        status, _, page = node.http.call("GET", f"/jobs?limit=1000&cursor={cursor}", headers=AUTH)
        assert status == 200, page
        for job in page["jobs"]:
            url = job["webhook_url"]
            assert url is None or url.startswith(f"http://127.0.0.1:{receiver.port}"), job
        cursor = page["next_cursor"]


def check_no_leaks(live: Live, case: Any, response: Any) -> None:
    """No internals in any body: what the request itself carried may be echoed."""
    sent = repr((case.path_parameters, case.query, case.body))
    text = response.text
    if case.operation.path == "/debug/cluster":
        text = text.replace(f'"127.0.0.1:{live.node.raft_port}"', '"<raft address>"')
    for fragment in live.leaks:
        assert fragment not in text or fragment in sent, (fragment, text[:500])


def record(live: Live, case: Any, response: Any) -> None:
    live.seen[(case.operation.label, response.status_code)] += 1
    check_no_leaks(live, case, response)


def call_kwargs(live: Live) -> dict[str, Any]:
    return {"base_url": live.base_url, "headers": AUTH, "timeout": 30}


@pytest.mark.slow
@pytest.mark.timeout(120)
@DESCRIBED_API.parametrize()
@SETTINGS
def test_generated_requests_get_documented_answers(case: Any, live: Live) -> None:
    local_webhook(case, live.receiver)
    response = case.call(**call_kwargs(live))
    record(live, case, response)
    case.validate_response(response, headers=AUTH)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_linked_calls_get_documented_answers(live: Live) -> None:
    """Create jobs, then follow the description's links from each: read, status,
    executions, cancel, delete; answers checked as above (and a deleted job must be
    gone, a created one readable)."""
    failures: list[BaseException] = []

    class Machine(DESCRIBED_API.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            local_webhook(case, live.receiver)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return call_kwargs(live)

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            try:
                record(live, case, response)
                super().validate_response(response, case, *args, **kwargs)
            except Exception as exc:
                failures.append(exc)
                raise

    before = Counter(live.seen)
    try:
        Machine.run(settings=hypothesis.settings(SETTINGS, max_examples=STATEFUL_EXAMPLES))
    except hypothesis.errors.Flaky:
        # The node's state moves on between scenarios (jobs are created and deleted),
        # so Hypothesis may find a scenario drawn differently on replay, or a failure
        # gone; as schemathesis' own runner does, only a failure seen counts.
        if failures:
            raise failures[0] from None
    run = live.seen - before
    # The chains reached real jobs: some were created, and links led to them.
    assert run[("POST /jobs", 200)] > 0, run
    linked = ("GET /jobs/{id}", "GET /jobs/{id}/status", "DELETE /jobs/{id}")
    assert sum(n for (label, status), n in run.items() if label in linked and status < 300), run


def test_the_description_read_here_is_the_one_the_node_serves(live: Live) -> None:
    status, _, served = live.node.http.call("GET", "/openapi.json")
    assert status == 200 and served == yaml.safe_load(Path(DOCS_SPEC).read_text())
