"""SIGKILL the leader or a follower at random moments under a stream of creates,
round after round: every acknowledged create survives on every replica, and the
replicas end with equal state digests.

Three node processes; client threads create one-time jobs due in an hour (none
fires) against random live nodes, followers forwarding to the leader.  A create
counts as acknowledged only on a 2xx; a refusal, a timeout or a cut connection
leaves its outcome unknown (it may or may not exist), and the check allows both.

Each round a seeded RNG picks the victim (the leader or a follower, six of
each), the moment (a random number of further acknowledged creates), how long
it stays down (a random number of creates acknowledged by the other two), and
whether the next round waits for it to catch up or may kill again while it is
still catching up.  A second node is never killed while one is down: the
cluster keeps a majority, so writes go on throughout.

The seed is printed; ``CRASH_SAFETY_SEED=<n>`` replays a run's choices (the
timing of a real cluster still varies).  Node logs are under the test's
tmp_path (``--basetemp`` keeps them).
"""

from __future__ import annotations

import os
import random
import signal
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.integration.cluster import FAILOVER_BOUND_S, ClusterNode, running_cluster
from tests.integration.cluster_faults_harness import (
    Create,
    CreateStream,
    wait_converged,
    wait_serving,
)

pytestmark = pytest.mark.slow

SEED_ENV = "CRASH_SAFETY_SEED"
ROUNDS = 12
# A snapshot (and log compaction) every 150 applied entries, so kills land before,
# during and after them, and a node down long enough catches up by snapshot.
SNAPSHOTS = ("--raft-snapshot-threshold-entries", "150", "--raft-snapshot-keep-entries", "20")
ACKS_BEFORE_KILL = (1, 25)  # the random moment: this many more acknowledged creates
ACKS_WHILE_DOWN = (1, 20)  # acknowledged by the other two before the restart
OVERLAP = 0.25  # chance the next round does not wait for the restarted node to catch up
RESTART_S = 30.0  # a restarted process serves /health within this
CATCH_UP_S = 20.0
CONVERGE_S = 30.0
ANSWERS_OF_UNKNOWN_OUTCOME = (0, 503)  # no HTTP answer, or a refusal while leadership moved


@dataclass(frozen=True)
class Round:
    """What one kill and restart came to."""

    victim: str
    role: str  # what the victim was when killed: leader | follower
    acks_before: int  # acknowledged creates waited for before the kill
    acks_down: int  # acknowledged creates, sent after the kill, before the restart
    gap_s: float  # kill -> the first acknowledgement of a create sent after it
    healthy_s: float  # restart -> serving /health
    caught_up_s: float | None  # restart -> applied the leader's commit index; None: not awaited

    def line(self, number: int) -> str:
        caught = "not awaited" if self.caught_up_s is None else f"{self.caught_up_s:.2f} s"
        return (
            f"round {number:2}: {self.role:8} {self.victim} killed after {self.acks_before:2} "
            f"acks, {self.acks_down:2} acks while down (first {self.gap_s:.2f} s after the "
            f"kill); restarted: healthy {self.healthy_s:.2f} s, caught up {caught}"
        )


def test_acknowledged_creates_survive_random_sigkills_and_replicas_converge(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1_000_000))
    print(f"seed {seed} (replay the choices with {SEED_ENV}={seed})")
    rng = random.Random(seed)
    roles = ["leader", "follower"] * (ROUNDS // 2)
    rng.shuffle(roles)
    with running_cluster(tmp_path, extra=SNAPSHOTS) as nodes:
        wait_leader(nodes)
        stream = CreateStream(nodes, None, seed=seed).start()
        rounds: list[Round] = []
        try:
            for number, role in enumerate(roles, 1):
                rounds.append(_kill_and_restart(nodes, stream, rng, role))
                print(rounds[-1].line(number))
        finally:
            stream.stop()
        for n in nodes:  # the last one restarted may still be starting
            wait_serving(n, RESTART_S)
        _assert_all_running(nodes)
        stopped = time.monotonic()
        wait_converged(nodes, CONVERGE_S)
        converged_s = time.monotonic() - stopped
        _report(stream.creates(), rounds, converged_s)
        held = _assert_every_acknowledged_create_everywhere(nodes, stream.creates(), rng)
        unknown = {c.job_id for c in stream.creates() if not c.acked}
        print(f"{len(unknown & held)} of the {len(unknown)} creates of unknown outcome exist")


def _kill_and_restart(
    nodes: list[ClusterNode], stream: CreateStream, rng: random.Random, role: str
) -> Round:
    before, down = rng.randint(*ACKS_BEFORE_KILL), rng.randint(*ACKS_WHILE_DOWN)
    await_catch_up = rng.random() >= OVERLAP
    base = len(stream.acked())
    wait_until(lambda: len(stream.acked()) >= base + before, 20, f"{before} more acks")
    _assert_all_running(nodes)  # a majority stays up whoever is killed next
    leader = _leader(nodes)
    victim = leader if role == "leader" else rng.choice([n for n in nodes if n is not leader])

    killed = time.monotonic()
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_until(
        lambda: len(_acked_since(stream, killed)) >= down,
        FAILOVER_BOUND_S + 10,
        f"{down} creates acknowledged with {victim.node_id} ({role}) down",
    )
    gap = min(c.ended for c in _acked_since(stream, killed)) - killed

    restarted = time.monotonic()
    victim.start(wait=False)
    wait_serving(victim, RESTART_S)
    healthy = time.monotonic() - restarted
    caught: float | None = None
    if await_catch_up:
        _wait_caught_up(victim, nodes)
        caught = time.monotonic() - restarted
    return Round(victim.node_id, role, before, down, gap, healthy, caught)


def _leader(nodes: list[ClusterNode]) -> ClusterNode:
    """The leader all nodes agree on; failing that, the end of the log of a node
    that died, if one did."""
    try:
        return wait_leader(nodes, FAILOVER_BOUND_S)
    except AssertionError:
        _assert_all_running(nodes)
        raise


def _assert_all_running(nodes: list[ClusterNode]) -> None:
    for n in nodes:
        if n.proc is not None and n.proc.poll() is not None:
            lines = [ln for ln in n.log().splitlines() if " access: " not in ln]
            tail = "\n".join(lines[-60:])
            raise AssertionError(f"{n.node_id} exited ({n.proc.returncode}); its log ends:\n{tail}")


def _acked_since(stream: CreateStream, moment: float) -> list[Create]:
    return [c for c in stream.creates() if c.acked and c.started >= moment]


def _wait_caught_up(node: ClusterNode, nodes: list[ClusterNode]) -> None:
    """Wait until ``node`` has applied what the leader had committed when asked."""
    target = _raft_view(_leader(nodes))["commit_index"]
    wait_until(
        lambda: _raft_view(node).get("applied_index", -1) >= target,
        CATCH_UP_S,
        f"{node.node_id} to apply up to the leader's commit index {target}",
    )


def _raft_view(node: ClusterNode) -> dict[str, int]:
    status, _, body = node.http.call("GET", "/debug/cluster")
    return body if status == 200 and isinstance(body, dict) else {}


def _report(creates: list[Create], rounds: list[Round], converged_s: float) -> None:
    acked = sum(c.acked for c in creates)
    unknown = Counter((c.status, c.code) for c in creates if not c.acked)
    kills = Counter(r.role for r in rounds)
    catch_ups = [r.caught_up_s for r in rounds if r.caught_up_s is not None]
    print(
        f"{len(rounds)} rounds: {kills['leader']} leader kills, {kills['follower']} follower "
        f"kills; {acked} of {len(creates)} creates acknowledged, {sum(unknown.values())} of "
        f"unknown outcome {dict(unknown)}; caught up after a restart in at most "
        f"{max(catch_ups, default=0):.2f} s; digests equal {converged_s:.2f} s after the writes"
    )
    unexpected = {k: n for k, n in unknown.items() if k[0] not in ANSWERS_OF_UNKNOWN_OUTCOME}
    assert not unexpected, f"creates answered with neither a 2xx nor a 503: {unexpected}"


def _assert_every_acknowledged_create_everywhere(
    nodes: list[ClusterNode], creates: list[Create], rng: random.Random
) -> set[str]:
    """Each node lists every acknowledged job and nothing that was never sent, all
    three list the same jobs, and a linearizable GET finds acknowledged ones.
    Returns the ids the nodes hold."""
    acked = {c.job_id for c in creates if c.acked}
    sent = {c.job_id for c in creates}
    listed = {n.node_id: _list_all(n) for n in nodes}
    for node_id, (ids, total) in listed.items():
        missing = acked - ids
        assert not missing, f"{node_id} lost {len(missing)} acknowledged: {sorted(missing)[:20]}"
        assert ids <= sent, f"{node_id} holds jobs never sent: {sorted(ids - sent)[:20]}"
        assert total == len(ids), f"{node_id}: total {total}, listed {len(ids)}"
    assert len({frozenset(ids) for ids, _ in listed.values()}) == 1, "the replicas differ"
    for n in nodes:
        for job_id in rng.sample(sorted(acked), min(25, len(acked))):
            status = n.http.call("GET", f"/jobs/{job_id}?consistent=true")[0]
            assert status == 200, (n.node_id, job_id, status)
    return listed[nodes[0].node_id][0]


def _list_all(node: ClusterNode) -> tuple[set[str], int]:
    """Every job id ``node`` holds, page by page (read-index reads), and its total."""
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        query = "" if cursor is None else "&cursor=" + urllib.parse.quote(cursor)
        status, _, body = node.http.call("GET", f"/jobs?limit=1000&consistent=true{query}")
        assert status == 200, (node.node_id, status, body)
        ids.update(j["id"] for j in body["jobs"])
        cursor = body["next_cursor"]
        if not cursor:
            return ids, int(body["total"])
