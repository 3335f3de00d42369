"""The Raft metrics the alert rules (deploy/prometheus/alerts.yml) read, on three
real node processes: who the leader hears from, leaders elected, applied index.

Waits are bounded polls of a condition; values are read from each node's /metrics.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.integration.cluster import FAILOVER_BOUND_S, ClusterNode, job, running_cluster

CONTACT = "scheduled_db_raft_peer_last_contact_seconds"
ELECTED = "scheduled_db_raft_leader_changes_total"
LOST_S = 2.0  # followers answer every heartbeat (100 ms): 2 s without a word is lost


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[ClusterNode]]:
    with running_cluster(tmp_path) as nodes:
        yield nodes


def samples(node: ClusterNode) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the node's /metrics."""
    status, _, text = node.http.call("GET", "/metrics")
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def contact(node: ClusterNode) -> dict[str, float]:
    """The peers ``node`` reports a last contact for, and its age in seconds."""
    found = samples(node).items()
    return {dict(labels)["peer"]: v for (name, labels), v in found if name == CONTACT}


def value(node: ClusterNode, name: str) -> float:
    return samples(node)[(name, ())]


def knows_leader(node: ClusterNode, leader: ClusterNode) -> bool:
    return node.health().get("leader_id") == leader.node_id


def test_the_leader_reports_when_it_last_heard_from_each_member_and_applied_indexes(
    cluster: list[ClusterNode],
) -> None:
    leader = wait_leader(cluster)
    followers = [n for n in cluster if n is not leader]
    for i in range(5):
        assert leader.http.call("POST", "/jobs", job(f"j{i}", time.time() + 3600))[0] == 200
    heard = contact(leader)
    assert set(heard) == {n.node_id for n in followers}, heard
    assert all(0 <= age < LOST_S for age in heard.values()), heard
    for n in followers:  # a follower hears from the leader only: it reports nobody
        assert contact(n) == {}
    for n in cluster:  # the storage's applied index catches up with the commit index
        wait_until(
            lambda n=n: (
                value(n, "scheduled_db_raft_applied_index")
                == value(n, "scheduled_db_raft_commit_index")
                >= 6  # the bootstrap, the leader's no-op and five creates
            ),
            10,
            f"{n.node_id} to apply what it committed",
        )


def test_a_failover_counts_one_election_and_the_new_leader_misses_the_old_one(
    cluster: list[ClusterNode],
) -> None:
    old = wait_leader(cluster)
    rest = [n for n in cluster if n is not old]
    for n in cluster:
        wait_until(lambda n=n: knows_leader(n, old), 10, f"{n.node_id} to know the leader")
    before = {n.node_id: value(n, ELECTED) for n in rest}
    assert all(count >= 1 for count in before.values()), before  # the first election

    old.stop(signal.SIGKILL)
    new = wait_leader(rest, FAILOVER_BOUND_S)
    for n in rest:
        wait_until(lambda n=n: knows_leader(n, new), 10, f"{n.node_id} to know the new leader")
        # Losing the old leader is not an election: one failover counts once.
        assert value(n, ELECTED) == before[n.node_id] + 1, n.node_id

    (other,) = [n for n in rest if n is not new]
    wait_until(
        lambda: contact(new).get(old.node_id, 0.0) > LOST_S,
        FAILOVER_BOUND_S,
        f"{new.node_id} to report {old.node_id} out of contact",
    )
    assert contact(new)[other.node_id] < LOST_S
