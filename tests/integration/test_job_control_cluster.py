"""The job control surface on a real three-node cluster with API tokens: every new
endpoint through a follower (writes forwarded to the leader, reads answered
locally), with the roles it needs: write for changes, read for the lists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.policy.auth import token_digest
from scheduled_db.testing.harness import NodeProcess, join, running, wait_leader, wait_until
from tests.integration.cluster import SECRET

READ, WRITE = "reader-token-0123456789", "writer-token-0123456789"
TOKENS = f"reader:{token_digest(READ)}:read,writer:{token_digest(WRITE)}:write"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    nodes = [
        NodeProcess(
            tmp_path / f"n{i}" / "data", f"node-{i}", CLUSTER_SECRET=SECRET, API_TOKENS=TOKENS
        )
        for i in (1, 2, 3)
    ]
    join(nodes)
    with running(nodes) as started:
        yield started


def _call(node: NodeProcess, token: str, method: str, path: str, body: Any = None) -> Any:
    return node.call(method, path, body, headers={"Authorization": f"Bearer {token}"})


def test_every_new_endpoint_works_through_a_follower_with_the_role_it_needs(
    cluster: list[NodeProcess],
) -> None:
    leader = wait_leader(cluster)
    follower = next(n for n in cluster if n is not leader)
    at = int(time.time()) + 3600
    batch = {"jobs": [{"id": f"b{i}", "type": "unico", "timestamp": at} for i in range(3)]}
    batch["jobs"][0]["labels"] = {"team": "billing"}
    writes: list[tuple[str, str, Any]] = [
        ("POST", "/jobs/batch", batch),
        ("PATCH", "/jobs/b1", {"labels": {"team": "billing"}}),
        ("POST", "/jobs/b2/pause", None),
        ("POST", "/jobs/b2/resume", None),
    ]
    for method, path, body in writes:
        status, answer = _call(follower, READ, method, path, body)
        assert (status, answer["code"]) == (403, "forbidden"), (method, path)
        status, answer = _call(follower, WRITE, method, path, body)
        assert status == 200, (method, path, answer)
    # Reads are the follower's own (after it has applied the writes above).
    reads = [
        "/jobs?label=team=billing&consistent=true",
        "/jobs/b2/upcoming?consistent=true",
        "/executions?consistent=true",
    ]
    for path in reads:
        assert _call(follower, "wrong-token", "GET", path)[0] == 401
        status, answer = _call(follower, READ, "GET", path)
        assert status == 200, (path, answer)
    labelled = _call(follower, READ, "GET", reads[0])[1]
    assert [j["id"] for j in labelled["jobs"]] == ["b0", "b1"]
    upcoming = _call(follower, READ, "GET", reads[1])[1]
    assert [r["at"] for r in upcoming["runs"]] == [at]
    job = _call(follower, READ, "GET", "/jobs/b2?consistent=true")[1]
    assert (job["paused"], job["version"]) == (False, 3)  # paused, then resumed

    # Every replica holds the same jobs, labels and versions (replicated through Raft).
    def agreed() -> bool:
        views = [_call(n, READ, "GET", "/jobs/b1")[1] for n in cluster]
        return all(v.get("labels") == {"team": "billing"} and v["version"] == 2 for v in views)

    wait_until(agreed, 10, "the update to reach every replica")
    # A stale If-Match through a follower: the leader's 412 comes back as it is.
    status, answer = follower.call(
        "PATCH",
        "/jobs/b1",
        {"payload": {"a": 1}},
        headers={"Authorization": f"Bearer {WRITE}", "If-Match": "1"},
    )
    assert (status, answer["code"], answer["version"]) == (412, "version_mismatch", 2)
