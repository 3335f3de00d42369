"""Tests of the linearizability checker (tests/linearizability.py) and its job model."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduled_db.jobs.model import JobStatus
from scheduled_db.state import commands as c
from scheduled_db.state.results import ResultCode
from scheduled_db.state.txn import Txn
from tests.fsm_helpers import Machine, spec
from tests.linearizability import (
    UNKNOWN,
    CheckResult,
    HistoryRecorder,
    Model,
    Operation,
    Verdict,
    check,
    partition_by,
)
from tests.linearizability_jobs import JOB_MODEL, Cancel, Create, Delete, Get, JobInput, Reply

# --- a register, and a register per key ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    value: int
    key: str = "x"


@dataclass(frozen=True, slots=True)
class Read:
    key: str = "x"


def register_step(state: int, inp: Write | Read, out: Any) -> tuple[bool, int]:
    if isinstance(inp, Write):
        return True, inp.value
    return out is UNKNOWN or out == state, state


REGISTER: Model[int] = Model(init=0, step=register_step)
REGISTERS: Model[int] = Model(
    init=0, step=register_step, partition=partition_by(lambda inp: inp.key)
)


def op(client: int, call: float, ret: float | None, inp: Any, out: Any = None) -> Operation:
    return Operation(client, call, ret, inp, out)


def w(client: int, call: float, ret: float | None, value: int, key: str = "x") -> Operation:
    return op(client, call, ret, Write(value, key))


def r(client: int, call: float, ret: float, value: int, key: str = "x") -> Operation:
    return op(client, call, ret, Read(key), value)


def assert_ok(result: CheckResult) -> None:
    assert result.verdict is Verdict.OK, str(result)


def assert_illegal(result: CheckResult) -> None:
    assert result.verdict is Verdict.ILLEGAL, str(result)
    assert not result.ok


# --- the generic checker ----------------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    assert_ok(check([], REGISTER))


def test_sequential_history_passes() -> None:
    history = [w(0, 0, 1, 1), r(1, 2, 3, 1), w(1, 4, 5, 2), r(0, 6, 7, 2)]
    assert_ok(check(history, REGISTER))


def test_sequential_history_with_a_wrong_read_fails() -> None:
    assert_illegal(check([w(0, 0, 1, 1), r(1, 2, 3, 2)], REGISTER))


@pytest.mark.parametrize("seen", [1, 2])
def test_concurrent_writes_may_take_effect_in_either_order(seen: int) -> None:
    history = [w(0, 0, 10, 1), w(1, 1, 11, 2), r(2, 12, 13, seen)]
    assert_ok(check(history, REGISTER))


def test_a_read_overlapping_a_write_may_see_either_value() -> None:
    history = [w(0, 0, 10, 1), r(1, 2, 3, 0), r(2, 4, 5, 1), r(1, 11, 12, 1)]
    assert_ok(check(history, REGISTER))


def test_read_of_the_old_value_after_a_completed_write_is_rejected() -> None:
    result = check([w(0, 0, 1, 1), r(1, 2, 3, 0)], REGISTER)
    assert_illegal(result)
    assert "Read" in result.explanation


def test_reads_seeing_new_then_old_value_are_rejected() -> None:
    # Both reads overlap the write, but once one saw 1 a later one cannot see 0.
    history = [w(0, 0, 10, 1), r(1, 1, 2, 1), r(2, 3, 4, 0)]
    assert_illegal(check(history, REGISTER))


def test_ops_ending_and_starting_at_the_same_instant_are_concurrent() -> None:
    assert_ok(check([w(0, 0, 5, 1), r(1, 5, 6, 0)], REGISTER))
    assert_illegal(check([w(0, 0, 5, 1), r(1, 5.001, 6, 0)], REGISTER))


@pytest.mark.parametrize("seen", [0, 1])
def test_an_unknown_write_may_or_may_not_take_effect(seen: int) -> None:
    history = [Operation.unknown(0, 0, Write(1)), r(1, 5, 6, seen), r(1, 7, 8, seen)]
    assert_ok(check(history, REGISTER))


def test_an_unknown_write_may_take_effect_long_after_its_call() -> None:
    history = [Operation.unknown(0, 0, Write(1)), r(1, 5, 6, 0), r(2, 7, 8, 1)]
    assert_ok(check(history, REGISTER))


def test_an_unknown_write_once_seen_stays_in_effect() -> None:
    history = [Operation.unknown(0, 0, Write(1)), r(1, 5, 6, 1), r(2, 7, 8, 0)]
    assert_illegal(check(history, REGISTER))


def test_an_unknown_write_cannot_explain_a_read_before_its_call() -> None:
    history = [r(1, 0, 1, 1), Operation.unknown(0, 2, Write(1))]
    result = check(history, REGISTER)
    assert_illegal(result)
    assert [o.input for o in result.stuck] == [Read()]


def test_an_operation_cannot_return_before_its_call() -> None:
    with pytest.raises(ValueError, match="before its call"):
        w(0, 5, 4, 1)


def test_partitions_are_checked_separately_and_the_bad_key_is_reported() -> None:
    good = [w(i, 2 * i, 2 * i + 1, i, key=f"k{i}") for i in range(30)]
    bad = [w(0, 100, 101, 1, key="bad"), r(1, 102, 103, 0, key="bad")]
    result = check(good + bad, REGISTERS)
    assert_illegal(result)
    assert {o.input.key for o in result.linearized + result.stuck} == {"bad"}


def test_explanation_names_the_longest_prefix_and_the_stuck_ops() -> None:
    history = [w(0, 0, 1, 1), w(0, 2, 3, 2), r(1, 4, 5, 1)]
    result = check(history, REGISTER)
    assert_illegal(result)
    assert [o.input for o in result.linearized] == [Write(1), Write(2)]
    assert [o.input for o in result.stuck] == [Read()]
    assert "Longest linearizable prefix (2 ops" in str(result)


def _hard_history(n: int) -> list[Operation]:
    """Many concurrent writes then a read of a value nobody wrote: a full search."""
    return [w(i, 0, 100, i + 1) for i in range(n)] + [r(n, 101, 102, -1)]


def test_step_budget_exhausted_is_unknown_not_ok() -> None:
    result = check(_hard_history(12), REGISTER, max_steps=50)
    assert result.verdict is Verdict.UNKNOWN
    assert not result.ok
    assert result.steps == 50 + 1
    assert "gave up" in str(result)


def test_deadline_is_unknown_not_ok() -> None:
    ticks = iter(range(0, 10**9, 10))
    result = check(_hard_history(12), REGISTER, timeout_s=5, clock=lambda: next(ticks))
    assert result.verdict is Verdict.UNKNOWN


def test_the_same_history_with_enough_budget_is_decided() -> None:
    assert_illegal(check(_hard_history(12), REGISTER))


def test_recorder_turns_uncompleted_operations_into_unknown_outcomes() -> None:
    ticks = iter(range(100))
    rec = HistoryRecorder(clock=lambda: next(ticks))
    a = rec.invoke(0, Write(1))
    rec.invoke(1, Write(2))  # never completed: a lost reply
    rec.complete(a, None)
    b = rec.invoke(0, Read())
    rec.complete(b, 2)
    history = rec.history()
    assert history[1] == Operation.unknown(1, 1, Write(2))
    assert history[2] == Operation(0, 3, 4, Read(), 2)
    assert_ok(check(history, REGISTER))


# --- the job model ---------------------------------------------------------------------


def job(
    client: int,
    call: float,
    ret: float | None,
    inp: JobInput,
    code: int = 0,
    status: str | None = None,
) -> Operation:
    return Operation(client, call, ret, inp, Reply(code, status))


A = "job-a"
PENDING = JobStatus.PENDING


def test_create_then_a_later_get_404_is_rejected() -> None:
    history = [job(0, 0, 1, Create(A, 1), 201), job(1, 2, 3, Get(A), 404)]
    assert_illegal(check(history, JOB_MODEL))


def test_delete_then_a_later_get_200_is_rejected() -> None:
    history = [
        job(0, 0, 1, Create(A, 1), 200),
        job(0, 2, 3, Delete(A), 204),
        job(1, 4, 5, Get(A), 200, PENDING),
    ]
    assert_illegal(check(history, JOB_MODEL))


@pytest.mark.parametrize("seen", [Reply(404), Reply(200, PENDING)])
def test_concurrent_create_and_get_pass_in_either_order(seen: Reply) -> None:
    history = [job(0, 0, 10, Create(A, 1), 201), Operation(1, 1, 2, Get(A), seen)]
    assert_ok(check(history, JOB_MODEL))


def test_idempotent_create_answers_200_after_201() -> None:
    history = [job(0, 0, 1, Create(A, 1), 201), job(1, 2, 3, Create(A, 1), 200)]
    assert_ok(check(history, JOB_MODEL))


def test_create_with_another_body_conflicts() -> None:
    ok = [job(0, 0, 1, Create(A, 1), 200), job(1, 2, 3, Create(A, 2), 409)]
    assert_ok(check(ok, JOB_MODEL))
    wrong = [job(0, 0, 1, Create(A, 1), 200), job(1, 2, 3, Create(A, 2), 200)]
    assert_illegal(check(wrong, JOB_MODEL))


def test_two_creates_cannot_both_be_fresh_with_different_bodies() -> None:
    history = [job(0, 0, 5, Create(A, 1), 201), job(1, 1, 6, Create(A, 2), 201)]
    assert_illegal(check(history, JOB_MODEL))


def test_scheduler_moves_are_accepted_but_a_finished_job_stays_put() -> None:
    statuses = [PENDING, JobStatus.IN_PROGRESS, JobStatus.FAILED, PENDING, JobStatus.COMPLETED]
    history = [job(0, 0, 1, Create(A, 1), 200)]
    history += [job(1, 2 + 2 * i, 3 + 2 * i, Get(A), 200, s) for i, s in enumerate(statuses)]
    assert_ok(check(history, JOB_MODEL))
    finished = history + [job(0, 20, 21, Cancel(A), 400), job(1, 22, 23, Get(A), 200, PENDING)]
    assert_illegal(check(finished, JOB_MODEL))


def test_only_a_cancel_makes_a_job_cancelled() -> None:
    history = [job(0, 0, 1, Create(A, 1), 200), job(1, 2, 3, Get(A), 200, JobStatus.CANCELLED)]
    assert_illegal(check(history, JOB_MODEL))


def test_cancel_is_final_and_idempotent() -> None:
    history = [
        job(0, 0, 1, Create(A, 1), 200),
        job(0, 2, 3, Cancel(A), 200),
        job(1, 4, 5, Cancel(A), 200),
        job(1, 6, 7, Get(A), 200, JobStatus.CANCELLED),
    ]
    assert_ok(check(history, JOB_MODEL))
    assert_illegal(check(history + [job(0, 8, 9, Get(A), 200, PENDING)], JOB_MODEL))
    assert_illegal(check(history + [job(0, 8, 9, Cancel(A), 400)], JOB_MODEL))


def test_cancel_of_a_finished_job_is_refused_and_stays_refused() -> None:
    refused = [job(0, 0, 1, Create(A, 1), 200), job(0, 2, 3, Cancel(A), 400)]
    assert_ok(check(refused, JOB_MODEL))
    assert_illegal(check(refused + [job(1, 4, 5, Get(A), 200, PENDING)], JOB_MODEL))
    assert_illegal(check(refused + [job(1, 4, 5, Cancel(A), 200)], JOB_MODEL))
    # The refusal only says "finished": which outcome shows once, then for good.
    failed = refused + [job(1, 4, 5, Get(A), 200, JobStatus.FAILED)]
    assert_ok(check(failed + [job(1, 6, 7, Get(A), 200, JobStatus.FAILED)], JOB_MODEL))
    assert_illegal(check(failed + [job(1, 6, 7, Get(A), 200, JobStatus.COMPLETED)], JOB_MODEL))


def test_an_outcome_status_alone_does_not_say_finished() -> None:
    # completed may be an occurrence of a recurring job, before its next run.
    history = [
        job(0, 0, 1, Create(A, 1), 200),
        job(1, 2, 3, Get(A), 200, JobStatus.COMPLETED),
        job(1, 4, 5, Get(A), 200, PENDING),
        job(0, 6, 7, Cancel(A), 200),
    ]
    assert_ok(check(history, JOB_MODEL))


def test_absent_jobs_answer_404_to_everything_but_create() -> None:
    history = [
        job(0, 0, 1, Get(A), 404),
        job(0, 2, 3, Delete(A), 404),
        job(0, 4, 5, Cancel(A), 404),
    ]
    assert_ok(check(history, JOB_MODEL))
    assert_illegal(check([job(0, 0, 1, Delete(A), 204)], JOB_MODEL))


def test_an_unknown_cancel_may_leave_the_job_live_or_cancel_it() -> None:
    base = [job(0, 0, 1, Create(A, 1), 200), Operation.unknown(1, 2, Cancel(A))]
    for status in (PENDING, JobStatus.CANCELLED, JobStatus.COMPLETED):
        assert_ok(check(base + [job(2, 5, 6, Get(A), 200, status)], JOB_MODEL))
    seen = base + [job(2, 5, 6, Get(A), 200, JobStatus.CANCELLED)]
    assert_illegal(check(seen + [job(2, 7, 8, Get(A), 200, PENDING)], JOB_MODEL))


def test_an_unknown_delete_may_be_applied_later() -> None:
    history = [
        job(0, 0, 1, Create(A, 1), 200),
        Operation.unknown(1, 2, Delete(A)),
        job(2, 3, 4, Get(A), 200, PENDING),
        job(2, 5, 6, Get(A), 404),
    ]
    assert_ok(check(history, JOB_MODEL))
    assert_illegal(check(history + [job(2, 7, 8, Get(A), 200, PENDING)], JOB_MODEL))


def test_unexpected_codes_are_rejected() -> None:
    assert_illegal(check([job(0, 0, 1, Create(A, 1), 500)], JOB_MODEL))
    assert_illegal(check([job(0, 0, 1, Get(A), 200, PENDING)], JOB_MODEL))


# --- property: real executions of the state machine are accepted ------------------------

IDS = ("a", "b", "c")


class Simulation:
    """The real state machine (scheduled_db.state.fsm), answered as actors/api/jobs.py does."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.machine = Machine()
        self.now = 10_000
        self.term = 1

    def client(self, inp: JobInput) -> Reply:
        self.now += 1
        if isinstance(inp, Get):
            found = Txn(self.machine.state).get_job(inp.job_id)
            return Reply(404) if found is None else Reply(200, found.status)
        if isinstance(inp, Create):
            assert isinstance(inp.body, tuple)  # (recurring?, payload number)
            body = spec(inp.job_id, recurring=inp.body[0], payload={"n": inp.body[1]})
            return self._create(self.machine.one(c.CreateJob(body, self.now, self.now + 10)))
        if isinstance(inp, Delete):
            code = self.machine.one(c.DeleteJob(inp.job_id)).code
            return Reply(204 if code is ResultCode.OK else 404)
        return self._cancel(self.machine.one(c.CancelJob(inp.job_id, self.now)).code)

    def _create(self, result: Any) -> Reply:
        if result.code is ResultCode.OK:
            return Reply(self.rng.choice((200, 201)))
        return Reply(200 if result.code is ResultCode.EXISTS_IDENTICAL else 409)

    @staticmethod
    def _cancel(code: ResultCode) -> Reply:
        if code in (ResultCode.OK, ResultCode.UNCHANGED):
            return Reply(200)
        return Reply(404 if code is ResultCode.NOT_FOUND else 400)

    def scheduler(self, job_id: str) -> None:
        """One move the scheduler might make; the machine rejects the invalid ones."""
        self.now += 1
        ex = Txn(self.machine.state).get_exec(job_id)
        occ, n, now, rng = ex.occurrence_ms or 0, ex.attempt, self.now, self.rng
        self.term += rng.random() < 0.2
        status = rng.choice((JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT))
        retry = now + 5 if status is not JobStatus.COMPLETED and rng.random() < 0.5 else None
        final = rng.choice((None, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT))
        move = rng.choice(
            (
                c.ClaimOccurrence(job_id, occ, n + 1, "n1", self.term, now),
                c.RecordOutcome(job_id, occ, n, status, now, retry_at_ms=retry),
                c.CompleteOccurrence(job_id, occ, rng.choice((None, now + 100)), final, now),
            )
        )
        self.machine.one(move)


def random_input(rng: random.Random, ids: Sequence[str] = IDS) -> JobInput:
    job_id = rng.choice(ids)
    kind = rng.choices((Create, Get, Delete, Cancel), weights=(4, 6, 1, 2))[0]
    if kind is Create:
        return Create(job_id, (rng.random() < 0.5, rng.choice((1, 1, 2))))
    return Get(job_id) if kind is Get else Delete(job_id) if kind is Delete else Cancel(job_id)


def sequential_run(rng: random.Random, length: int) -> Iterator[tuple[JobInput, Reply | None]]:
    """Client operations in the order they took effect; None: never applied (lost)."""
    sim = Simulation(rng)
    for _ in range(length):
        for _ in range(rng.choice((0, 0, 1, 3))):
            sim.scheduler(rng.choice(IDS))
        inp = random_input(rng)
        if not isinstance(inp, Get) and rng.random() < 0.05:
            yield inp, None
        else:
            yield inp, sim.client(inp)


def timed_history(rng: random.Random, run: list[tuple[JobInput, Reply | None]]) -> list[Operation]:
    """Op i takes effect at time i; its interval is widened around that instant, and
    some answers are dropped (unknown outcome, applied or not)."""
    spread = rng.choice((0.4, 2.0, 6.0))
    history = []
    for i, (inp, out) in enumerate(run):
        client = rng.randrange(6)
        call = i - rng.uniform(0, spread)
        if out is None or rng.random() < 0.08:
            history.append(Operation.unknown(client, call, inp))
        else:
            history.append(Operation(client, call, i + rng.uniform(0, spread), inp, out))
    rng.shuffle(history)
    return history


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 80))
def test_real_executions_are_linearizable(seed: int, length: int) -> None:
    rng = random.Random(seed)
    history = timed_history(rng, list(sequential_run(rng, length)))
    assert_ok(check(history, JOB_MODEL))


def test_a_busy_history_checks_fast() -> None:
    """Hundreds of ops over 20 keys with 8 clients: bounded work, not exhaustive search."""
    rng = random.Random(7)
    sim = Simulation(rng)
    ids = [f"job-{k}" for k in range(20)]
    history = []
    for i in range(400):
        for _ in range(rng.choice((0, 1, 2))):
            sim.scheduler(rng.choice(ids))
        inp = random_input(rng, ids)
        out = sim.client(inp)
        history.append(Operation(i % 8, i - rng.uniform(0, 8), i + rng.uniform(0, 8), inp, out))
    result = check(history, JOB_MODEL, max_steps=50_000)
    assert_ok(result)
