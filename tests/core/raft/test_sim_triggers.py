"""The simulator's triggered runs (scheduled_db/testing/sim_jobs.py): that the seeds
exercise them, takeovers included, and that its checks can fail."""

from __future__ import annotations

from typing import Any

import pytest

from scheduled_db.state import commands as c
from scheduled_db.state import fsm
from scheduled_db.state import triggers as g
from scheduled_db.state.results import CommandResult
from scheduled_db.state.txn import Txn
from scheduled_db.testing import sim


def _first(seeds: int, words: tuple[str, ...]) -> str | None:
    """The first violation naming one of ``words`` over the first ``seeds`` seeds."""
    for seed in range(seeds):
        for v in sim.run_seed(seed).violations:
            if any(w in v for w in words):
                return v
    return None


def test_the_seeds_ask_for_runs_deliver_them_and_take_over_open_claims() -> None:
    asked = delivered = taken_over = 0
    for seed in range(12):
        s = sim.Simulation(seed, 3 if seed % 2 == 0 else 5)
        result = s.run()
        assert result.violations == [], result.violations[:2]
        asked += result.runs_asked
        delivered += result.deliveries
        taken_over += sum(len({x.term for x in sent}) > 1 for sent in s.triggers.sent.values())
    assert asked > 100 and delivered >= asked
    assert taken_over > 0  # some run was delivered in two terms: a new leader fired it again


def test_a_leader_that_delivers_without_its_lease_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sim.SimNode, "lease_until", lambda self: 10**12)
    # Deterministic: seed 141 is the first whose faults catch it (rare: the deposed
    # leader must still deliver after a newer term was elected).
    assert _first(160, ("while term", "after a newer term")) is not None


def test_a_trigger_that_touches_the_job_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def touching(tx: Txn, cmd: c.TriggerJob) -> CommandResult:
        job = tx.get_job(cmd.job_id)
        if job is not None:
            tx.put_job(job, job.evolve(attempt_count=job.attempt_count + 1))
        return g.trigger(tx, cmd)

    handlers: dict[type[Any], Any] = fsm._HANDLERS
    monkeypatch.setitem(handlers, c.TriggerJob, touching)
    assert _first(3, ("wrote outside its run's keys",)) is not None


def test_a_scheduler_that_fires_an_old_claim_without_claiming_again_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new leader must claim the next attempt before it fires a run an older term
    left open; firing the old claim as it is breaks claim before fire."""
    keep = sim.sim_jobs.schedule

    def careless(
        jobs: Any, node_id: str, term: int, now: int, propose: Any, deliver: Any, **kw: Any
    ) -> None:
        keep(jobs, node_id, term, now, propose, deliver, **kw)
        for a in sim.sim_jobs.queries.open_claims(jobs.state):
            if (
                a.trigger
                and a.term < term
                and (a.job_id, a.scheduled_at_ms, a.attempt_num) not in jobs.sent
            ):
                jobs.sent[(a.job_id, a.scheduled_at_ms, a.attempt_num)] = now
                deliver(a)

    monkeypatch.setattr(sim.sim_jobs, "schedule", careless)
    assert _first(30, ("without its open claim",)) is not None
