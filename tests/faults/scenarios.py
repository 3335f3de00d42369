"""The fault scenarios, each on a fresh 3-node cluster of real processes.

Each returns :class:`~tests.faults.figures.Figures`.  Times come from the wall
clock the nodes and the receiver share; every wait is a bounded poll of a
condition (scheduled_db.testing.harness.wait_until).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.faults.figures import Figures, summarize
from tests.faults.receiver import Arrival, RecordingReceiver
from tests.faults.storage import damaged_log
from tests.integration.cluster import ClusterNode, job, running_cluster
from tests.integration.cluster_faults_harness import post, wait_serving
from tests.integration.hanging_receivers import HangingReceivers

CREATE_THREADS = 8
CREATE_BUDGET_S = 0.01  # per job: the burst starts after they are all created
DELIVERY_WAIT_S = 30.0  # after the burst: generous for a loaded 2-core machine
# Flags every node of every scenario gets besides its own (python -m tests.faults
# --delivery-workers N runs them all with deliveries sent from worker processes).
NODE_FLAGS: list[str] = []


def _create_burst(
    node: ClusterNode, url: str, n: int, spread_s: float, tag: str, start: float = 0.0
) -> tuple[float, set[str]]:
    """Create ``n`` one-time jobs due evenly over ``spread_s`` from ``start`` (by
    default a time far enough ahead to create them all first); return (start, their
    idempotency keys)."""
    start = start or round(time.time() + 3.0 + n * CREATE_BUDGET_S, 3)
    bodies = [job(f"{tag}-{i}", start + spread_s * i / n, url) for i in range(n)]
    _create_all(node, bodies)
    left = start - time.time()
    assert left > 2.5, f"creating {n} jobs left {left:.1f} s before the burst: machine too busy"
    return start, {f"{b['id']}:{round(b['timestamp'] * 1000)}" for b in bodies}


def _create_all(node: ClusterNode, bodies: list[dict[str, Any]]) -> None:
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        answers = list(pool.map(lambda b: post(node, b), bodies))
    failed = [
        (b["id"], s) for b, (s, _) in zip(bodies, answers, strict=True) if s not in (200, 201)
    ]
    assert not failed, f"creates refused before any fault: {failed[:3]}"


def _wait_clock(at: float) -> None:
    wait_until(lambda: time.time() >= at, max(1.0, at - time.time() + 5), "the fault's moment")


def _wait_delivered(rx: RecordingReceiver, keys: set[str], timeout: float) -> None:
    with contextlib.suppress(AssertionError):  # the figures report what is missing
        wait_until(lambda: keys <= rx.keys(), timeout, "every occurrence to be delivered")


def _other(nodes: list[ClusterNode], gone: ClusterNode) -> list[ClusterNode]:
    return [n for n in nodes if n is not gone]


def handover_before_burst(root: Path, n: int = 300, spread_s: float = 2.0) -> Figures:
    """SIGTERM the leader (a graceful hand-over, as in a rolling restart) 0.1 s
    before a burst whose claims it has already made: nothing may go out early."""
    rx = RecordingReceiver().start()
    try:
        with running_cluster(root, extra=tuple(NODE_FLAGS)) as nodes:
            leader = wait_leader(nodes)
            start, keys = _create_burst(leader, rx.url(), n, spread_s, "handover")
            _wait_clock(start - 0.1)
            leader.stop(signal.SIGTERM)
            wait_leader(_other(nodes, leader))
            _wait_delivered(rx, keys, spread_s + DELIVERY_WAIT_S)
            return summarize("handover", keys, rx.arrivals())
    finally:
        rx.stop()


def pause_mid_burst(
    root: Path, n: int = 300, spread_s: float = 3.0, pause_s: float = 4.0
) -> Figures:
    """SIGSTOP the leader mid-burst for longer than an election timeout, then
    SIGCONT: it must not send what it had armed or queued once a newer term has
    taken over.  The receiver is slow and the nodes send 8 requests at a time, so
    deliveries are queued in the leader's webhook loop when it stops."""
    rx = RecordingReceiver(delay=0.3).start()
    try:
        with running_cluster(root, extra=(*NODE_FLAGS, "--execution-concurrency", "8")) as nodes:
            leader = wait_leader(nodes)
            old_term = _term(leader)
            start, keys = _create_burst(leader, rx.url(), n, spread_s, "pause")
            _wait_clock(start + 0.5)
            assert leader.proc is not None
            leader.proc.send_signal(signal.SIGSTOP)
            stopped = time.time()
            try:
                wait_leader(_other(nodes, leader))
                _wait_clock(stopped + pause_s)
            finally:
                leader.proc.send_signal(signal.SIGCONT)
            resumed = time.time()
            wait_until(lambda: leader.health().get("role") == "follower", 15, "it to step down")
            _wait_delivered(rx, keys, spread_s + DELIVERY_WAIT_S)
            arrivals = rx.arrivals()
            figures = summarize("pause", keys, arrivals)
            _bound_duplicates(figures, arrivals, old_term, stopped, rx.delay)
            figures.notes["paused_s"] = round(resumed - stopped, 2)
            return figures
    finally:
        rx.stop()


def kill_mid_burst(root: Path, n: int = 1000, spread_s: float = 2.0) -> Figures:
    """SIGKILL the leader mid-burst: at-least-once means some keys go out twice, but
    at most 1% of the burst or what it delivered in its last 250 ms."""
    rx = RecordingReceiver().start()
    try:
        with running_cluster(root, extra=tuple(NODE_FLAGS)) as nodes:
            leader = wait_leader(nodes)
            old_term = _term(leader)
            start, keys = _create_burst(leader, rx.url(), n, spread_s, "kill")
            _wait_clock(start + spread_s / 2)
            leader.stop(signal.SIGKILL)
            killed = time.time()
            _wait_delivered(rx, keys, spread_s + DELIVERY_WAIT_S)
            arrivals = rx.arrivals()
            figures = summarize("kill", keys, arrivals)
            _bound_duplicates(figures, arrivals, old_term, killed)
            return figures
    finally:
        rx.stop()


def cron_across_failovers(root: Path, kills: int = 3) -> Figures:
    """A per-second cron job while the leader is SIGKILLed ``kills`` times (each one
    restarted before the next): every second from the first to the last delivery
    is delivered, once a failover is over."""
    rx = RecordingReceiver().start()
    try:
        with running_cluster(root, extra=tuple(NODE_FLAGS)) as nodes:
            leader = wait_leader(nodes)
            body: dict[str, Any] = {
                "id": "every-second",
                "type": "recurrente",
                "cron_expression": "* * * * * *",
                "webhook_url": rx.url(),
            }
            status, answer = post(leader, body)
            assert status in (200, 201), answer
            _wait_count(rx, 3)
            failovers = []
            lost: list[tuple[int, float]] = []  # (term, when) of each leader killed
            for _ in range(kills):
                leader = wait_leader(nodes)
                term = _term(leader)
                leader.stop(signal.SIGKILL)
                killed = time.time()
                lost.append((term, killed))
                seen = len(rx.arrivals())
                wait_leader(_other(nodes, leader))
                _wait_count(rx, seen + 2)
                failovers.append(time.time() - killed)
                leader.start(wait=False)
                wait_serving(leader)
            _wait_count(rx, len(rx.arrivals()) + 2)
            arrivals = rx.arrivals()
            seconds = sorted({int(a.scheduled) for a in arrivals})
            expected = {f"every-second:{s * 1000}" for s in range(seconds[0], seconds[-1] + 1)}
            figures = summarize("cron", expected, arrivals)
            # At least once: a kill between a run's delivery and the commit of its
            # outcome has that run sent again (as in kill_mid_burst, what the leader
            # delivered in its last 250 ms), and nothing else.
            figures.duplicate_bound = sum(
                _delivered_before(arrivals, term, killed) for term, killed in lost
            )
            figures.notes["failover_s_max"] = round(max(failovers), 2)
            figures.notes["kills"] = kills
            return figures
    finally:
        rx.stop()


def hanging_receivers(root: Path, hanging: int = 600, normal: int = 100) -> Figures:
    """``hanging`` deliveries to receivers that accept and never answer (more than a
    node's old 512 delivery slots), then ``normal`` jobs to a fast receiver due just
    after: those must stay on time (p99 lateness <= 1 s)."""
    rx = RecordingReceiver().start()
    try:
        with (
            HangingReceivers(hanging) as hang,
            running_cluster(root, extra=tuple(NODE_FLAGS)) as nodes,
        ):
            leader = wait_leader(nodes)
            due = round(time.time() + 3.0 + (hanging + normal) * CREATE_BUDGET_S, 3)
            stuck = [job(f"hang-{i}", due, hang.url(i)) for i in range(hanging)]
            for body in stuck:
                body["timeout"] = "30s"
            _create_all(leader, stuck)
            start, keys = _create_burst(leader, rx.url(), normal, 1.0, "normal", due + 0.5)
            hang.wait_accepted(hanging // 2, timeout=start - time.time() + 10)
            _wait_delivered(rx, keys, 1.0 + DELIVERY_WAIT_S)
            figures = summarize("hanging", keys, rx.arrivals())
            figures.late_p99_bound_ms = 1000.0
            figures.notes["hanging"] = hanging
            return figures
    finally:
        rx.stop()


def _term(node: ClusterNode) -> int:
    return int(node.http.call("GET", "/debug/cluster")[2]["term"])


def _bound_duplicates(
    figures: Figures, arrivals: list[Arrival], term: int, lost: float, answer_s: float = 0.0
) -> None:
    """At least once, but a leader lost at ``lost`` may have only what it delivered in
    its last 250 ms sent again (plus what was still waiting for an answer, which takes
    the receiver ``answer_s``), or 1% of the burst if that is more."""
    last = _delivered_before(arrivals, term, lost, answer_s)
    figures.duplicate_bound = max(figures.jobs // 100, last)
    figures.notes["delivered_in_last_250ms"] = last


def _delivered_before(
    arrivals: list[Arrival], term: int, lost: float, answer_s: float = 0.0
) -> int:
    """How many deliveries of ``term``'s leader arrived in its last 250 ms before
    ``lost`` (and the ``answer_s`` a receiver takes to answer)."""
    since = lost - 0.25 - answer_s
    return sum(1 for a in arrivals if a.term == term and since <= a.at <= lost)


def _wait_count(rx: RecordingReceiver, n: int, timeout: float = 20) -> None:
    wait_until(lambda: len(rx.arrivals()) >= n, timeout, f"{n} deliveries")


SCENARIOS: dict[str, Callable[[Path], Figures]] = {
    "handover": handover_before_burst,
    "pause": pause_mid_burst,
    "kill": kill_mid_burst,
    "cron": cron_across_failovers,
    "hanging": hanging_receivers,
    "wal": damaged_log,
}
