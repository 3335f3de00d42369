"""The leader lease: may this node send a delivery *now*?

A committed claim proves that this node led the claim's term when it was made, not
that it still leads when the request leaves: a process stopped for seconds (SIGSTOP,
a swapped-out page, a long GC) wakes with its deliveries queued and its belief in
its leadership intact, while a newer leader has long since fired the same
occurrences.  So the WebhookActor asks the lease, just before each request's bytes
are written, whether this node still holds leadership on the monotonic clock.

The RaftActor grants the lease from :meth:`scheduled_db.raft.core.Raft.lease_stamp`:
the tick since which a quorum of voters has heard from this leader.  Each of those
voters ignores vote requests for ``election_ticks`` of its own ticks after hearing
from us, and its ticker never fires two ticks less than one interval apart, so no
newer leader can exist until ``(election_ticks - 1) * tick`` has passed on its clock.
The lease ends ``MAX_DRIFT`` short of that, on our clock.  The assumption is that
the nodes' monotonic clocks run at rates within ``MAX_DRIFT`` of each other (they
need not agree on the time; real clocks differ in rate by parts per million).

This is the one value actors share without a message: a lease is a check on the
clock at the moment of sending, which a message, stale on arrival, cannot be.  It
is written by the Raft thread and read by the webhook loop; a tuple swap is atomic.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

MAX_DRIFT = 0.05  # the rate difference between nodes' clocks the lease tolerates


def lease_seconds(election_ticks: int, tick_s: float) -> float:
    """How long after the acknowledged tick this node may still act as the leader."""
    return (election_ticks - 1) * tick_s * (1 - MAX_DRIFT)


class LeaderLease:
    """The term this node leads and until when (monotonic seconds) it surely does."""

    def __init__(self) -> None:
        self._state = (0, 0.0)

    def grant(self, term: int, until: float) -> None:
        self._state = (term, until)

    def revoke(self) -> None:
        self._state = (0, 0.0)

    def _read(self) -> tuple[int, float]:
        return self._state

    def holds(self, term: int) -> bool:
        """True while this node surely leads ``term``: checked just before sending."""
        held, until = self._read()
        return held == term and time.monotonic() < until

    def remaining(self) -> float:
        """Seconds left on the lease (0 when none): for logs and tests."""
        return max(0.0, self._read()[1] - time.monotonic())


class SharedLease(LeaderLease):
    """A lease whose state lives in shared memory, so that delivery worker processes
    (actors/webhook/workers.py) check the same lease the node's Raft thread grants.

    ``CLOCK_MONOTONIC`` is one clock for every process of a host, so ``until`` means
    the same instant there.  One writer (the Raft thread) and any readers: a sequence
    count, odd while a write is under way, makes a read that overlapped a write try
    again.  A read can never mix one grant's term with another's end: either it sees
    a whole (term, until) pair, or it retries.
    """

    def __init__(self, cells: Any = None) -> None:
        # [sequence, term, until, beat]; doubles hold terms exactly up to 2**53.
        self.cells = cells if cells is not None else multiprocessing.RawArray("d", 4)

    def grant(self, term: int, until: float) -> None:
        cells = self.cells
        cells[0] += 1  # odd: readers retry
        cells[1] = float(term)
        cells[2] = until
        cells[0] += 1

    def revoke(self) -> None:
        self.grant(0, 0.0)

    def _read(self) -> tuple[int, float]:
        cells = self.cells
        while True:
            seq = cells[0]
            if seq % 2 == 0:
                term, until = cells[1], cells[2]
                if cells[0] == seq:
                    return int(term), until


class WorkerLease(SharedLease):
    """The lease as a delivery worker checks it: it holds only while the node's
    process is also seen running (``beat``, a monotonic time the node writes every
    few milliseconds, is at most ``fresh_s`` old).

    A worker runs on when its node's process is stopped (SIGSTOP, a swapped-out
    page): sending on to the end of the lease would be safe from a newer leader,
    but every outcome would be lost (the node records them) and each such
    delivery sent again by the next leader.  A beat that goes stale stops the
    worker within ``fresh_s``, as a stopped process stops its own sending at once.
    A node too busy to beat in time only delays a delivery: a fenced one is tried
    again shortly (actors/scheduler/actor.py)."""

    def __init__(self, cells: Any, fresh_s: float) -> None:
        super().__init__(cells)
        self._fresh_s = fresh_s

    def holds(self, term: int) -> bool:
        return time.monotonic() - self.cells[3] < self._fresh_s and super().holds(term)


def beat(cells: Any) -> None:
    """Say the node's process runs (the :class:`WorkerLease` check): one aligned
    8-byte store, which a reader sees whole."""
    cells[3] = time.monotonic()
