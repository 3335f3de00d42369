"""A three-node cluster of real processes under faults: nodes started one by one in
any order, the leader SIGKILLed under load, the leader cut off by a partition, and
every node restarted at once.

Raft traffic goes over real TCP (through a proxy mesh where a test partitions the
network), webhooks to a real local receiver.  Every wait is a bounded poll of a
condition; measured times are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import FAILOVER_BOUND_S, ClusterNode, job, running_cluster
from tests.integration.cluster_faults_harness import (
    CreateStream,
    digest,
    expected_key,
    has_job,
    keys_by_job,
    mesh,
    new_nodes,
    post,
    start_together,
    status_of,
    stopped_after,
    timed_post,
    wait_converged,
    wait_write_served,
    wire,
)
from tests.integration.partitioner import Partitioner

CONVERGE_S = 30.0  # replicas reach equal digests within this, once writes stop
ELECTION_TIMEOUT_S = 1.0  # the nodes' default raft.election_timeout
# CheckQuorum: a cut-off leader steps down one election timeout after it last heard
# from a majority (measured 0.96-1.00 s); the slack is for a loaded machine.
STEP_DOWN_BOUND_S = ELECTION_TIMEOUT_S + 1.0
CLAIM_AHEAD_S = 0.3  # scheduler.claim_ahead of the partition test's nodes
SHORT_CLAIM_AHEAD = ("--scheduler-claim-ahead", "300ms")
# Dues of the partition test's jobs after the cut: the first while the cut-off
# leader still leads, the last well after it has stepped down.
DUE_AFTER_CUT_S = (0.6, 1.0, 2.5, 4.0)
OK = (200, 201)


def wait_everywhere(nodes: list[ClusterNode], job_id: str, present: bool, timeout: float) -> None:
    wait_until(
        lambda: all(has_job(n, job_id) is present for n in nodes),
        timeout,
        f"{job_id} to be {'present' if present else 'absent'} on every node",
    )


def wait_status(node: ClusterNode, job_id: str, status: str, timeout: float) -> None:
    wait_until(lambda: status_of(node, job_id) == status, timeout, f"{job_id} to be {status}")


def assert_one_key_per_job(receiver: Receiver, due: dict[str, float]) -> None:
    """Every delivery of a job carries the key of its one occurrence (and the key of
    its due time, for the jobs in ``due``); repeats of a key are the at-least-once
    duplicates a failover may cause."""
    dupes = 0
    for job_id, got in keys_by_job(receiver, "/ok").items():
        assert len(set(got)) == 1, f"{job_id} delivered under different keys: {got}"
        if job_id in due:
            assert got[0] == expected_key(job_id, due[job_id]), got
        dupes += len(got) - 1
    print(f"{dupes} duplicate deliveries (same key)")


# --- 1. formation -------------------------------------------------------------------------


@pytest.mark.parametrize("order", [(3, 1, 2), (2, 3, 1)], ids=["3-1-2", "2-3-1"])
def test_nodes_started_one_by_one_in_any_order_form_one_cluster(
    tmp_path: Path, order: tuple[int, int, int]
) -> None:
    nodes = new_nodes(tmp_path)
    wire(nodes)
    with stopped_after(nodes):
        started = time.monotonic()
        for i in order:  # the next one starts once the last one serves /health
            nodes[i - 1].start()
        leader = wait_leader(nodes)
        print(f"order {order}: leader {leader.node_id} {time.monotonic() - started:.2f} s after")

        assert sorted(n.health()["role"] for n in nodes) == ["follower", "follower", "leader"]
        for n in nodes:  # every node sees the same three voters
            members = n.http.call("GET", "/debug/cluster")[2]["members"]
            assert {(s["node_id"], s["suffrage"]) for s in members} == {
                (f"node-{i}", "voter") for i in (1, 2, 3)
            }
        followers = [n for n in nodes if n is not leader]
        for f in followers:  # each follower forwards a write to the leader
            status, body = post(f, job(f"via-{f.node_id}", time.time() + 3600))
            assert status in OK and body["id"] == f"via-{f.node_id}", body
            assert has_job(leader, f"via-{f.node_id}") is True  # acknowledged = applied there
        for f in followers:
            wait_everywhere(nodes, f"via-{f.node_id}", True, 10)
        for n in nodes:
            assert n.http.call("GET", "/jobs?limit=10")[2]["total"] == 2
        wait_converged(nodes, CONVERGE_S)


# --- 2. the leader killed under load ------------------------------------------------------


@dataclass(frozen=True)
class Failover:
    """What a SIGKILL of the leader under a stream of creates came to."""

    old: ClusterNode  # the leader killed
    new: ClusterNode  # the first node to acknowledge a write after the kill
    gap_s: float  # kill -> that acknowledgement
    window: tuple[float, float]  # the same interval in epoch seconds


def test_the_leader_killed_under_a_stream_of_creates_loses_no_acknowledged_job(
    tmp_path: Path, receiver: Receiver
) -> None:
    with running_cluster(tmp_path) as nodes:
        wait_leader(nodes)
        stream = CreateStream(nodes, receiver.url("/ok"), due_in=3.0).start()
        try:
            failover = _kill_the_leader_mid_stream(nodes, stream)
        finally:
            stream.stop()
        old = failover.old
        rest = [n for n in nodes if n is not old]
        creates, acked = stream.creates(), stream.acked()
        refused = Counter((c.status, c.code) for c in creates if not c.acked)
        print(
            f"failover: {failover.new.node_id} acknowledged a write {failover.gap_s:.2f} s "
            f"after the SIGKILL; {len(acked)}/{len(creates)} creates acknowledged, "
            f"the others answered {dict(refused)}"
        )
        assert failover.gap_s < FAILOVER_BOUND_S

        leader = wait_leader(rest)
        missing = [c.job_id for c in acked if has_job(leader, c.job_id) is not True]
        assert not missing, f"acknowledged but lost: {missing[:20]} ({len(missing)})"

        due = {c.job_id: c.due for c in acked if c.due is not None}
        start, end = failover.window
        in_failover = [j for j, at in due.items() if start <= at <= end]
        assert in_failover, "no acknowledged job fell due during the failover"
        receiver.wait_until(lambda r: set(due) <= set(keys_by_job(r, "/ok")), timeout=30)
        assert_one_key_per_job(receiver, due)
        print(f"{len(in_failover)} jobs due during the failover; all {len(due)} delivered")

        old.start()
        wait_converged(nodes, CONVERGE_S)
        wait_leader(nodes)


def _kill_the_leader_mid_stream(nodes: list[ClusterNode], stream: CreateStream) -> Failover:
    # Kill once the first acknowledged job has fallen due: from then on, jobs fall
    # due continuously, so some do while there is no leader.
    wait_until(lambda: _first_due(stream) <= time.time() - 0.2, 20, "the first job due")
    # The leader of this moment: on a starved machine a heartbeat can come late
    # enough for a follower to have taken over since the stream began.
    old = wait_leader(nodes, FAILOVER_BOUND_S)
    rest = [n for n in nodes if n is not old]
    killed_at, killed_epoch = time.monotonic(), time.time()
    old.stop(signal.SIGKILL)
    new = wait_write_served(rest, FAILOVER_BOUND_S + 5, "probe")
    failover = Failover(old, new, time.monotonic() - killed_at, (killed_epoch, time.time()))
    acked = len(stream.acked())
    wait_until(lambda: len(stream.acked()) >= acked + 30, 20, "the stream to go on")
    return failover


def _first_due(stream: CreateStream) -> float:
    return min((c.due for c in stream.acked() if c.due is not None), default=float("inf"))


# --- 3. a partition isolates the leader ---------------------------------------------------


def test_an_isolated_leader_steps_down_and_only_the_majority_commits_and_fires(
    tmp_path: Path, receiver: Receiver
) -> None:
    nodes = new_nodes(tmp_path, extra=SHORT_CLAIM_AHEAD)
    with mesh(nodes) as net, stopped_after(nodes), ThreadPoolExecutor(3) as pool:
        wire(nodes, net)
        start_together(nodes)
        old = wait_leader(nodes)
        majority = [n for n in nodes if n is not old]
        cut_epoch, dues = _jobs_due_after_a_cut(old, nodes, receiver)

        # A moment in time, not a settle delay: the jobs' dues are set relative to it.
        wait_until(lambda: time.time() >= cut_epoch, 5, "the moment to cut")
        cut_at = time.monotonic()
        net.isolate(old.node_id)
        assert time.time() < min(dues.values()) - CLAIM_AHEAD_S - 0.1, "cut too late"
        early = pool.submit(timed_post, old, job("lost-early", time.time() + 3600))
        elected = pool.submit(_timed_wait_leader, majority, cut_at)
        wait_until(lambda: old.health().get("role") != "leader", STEP_DOWN_BOUND_S, "step down")
        stepped = time.monotonic() - cut_at
        late = pool.submit(timed_post, old, job("lost-late", time.time() + 3600))
        new, took = elected.result(FAILOVER_BOUND_S + 5)
        print(
            f"partition: {old.node_id} stepped down {stepped:.2f} s after the cut, "
            f"{new.node_id} led the majority {took:.2f} s after it"
        )
        for n in majority:  # the majority serves writes, forwarded or not
            status, body = post(n, job(f"major-{n.node_id}", time.time() + 3600))
            assert status in OK, body
        _assert_never_acknowledged(early, late)

        receiver.wait_until(lambda r: set(dues) <= set(keys_by_job(r, "/ok")), timeout=30)
        _assert_fired_by_the_majority(receiver, new, dues, majority)
        for job_id in dues:  # the isolated node never learnt of a claim or a run
            assert status_of(old, job_id) == "pending"
        assert digest(old) != digest(new)
        _heal_and_converge(net, nodes)
        for n in nodes:
            assert has_job(n, "lost-early") is False and has_job(n, "lost-late") is False
            assert all(has_job(n, f"major-{m.node_id}") for m in majority)
        assert_one_key_per_job(receiver, dues)


def _jobs_due_after_a_cut(
    leader: ClusterNode, nodes: list[ClusterNode], receiver: Receiver
) -> tuple[float, dict[str, float]]:
    """A moment to cut the network at, and jobs (id -> due), on every node, falling
    due after it (see DUE_AFTER_CUT_S), each to be claimed only after the cut."""
    cut = time.time() + 2.0
    dues = {f"p{k}": round(cut + dt, 3) for k, dt in enumerate(DUE_AFTER_CUT_S)}
    for job_id, at in dues.items():
        status, body = post(leader, job(job_id, at, receiver.url("/ok")))
        assert status in OK, body
    for job_id in dues:
        wait_everywhere(nodes, job_id, True, 10)
    assert time.time() < cut, "too slow to set the jobs up before the cut"
    return cut, dues


def _timed_wait_leader(nodes: list[ClusterNode], since: float) -> tuple[ClusterNode, float]:
    leader = wait_leader(nodes, FAILOVER_BOUND_S)
    return leader, time.monotonic() - since


Answer = tuple[int, Any, float]  # status, body, seconds


def _assert_never_acknowledged(early: Future[Answer], late: Future[Answer]) -> None:
    """Writes to the cut-off node: one sent at once (proposed while it may still
    lead: its outcome is unknown) and one after it stepped down (no leader to
    forward to: it waits for an election that never comes)."""
    (status, body, took), (late_status, late_body, waited) = early.result(30), late.result(30)
    print(
        f"writes to the isolated node: {status} {body} after {took:.2f} s, "
        f"{late_status} {late_body} after {waited:.2f} s"
    )
    assert status == 503, body
    assert late_status == 503 and late_body["error"] == "No leader available", late_body
    assert 2.0 <= waited < 15.0


def _assert_fired_by_the_majority(
    receiver: Receiver, leader: ClusterNode, dues: dict[str, float], majority: list[ClusterNode]
) -> None:
    """Every delivery came in a term of the majority; each due job was delivered
    under its one key and completed, every attempt by a node of the majority."""
    term = leader.http.call("GET", "/debug/cluster")[2]["term"]
    for r in receiver.received("/ok"):
        assert int(r.headers["X-Scheduled-DB-Term"]) >= term, dict(r.headers)
    ids = {n.node_id for n in majority}
    for job_id, at in dues.items():
        assert set(keys_by_job(receiver, "/ok")[job_id]) == {expected_key(job_id, at)}
        wait_status(leader, job_id, "completed", 15)
        attempts = leader.http.call("GET", f"/jobs/{job_id}/executions")[2]["attempts"]
        assert attempts and {a["node_id"] for a in attempts} <= ids, attempts


def _heal_and_converge(net: Partitioner, nodes: list[ClusterNode]) -> None:
    net.heal()
    healed = time.monotonic()
    wait_converged(nodes, CONVERGE_S)
    print(f"healed: digests equal {time.monotonic() - healed:.2f} s after the heal")
    wait_leader(nodes)


# --- 4. every node restarted at once ------------------------------------------------------


def test_all_nodes_restarted_at_once_keep_every_acknowledged_write(
    tmp_path: Path, receiver: Receiver
) -> None:
    with running_cluster(tmp_path) as nodes:
        wait_leader(nodes)
        rng = random.Random(4)
        kept = [f"keep-{i}" for i in range(30)]
        for job_id in kept:  # to random nodes: most are forwarded
            status, body = post(rng.choice(nodes), job(job_id, time.time() + 3600))
            assert status in OK, body
        gone, kept = kept[:5], kept[5:]
        for job_id in gone:
            status = rng.choice(nodes).http.call("DELETE", f"/jobs/{job_id}")[0]
            assert status in (200, 204)
        at = round(time.time() + 3, 3)  # due while the cluster is down or coming back
        status, body = post(rng.choice(nodes), job("outage", at, receiver.url("/ok")))
        assert status in OK, body

        _stop_all_at_once(nodes)
        down = time.monotonic()
        print(
            f"the outage job was due {at - time.time():.2f} s after all stopped, "
            f"{len(receiver.received('/ok'))} deliveries before"
        )
        start_together(nodes)
        leader = wait_leader(nodes)
        print(f"restart: {leader.node_id} leads {time.monotonic() - down:.2f} s after all stopped")

        for n in nodes:  # "outage" was the last write
            wait_everywhere([n], "outage", True, 10)
            assert all(has_job(n, j) is True for j in kept), n.node_id
            assert all(has_job(n, j) is False for j in gone), n.node_id
        receiver.wait_until(lambda r: "outage" in keys_by_job(r, "/ok"), timeout=30)
        assert_one_key_per_job(receiver, {"outage": at})
        wait_status(leader, "outage", "completed", 15)
        wait_converged(nodes, CONVERGE_S)


def _stop_all_at_once(nodes: list[ClusterNode]) -> None:
    procs = [n.proc for n in nodes if n.proc is not None]
    for p in procs:  # every one signalled before any is waited for
        p.send_signal(signal.SIGTERM)
    assert [p.wait(30) for p in procs] == [0] * len(nodes)
