"""The leader's view of one follower: how far it has replicated, and flow control.

A follower is in one of three states (as in etcd's tracker):

* PROBE: the leader does not know where the follower's log ends; it sends one
  AppendEntries at a time and waits for the answer (or a heartbeat response).
* REPLICATE: the logs match up to ``match``; the leader pipelines messages,
  optimistically advancing ``next``, with at most ``max_inflight`` unacknowledged.
* SNAPSHOT: the follower needs entries the leader has compacted; nothing is
  sent until the snapshot is acknowledged or reported failed.
"""

from __future__ import annotations

from collections import deque
from enum import Enum


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    """Replication progress of one peer, as tracked by the leader."""

    __slots__ = (
        "match",
        "next",
        "state",
        "probe_sent",
        "pending_snapshot",
        "snapshot_elapsed",
        "silent_ticks",
        "acked_stamp",
        "inflights",
        "max_inflight",
        "is_learner",
    )

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_elapsed = 0
        self.silent_ticks = 0  # leader ticks since this peer was last heard from
        self.acked_stamp = 0  # the newest leader stamp this peer's responses echoed
        self.inflights: deque[int] = deque()
        self.max_inflight = max_inflight
        self.is_learner = is_learner

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_elapsed = 0
        self.state = state
        self.inflights.clear()

    def heard(self, stamp: int) -> None:
        """A response from this peer, echoing the stamp of what it answers."""
        self.silent_ticks = 0
        self.acked_stamp = max(self.acked_stamp, stamp)

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """Record an acknowledgement of index ``n``; False if it tells nothing new."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def optimistic_update(self, n: int) -> None:
        self.next = n + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Back off after a rejection of the append at ``rejected``; False if stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflights) >= self.max_inflight
        return True

    def sent_entries(self, last: int) -> None:
        """Account for an AppendEntries carrying entries up to ``last``."""
        if self.state is ProgressState.REPLICATE:
            self.optimistic_update(last)
            self.inflights.append(last)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def free_inflights_to(self, index: int) -> None:
        while self.inflights and self.inflights[0] <= index:
            self.inflights.popleft()
