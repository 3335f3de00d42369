"""The leader lease, in-process and in shared memory (read by delivery workers)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from actors.raft.lease import LeaderLease, SharedLease, WorkerLease, beat


def test_a_lease_holds_its_term_until_its_end_and_not_after_a_revoke() -> None:
    for lease in (LeaderLease(), SharedLease()):
        assert not lease.holds(0) and not lease.holds(3)
        lease.grant(3, time.monotonic() + 60)
        assert lease.holds(3) and not lease.holds(4)
        assert 59 < lease.remaining() <= 60
        lease.grant(3, time.monotonic() - 0.001)  # ended
        assert not lease.holds(3) and lease.remaining() == 0
        lease.grant(3, time.monotonic() + 60)
        lease.revoke()
        assert not lease.holds(3) and lease.remaining() == 0


def _holds_in_child(cells: Any, term: int, answer: Any) -> None:
    answer.put(SharedLease(cells).holds(term))


def test_another_process_sees_the_grant_and_the_revoke() -> None:
    lease = SharedLease()
    ctx = multiprocessing.get_context("spawn")
    answers = ctx.Queue()

    def ask(term: int) -> bool:
        child = ctx.Process(target=_holds_in_child, args=(lease.cells, term, answers))
        child.start()
        child.join(30)
        return bool(answers.get(timeout=30))

    lease.grant(5, time.monotonic() + 60)  # CLOCK_MONOTONIC is the host's, not the process's
    assert ask(5) and not ask(6)
    lease.revoke()
    assert not ask(5)


def test_a_reader_never_sees_one_grants_term_with_anothers_end() -> None:
    """Terms and ends written in pairs (term t always with end t): a torn read would
    pair a term with another's end."""
    lease = SharedLease()
    stop = threading.Event()

    def write() -> None:
        t = 1
        while not stop.is_set():
            lease.grant(t, float(t))
            t += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 1.0
        reads = 0
        while time.monotonic() < deadline:
            term, until = lease._read()
            assert until == float(term)
            reads += 1
        assert reads > 1000
    finally:
        stop.set()
        writer.join()


def test_a_worker_lease_holds_only_while_the_node_beats() -> None:
    lease = SharedLease()
    lease.grant(2, time.monotonic() + 60)
    worker = WorkerLease(lease.cells, fresh_s=0.2)
    assert not worker.holds(2)  # never beaten: the node is not known to run
    beat(lease.cells)
    assert worker.holds(2) and not worker.holds(3)
    lease.cells[3] = time.monotonic() - 0.25  # the node stopped beating 250 ms ago
    assert not worker.holds(2)
    beat(lease.cells)
    lease.revoke()
    assert not worker.holds(2)  # a beat does not stand in for the lease
