"""Admission control (scheduled_db/policy/admission.py): the bound, and the limit that follows
the node's speed, driven by a virtual clock against a simulated node."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from scheduled_db.policy.admission import FLOOR, MIN_SAMPLES, WINDOW_S, Admission

ARRIVAL_S = 0.0002  # clients ask 5,000 times a second: more than the nodes here answer


def fill(gate: Admission, now: float) -> int:
    """Admit until refused; how many were admitted."""
    admitted = 0
    while gate.admit(now):
        admitted += 1
    return admitted


@dataclass
class Node:
    """A node that answers in batches: each batch takes every request admitted
    before it began, and answers them all ``overhead_s + per_request_s x n`` later
    (as Raft does with one fsync per batch).  Clients ask every :data:`ARRIVAL_S`."""

    gate: Admission
    per_request_s: float
    overhead_s: float = 0.0
    now: float = 0.0
    waiting: list[float] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (answered at, took)
    limits: list[int] = field(default_factory=list)  # the limit after each batch
    _next_arrival: float = 0.0

    def run(self, seconds: float) -> Node:
        until = self.now + seconds
        while self.now < until:
            batch, self.waiting = self.waiting, []
            end = self.now + self.overhead_s + self.per_request_s * len(batch)
            end = max(end, self.now + ARRIVAL_S)
            while self._next_arrival < end:
                if self.gate.admit(self._next_arrival):
                    self.waiting.append(self._next_arrival)
                self._next_arrival += ARRIVAL_S
            self.now = end
            for started in batch:
                self.gate.release(end - started, end)
                self.latencies.append((end, end - started))
            self.limits.append(self.gate.limit)
        return self

    def mean_latency_after(self, t: float) -> float:
        late = [took for at, took in self.latencies if at >= t]
        return sum(late) / len(late)


def test_requests_past_the_bound_are_refused_until_one_ends() -> None:
    gate = Admission(3)
    assert fill(gate, 0.0) == 3
    assert not gate.admit(0.0)
    gate.release(0.01, 0.01)
    assert gate.admit(0.01)
    assert gate.in_flight == 3


def test_without_a_target_the_bound_never_moves_however_slow_the_node() -> None:
    node = Node(Admission(64), per_request_s=0.05).run(30.0)
    assert set(node.limits) == {64}


@pytest.mark.parametrize("answers_per_s", [50, 200, 1000])
def test_a_node_slower_than_the_target_gets_the_limit_little_s_law_gives(
    answers_per_s: int,
) -> None:
    """Whatever the node's speed, it ends up holding what it answers in the target."""
    node = Node(Admission(1000, target_s=0.25), per_request_s=1 / answers_per_s).run(40.0)
    ideal = answers_per_s * 0.25
    assert 0.8 * ideal <= node.gate.limit <= 1.2 * ideal
    assert 0.2 <= node.mean_latency_after(30.0) <= 0.3


def test_answers_of_one_batch_land_in_one_window() -> None:
    """A batching node: 1,000 answers at one instant are one window's rate, not the
    first few of them over the whole wait."""
    node = Node(Admission(1000, target_s=0.25), per_request_s=0.005, overhead_s=0.005)
    node.run(20.0)
    assert 0.8 * 50 <= node.gate.limit <= 1.2 * 50
    assert node.mean_latency_after(15.0) <= 0.3


def test_a_node_fast_enough_for_the_bound_keeps_it() -> None:
    node = Node(Admission(256, target_s=0.25), per_request_s=0.0001).run(10.0)
    assert set(node.limits) == {256}


def test_the_limit_never_falls_below_the_floor() -> None:
    node = Node(Admission(256, target_s=0.25), per_request_s=0.05).run(60.0)
    assert node.gate.limit == FLOOR
    assert min(node.limits) == FLOOR


def test_when_the_node_speeds_up_the_limit_grows_back_at_most_doubling_per_window() -> None:
    gate = Admission(256, target_s=0.25)
    slow = Node(gate, per_request_s=0.01).run(20.0)
    low = gate.limit
    assert low < 64
    fast = Node(gate, per_request_s=0.00005, now=slow.now, _next_arrival=slow.now).run(10.0)
    assert fast.limits[-1] == 256
    pairs = zip([low, *fast.limits], fast.limits, strict=False)
    assert all(b <= 2 * a + 1 for a, b in pairs)  # + 1: the limit is the whole part


def test_a_window_with_too_few_answers_changes_nothing() -> None:
    gate = Admission(256, target_s=0.25)
    for i in range(MIN_SAMPLES - 1):  # a few very slow requests, many windows long
        assert gate.admit(0.0)
        gate.release(30.0, WINDOW_S * (i + 2))
    assert gate.admit(WINDOW_S * 100)
    assert gate.limit == 256


def test_fast_answers_at_a_light_load_never_lower_the_limit() -> None:
    gate = Admission(256, target_s=0.25)
    now = 0.0
    for _ in range(500):  # one request at a time, 10 ms each, 40 ms apart
        assert gate.admit(now)
        gate.release(0.01, now + 0.01)
        now += 0.04
    assert gate.limit == 256


def test_release_without_admit_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        Admission(1).release(0.1, 1.0)


@pytest.mark.parametrize(("max_in_flight", "target_s"), [(0, None), (1, 0.0), (1, -1.0)])
def test_a_bound_below_one_or_a_target_not_positive_is_refused(
    max_in_flight: int, target_s: float | None
) -> None:
    with pytest.raises(ValueError):
        Admission(max_in_flight, target_s)
