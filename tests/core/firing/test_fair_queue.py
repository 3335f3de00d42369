"""The fair queue of deliveries: turns across destinations, adaptive caps, bounds."""

from __future__ import annotations

import random

import pytest

from scheduled_db.firing.fair_queue import INITIAL_CAP, FairQueue, Signal, signal_for

Queue = FairQueue[str, str]


def fill(queue: Queue, key: str, n: int) -> list[str]:
    items = [f"{key}{i}" for i in range(n)]
    for item in items:
        queue.push(key, item)
    return items


def grow(queue: Queue, key: str, answers: int) -> None:
    """Let ``key`` send and be answered ``answers`` times (nothing else waiting)."""
    for i in range(answers):
        queue.push(key, f"warm-{key}-{i}")
        [(got, _)] = queue.admit()
        assert got == key
        queue.release(key, Signal.ANSWERED)


def test_a_destination_we_know_nothing_about_gets_the_initial_cap() -> None:
    queue: Queue = FairQueue(slots=100, per_destination=32)
    fill(queue, "a", 10)
    assert [item for _, item in queue.admit()] == ["a0", "a1", "a2", "a3"]
    assert (queue.in_flight, queue.waiting, queue.cap("a")) == (INITIAL_CAP, 6, INITIAL_CAP)


def test_each_answer_adds_one_to_the_cap_up_to_per_destination() -> None:
    queue: Queue = FairQueue(slots=100, per_destination=6)
    fill(queue, "a", 20)
    queue.admit()
    queue.release("a", Signal.ANSWERED)
    assert queue.cap("a") == 5
    assert len(queue.admit()) == 2  # the freed slot and the new one
    for _ in range(5):
        queue.release("a", Signal.ANSWERED)
    assert (queue.cap("a"), queue.in_flight) == (6, 0)
    assert len(queue.admit()) == 6


def test_a_timeout_or_a_request_to_slow_down_halves_the_cap_never_below_one() -> None:
    queue: Queue = FairQueue(slots=100, per_destination=32)
    grow(queue, "a", 28)
    assert queue.cap("a") == 32
    fill(queue, "a", 40)
    assert len(queue.admit()) == 32
    caps = []
    for _ in range(7):
        queue.release("a", Signal.SLOW_DOWN)
        caps.append(queue.cap("a"))
    assert caps == [16, 8, 4, 2, 1, 1, 1]
    # 25 still in flight, over the cut cap: nothing more is sent until they end.
    assert queue.admit() == []
    for _ in range(24):
        queue.release("a", Signal.NOTHING)
    assert queue.admit() == []  # one in flight, cap one
    queue.release("a", Signal.NOTHING)
    assert [item for _, item in queue.admit()] == ["a32"]


def test_destinations_take_turns_and_each_one_sends_oldest_first() -> None:
    queue: Queue = FairQueue(slots=1, per_destination=32)
    fill(queue, "a", 4)
    fill(queue, "b", 2)
    fill(queue, "c", 1)
    order = []
    while queue.waiting:
        [(key, item)] = queue.admit()
        order.append(item)
        queue.release(key, Signal.ANSWERED)
    assert order == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]


def test_a_hanging_destination_holds_its_cap_and_no_more() -> None:
    queue: Queue = FairQueue(slots=10, per_destination=32)
    fill(queue, "hang", 600)
    assert len(queue.admit()) == INITIAL_CAP  # never released: they hang
    fill(queue, "ok", 3)
    assert [item for _, item in queue.admit()] == ["ok0", "ok1", "ok2"]
    assert (queue.in_flight, queue.waiting) == (INITIAL_CAP + 3, 600 - INITIAL_CAP)


def test_the_global_slots_bound_every_destination_together() -> None:
    queue: Queue = FairQueue(slots=5, per_destination=32)
    for key in "abcdefgh":
        fill(queue, key, 2)
    assert [key for key, _ in queue.admit()] == list("abcde")
    assert queue.admit() == []
    queue.release("a", Signal.ANSWERED)
    queue.release("c", Signal.ANSWERED)
    assert [key for key, _ in queue.admit()] == list("fg")  # the line moves on, in turn


def test_a_withdrawn_delivery_is_never_admitted_and_an_admitted_one_cannot_be_withdrawn() -> None:
    queue: Queue = FairQueue(slots=1, per_destination=32)
    fill(queue, "a", 3)
    [(_, first)] = queue.admit()
    assert not queue.is_waiting("a", first) and queue.is_waiting("a", "a1")
    assert not queue.withdraw("a", first)
    assert queue.withdraw("a", "a1") and not queue.withdraw("a", "a1")
    assert not queue.is_waiting("a", "a1")
    assert not queue.withdraw("nobody", "x")
    queue.release("a", Signal.ANSWERED)
    assert queue.admit() == [("a", "a2")]
    assert (queue.waiting, queue.in_flight) == (0, 1)


def test_withdrawing_the_last_waiting_delivery_gives_up_the_turn() -> None:
    queue: Queue = FairQueue(slots=1, per_destination=32)
    fill(queue, "busy", 1)
    queue.admit()
    fill(queue, "a", 1)
    fill(queue, "b", 1)
    queue.withdraw("a", "a0")
    queue.release("busy", Signal.ANSWERED)
    assert queue.admit() == [("b", "b0")]


def test_an_idle_destination_keeps_a_cut_or_grown_cap_but_not_the_initial_one() -> None:
    queue: Queue = FairQueue(slots=100, per_destination=32, max_idle=2)
    fill(queue, "cut", 1)
    queue.admit()
    queue.release("cut", Signal.SLOW_DOWN)
    grow(queue, "grown", 3)
    grow(queue, "plain", 0)
    assert (queue.cap("cut"), queue.cap("grown"), queue.cap("plain")) == (2, 7, INITIAL_CAP)
    fill(queue, "cut", 5)
    assert len(queue.admit()) == 2  # the penalty is still in force
    assert queue.cap("cut") == 2


def test_idle_destinations_are_forgotten_oldest_first_past_max_idle() -> None:
    queue: Queue = FairQueue(slots=100, per_destination=32, max_idle=2)
    for key in ("a", "b", "c"):
        grow(queue, key, 1)
    assert [queue.cap(k) for k in ("a", "b", "c")] == [INITIAL_CAP, 5, 5]


@pytest.mark.parametrize(
    ("status", "timed_out", "signal"),
    [
        (200, False, Signal.ANSWERED),
        (404, False, Signal.ANSWERED),
        (500, False, Signal.ANSWERED),  # an answer, if not the one we wanted
        (429, False, Signal.SLOW_DOWN),
        (503, False, Signal.SLOW_DOWN),
        (504, False, Signal.SLOW_DOWN),
        (None, True, Signal.SLOW_DOWN),
        (None, False, Signal.NOTHING),  # refused, DNS, TLS, aborted, not sent
    ],
)
def test_what_a_finished_request_signals(
    status: int | None, timed_out: bool, signal: Signal
) -> None:
    assert signal_for(status, timed_out) is signal


@pytest.mark.parametrize(
    "args", [(0, 1, 1), (1, 0, 1), (1, 1, 0)], ids=["slots", "per_destination", "initial"]
)
def test_caps_below_one_are_refused(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        FairQueue(*args)


def test_an_initial_cap_above_per_destination_is_cut_to_it() -> None:
    assert FairQueue[str, str](slots=10, per_destination=2).cap("x") == 2


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_keep_every_bound_and_account_for_every_delivery(seed: int) -> None:
    rng = random.Random(seed)
    slots, per_destination = rng.randint(1, 8), rng.randint(1, 6)
    queue: Queue = FairQueue(slots, per_destination, max_idle=3)
    keys = ["a", "b", "c", "d"]
    pushed: dict[str, list[str]] = {k: [] for k in keys}
    flying: dict[str, list[str]] = {k: [] for k in keys}
    gone: set[str] = set()  # admitted or withdrawn: each exactly once
    for step in range(400):
        op, key = rng.random(), rng.choice(keys)
        if op < 0.4:
            pushed[key].append(f"{key}{step}")
            queue.push(key, pushed[key][-1])
        elif op < 0.5 and pushed[key]:
            item = rng.choice(pushed[key])
            assert queue.withdraw(key, item) == (item not in gone)
            gone.add(item)
        elif op < 0.8 and flying[key]:
            flying[key].pop(0)
            queue.release(key, rng.choice(list(Signal)))
        for k, item in queue.admit():
            assert item not in gone
            waiting_before = [i for i in pushed[k] if i not in gone]
            assert item == waiting_before[0]  # oldest first
            gone.add(item)
            flying[k].append(item)
        assert queue.in_flight == sum(map(len, flying.values())) <= slots
        assert all(len(f) <= per_destination for f in flying.values())
        assert queue.waiting == sum(i not in gone for p in pushed.values() for i in p)
        assert all(1 <= queue.cap(k) <= per_destination for k in keys)


# --- a rate per destination -----------------------------------------------------------


def _drive(q: FairQueue[str, int], until_ms: int, answer: bool = True) -> list[tuple[int, str]]:
    """Admit whenever the queue says a token is due (and at once for slots); each
    admitted request is answered at once.  (time, destination) of every send."""
    sent: list[tuple[int, str]] = []
    now = 0
    while now <= until_ms:
        while admitted := q.admit(now):  # answers free slots: admit again at once
            for key, _ in admitted:
                sent.append((now, key))
                if answer:
                    q.release(key, Signal.ANSWERED)
        due = q.next_due_ms()
        if due is None:
            break
        assert due > now
        now = due
    return sent


def test_a_rate_spreads_a_burst_and_drops_nothing() -> None:
    q: FairQueue[str, int] = FairQueue(100, 100, rate=5)
    for i in range(20):
        q.push("a", i)
    sent = _drive(q, 60_000)
    assert len(sent) == 20 and q.waiting == 0
    times = [t for t, _ in sent]
    assert times[:5] == [0] * 5  # one second's worth at once
    # Then one every 200 ms: no second window holds more than the burst plus the rate.
    assert times[5:] == [200 * i for i in range(1, 16)]
    for start in range(0, times[-1], 100):
        assert sum(start <= t < start + 1000 for t in times) <= 10


def test_a_paced_destination_does_not_hold_up_the_others() -> None:
    q: FairQueue[str, int] = FairQueue(100, 100, rate=1)
    for i in range(3):
        q.push("slow", i)
    assert [k for k, _ in q.admit(0)] == ["slow"]
    assert q.is_paced("slow") and q.next_due_ms() == 1000
    q.push("other", 9)
    assert q.admit(10) == [("other", 9)]  # not behind "slow"
    assert q.admit(999) == []
    assert q.admit(1000) == [("slow", 1)]


def test_going_idle_between_deliveries_does_not_refill_the_bucket() -> None:
    q: FairQueue[str, int] = FairQueue(100, 100, rate=1)
    q.push("a", 1)
    assert q.admit(0) == [("a", 1)]
    q.release("a", Signal.ANSWERED)  # idle now: forgotten but for its bucket
    q.push("a", 2)
    assert q.admit(100) == []  # the token spent at 0 is not back before 1000
    assert q.admit(1000) == [("a", 2)]


def test_without_a_rate_nothing_is_paced() -> None:
    q: FairQueue[str, int] = FairQueue(100, 100)
    for i in range(50):
        q.push("a", i)
    assert len(q.admit()) == INITIAL_CAP and q.next_due_ms() is None
    with pytest.raises(ValueError):
        FairQueue(1, 1, rate=0)


def test_pushing_many_at_once_queues_them_as_pushing_each_would() -> None:
    one_by_one: Queue = FairQueue(slots=3, per_destination=32)
    at_once: Queue = FairQueue(slots=3, per_destination=32)
    for queue in (one_by_one, at_once):
        queue.push("b", "b0")
    for item in ("a0", "a1", "a2"):
        one_by_one.push("a", item)
    at_once.push_many("a", ["a0", "a1", "a2"])
    at_once.push_many("c", [])  # nothing: no destination made for it
    for queue in (one_by_one, at_once):
        assert queue.waiting == 4
        order = []
        while queue.waiting:
            for key, item in queue.admit():
                order.append(item)
                queue.release(key, Signal.ANSWERED)
        assert order == ["b0", "a0", "a1", "a2"]
        assert queue.cap("c") == INITIAL_CAP and not queue.withdraw("c", "c0")
