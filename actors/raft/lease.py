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

import time

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

    def holds(self, term: int) -> bool:
        """True while this node surely leads ``term``: checked just before sending."""
        held, until = self._state
        return held == term and time.monotonic() < until

    def remaining(self) -> float:
        """Seconds left on the lease (0 when none): for logs and tests."""
        return max(0.0, self._state[1] - time.monotonic())
