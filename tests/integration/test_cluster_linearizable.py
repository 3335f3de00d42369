"""Concurrent clients against a three-node cluster under faults, checked for
linearizability.

Several client threads run random create/get/delete/cancel operations on a dozen
shared job ids against random nodes for about 25 s, while a nemesis isolates the
leader, SIGKILLs and restarts it, isolates a random node or cuts one link.  Then
the network heals, every node runs again, one more consistent read of each id is
made on each node, and the whole history goes through the checker with the job
model.  Jobs are due in an hour, so the scheduler changes no status by itself.

The second test flips the answer of one read of that same history that no
linearization could explain otherwise, and expects the checker to reject it: the
recording, the mapping of answers and the checker catch an anomaly end to end.

``pytest -s`` prints the numbers: operations, unknown outcomes, faults, check time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.integration.cluster import ClusterNode
from tests.integration.linearizable_harness import (
    Client,
    ClientStats,
    Nemesis,
    Transcript,
    Workload,
    forced_reads,
    new_nodes,
    perform,
    running,
    wire_through,
)
from tests.integration.partitioner import Partitioner
from tests.linearizability import HistoryRecorder, Operation, Verdict, check
from tests.linearizability_jobs import JOB_MODEL, Get, Reply

CLIENTS = 5
WORKLOAD_S = 25.0
JOB_IDS = tuple(f"job-{i}" for i in range(12))
JOIN_BOUND_S = 15.0  # a client's last request ends within its HTTP timeout
CHECK_BOUND_S = 60.0
MIN_FAULTS = 3  # one every 3-6 s is injected


@dataclass(frozen=True)
class Recording:
    history: list[Operation]
    events: list[tuple[float, str]]
    stats: ClientStats
    seed: int
    logs: Path
    wall_offset: float  # wall clock minus monotonic clock, to match the node logs


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    root = tmp_path_factory.mktemp("linearizable")
    nodes = new_nodes(root)
    seed = random.randrange(2**32)
    due = int(time.time()) + 3600
    workload = Workload(JOB_IDS, (due, due + 60))
    with Partitioner({n.node_id: n.raft_port for n in nodes}) as net:
        wire_through(nodes, net)
        try:
            for n in nodes:
                n.start(wait=False)
            for n in nodes:
                wait_until(n.answers, 30, f"{n.node_id} to serve HTTP")
            wait_leader(nodes)
            recorder, stats = HistoryRecorder(), ClientStats()
            nemesis = _record(nodes, net, workload, recorder, stats, seed)
            _settle_and_read_back(nodes, recorder, stats)
            assert not nemesis.errors, nemesis.errors
            assert not stats.errors, stats.errors
            offset = time.time() - time.monotonic()
            yield Recording(recorder.history(), nemesis.events, stats, seed, root, offset)
        finally:
            for n in nodes:
                n.stop_if_running()


def _record(
    nodes: list[ClusterNode],
    net: Partitioner,
    workload: Workload,
    recorder: HistoryRecorder,
    stats: ClientStats,
    seed: int,
) -> Nemesis:
    stop = threading.Event()
    clients = [
        Client(i, CLIENTS, nodes, workload, recorder, stats, stop, seed + i) for i in range(CLIENTS)
    ]
    nemesis = Nemesis(nodes, net, stop, seed)
    for t in [*clients, nemesis]:
        t.start()
    stop.wait(WORKLOAD_S)  # the workload itself: clients and faults run meanwhile
    stop.set()
    for t in [*clients, nemesis]:
        t.join(JOIN_BOUND_S)
        assert not t.is_alive(), f"{t.name} did not stop"
    return nemesis


def _settle_and_read_back(
    nodes: list[ClusterNode], recorder: HistoryRecorder, stats: ClientStats
) -> None:
    """Every node up and one leader, then a consistent read of every id on every node."""
    for n in nodes:
        if not running(n):
            n.start(wait=False)
    for n in nodes:
        wait_until(n.answers, 30, f"{n.node_id} to serve HTTP")
    wait_leader(nodes)
    reader = 10_000  # a client id no worker thread uses
    for n in nodes:
        for job_id in JOB_IDS:
            perform(n, Get(job_id), reader, recorder, stats)


def _faults(rec: Recording) -> list[str]:
    return [what for _, what in rec.events if what != "heal" and not what.startswith("restart")]


def _summary(rec: Recording) -> str:
    unknown = [op for op in rec.history if op.ret is None]
    writes = sum(not isinstance(op.input, Get) for op in unknown)
    lines = [
        f"seed {rec.seed}; node logs under {rec.logs}",
        f"{len(rec.history)} operations, {len(unknown)} with an unknown outcome "
        f"({writes} writes; unknown reads are dropped), "
        f"{rec.stats.refused} refused connections (not recorded)",
        "answers: " + ", ".join(f"{k}={v}" for k, v in sorted(rec.stats.answers.items())),
        f"{len(_faults(rec))} faults: " + "; ".join(f"{t:.1f}s {what}" for t, what in rec.events),
    ]
    return "\n".join(lines)


def test_concurrent_job_operations_under_faults_are_linearizable(recording: Recording) -> None:
    print("\n" + _summary(recording))
    started = time.monotonic()
    result = check(recording.history, JOB_MODEL, max_steps=None, timeout_s=CHECK_BOUND_S)
    took = time.monotonic() - started
    print(f"check: {result.verdict.value} in {took:.2f} s, {result.steps} steps")
    assert len(_faults(recording)) >= MIN_FAULTS, "the nemesis injected too few faults"
    if not result.ok:
        transcript = Transcript(recording.history, recording.stats.node_of, recording.wall_offset)
        transcript.write(recording.logs / "history.txt")
        where = f"{transcript.explain(result)}\nwhole history: {recording.logs / 'history.txt'}"
        pytest.fail(f"{_summary(recording)}\n{result.explanation}\n{where}", pytrace=False)


def test_the_checker_rejects_the_same_history_with_one_read_flipped(
    recording: Recording,
) -> None:
    """Flip a read that must have seen its job to "not found", on a key whose own
    history is linearizable as recorded, and the checker must say ILLEGAL."""
    history = recording.history
    sound = {
        job_id
        for job_id in JOB_IDS
        if check(_of_job(history, job_id), JOB_MODEL, max_steps=None, timeout_s=CHECK_BOUND_S).ok
    }
    candidates = [i for i in forced_reads(history) if history[i].input.job_id in sound]
    assert candidates, "no read in the history whose answer is forced, on a sound key"
    index = candidates[-1]  # the latest: the checker must get through most of the history
    read = history[index]
    flipped = Operation(read.client, read.call, read.ret, read.input, Reply(404))
    tampered = [flipped if i == index else op for i, op in enumerate(history)]
    print(f"\nflipped op {index} of {len(history)}: {read.input} -> {read.output}, now 404")
    result = check(_of_job(tampered, read.input.job_id), JOB_MODEL, max_steps=None)
    assert result.verdict is Verdict.ILLEGAL, str(result)
    assert check(tampered, JOB_MODEL, max_steps=None).verdict is Verdict.ILLEGAL


def _of_job(history: list[Operation], job_id: str) -> list[Operation]:
    return [op for op in history if op.input.job_id == job_id]
