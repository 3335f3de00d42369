"""The SchedulerActor with real Raft and Storage actors and an injected clock.

A probe stands in for the WebhookActor (it records every Deliver); the test
answers with DeliveryOutcomes and moves the clock, then tells the scheduler to
wake.  Waits are bounded conditions, never sleeps.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.raft.actor import RaftActor, RaftSettings
from actors.raft.messages import GetRaftStatus, Leadership, Propose, ProposeOutcome
from actors.runtime.clock import now_ms
from actors.runtime.replies import wait_reply
from actors.scheduler import actor as scheduler_mod
from actors.scheduler.actor import SchedulerActor, SchedulerSettings
from actors.scheduler.messages import Wake
from actors.storage.actor import StorageActor
from actors.storage.messages import Applied, Read
from actors.storage.store import NodeStore
from actors.webhook.messages import AbortAll, Deliver, DeliveryOutcome, Withdraw
from scheduled_db.config.loading import load_config
from scheduled_db.jobs.model import (
    Job,
    JobSpec,
    JobStatus,
    JobType,
    MisfirePolicy,
    Overlap,
    SkipReason,
)
from scheduled_db.state import commands as c
from scheduled_db.state.reads import GetExecutions, GetJob
from scheduled_db.state.results import CommandResult, EntryResult, ResultCode
from tests.actors.probe import Inbox, start_probe

T = 10.0  # seconds: the bound on waiting for an actor's answer

T0 = 1_900_000_000_000  # the test's "now" (ms)
URL = "http://receiver.example/hook"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class World:
    clock: Clock
    storage: pykka.ActorRef[Any]
    raft: pykka.ActorRef[Any]
    scheduler: pykka.ActorRef[Any]
    webhook: Inbox
    webhook_ref: pykka.ActorRef[Any] | None = None

    def sent_so_far(self) -> list[Deliver]:
        """Every Deliver the scheduler has sent until now: a marker told to the probe
        after the scheduler's last handled message arrives after them."""
        assert self.webhook_ref is not None
        marker = object()
        self.scheduler.ask(Wake())
        self.webhook_ref.tell(marker)
        self.webhook.wait_for(object, lambda m: m is marker)
        return self.webhook.of_type(Deliver)

    def propose(self, cmd: c.Command) -> ProposeOutcome:
        box = Inbox()
        self.raft.tell(Propose(c.encode_command(cmd), box.put))
        return box.wait_for(ProposeOutcome)

    def job(self, job_id: str) -> Job:
        job = wait_reply(self.storage, lambda r: Read(0, GetJob(job_id), r), T).value
        assert job is not None
        return job

    def wait_job(self, job_id: str, pred: Callable[[Job], bool]) -> Job:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if pred(job):
                return job
            self.scheduler.tell(Wake())
            self.scheduler.ask(Wake())  # a barrier: everything before it is handled
        raise AssertionError(f"job {job_id} never satisfied the condition: {self.job(job_id)}")

    def at(self, ms: int) -> None:
        self.clock.now = ms
        self.scheduler.ask(Wake())

    def delivers(self, n: int) -> list[Deliver]:
        deadline = time.monotonic() + 10
        while len(self.webhook.of_type(Deliver)) < n and time.monotonic() < deadline:
            self.scheduler.ask(Wake())
        got = self.webhook.of_type(Deliver)
        assert len(got) >= n, got
        return got

    def answer(self, d: Deliver, ok: bool, **kw: Any) -> None:
        """The outcome of ``d`` (a run record's carries its ``trigger``, as the
        WebhookActor's does)."""
        now = self.clock.now
        out = DeliveryOutcome(d.job_id, d.scheduled_at_ms, d.attempt, ok, now, now, now, **kw)
        self.scheduler.tell(replace(out, trigger=d.trigger))


def _world(tmp_path: Path, history_retention: str) -> Iterator[World]:
    config = load_config(
        {
            "node.id": "n1",
            "raft.heartbeat_interval": "20ms",
            "raft.election_timeout": "200ms",
            "scheduler.slot_gap": "1s",
            "scheduler.claim_ahead": "200ms",
            "execution.history_retention": history_retention,
            "execution.backoff_cap": "1s",  # retries within a test
        },
        {},
        None,
        "test",
    )
    store = NodeStore.open(tmp_path / "n1", "n1")
    store.bootstrap(("n1",))
    storage = StorageActor.start(store)
    raft = RaftActor.start(
        RaftSettings.from_config("n1", config.raft), store.log, store.applied()[0], storage, seed=1
    )
    hook_ref, hook = start_probe()
    clock = Clock()
    settings = replace(SchedulerSettings.from_config(config), prune_every_ms=10_000)
    sched = SchedulerActor.start(settings, raft, storage, hook_ref, clock=clock, seed=7)
    w = World(clock, storage, raft, sched, hook, hook_ref)
    _wait_active(w)
    yield w
    for ref in (sched, raft, storage, hook_ref):
        ref.stop()


def _wait_active(w: World) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if w.scheduler.proxy().active.get():
            return
    raise AssertionError("the scheduler never became active")


def _create(w: World, spec: JobSpec, first_run: int) -> None:
    assert w.propose(c.CreateJob(spec, T0 - 5_000, first_run)).error is None


def _unico(job_id: str, at: int, url: str | None = URL) -> JobSpec:
    return JobSpec(id=job_id, type=JobType.UNICO, timestamp_ms=at, webhook_url=url)


def test_claims_before_firing_and_fires_at_its_own_time(world: World) -> None:
    due = T0 + 10_000
    _create(world, _unico("a", due), due)
    world.at(due - 1_000)
    assert world.job("a").status is JobStatus.PENDING
    world.at(due - 150)  # within claim_ahead: the claim commits, nothing fires yet
    job = world.wait_job("a", lambda j: j.status is JobStatus.IN_PROGRESS)
    assert job.attempt_count == 1 and job.executing_node_id == "n1"
    assert world.sent_so_far() == []
    world.at(due - scheduler_mod.HAND_OVER_AHEAD_MS - 1)
    assert world.sent_so_far() == []
    # Handed to the WebhookActor ahead of its time, to be sent at it, not before.
    world.at(due - scheduler_mod.HAND_OVER_AHEAD_MS)
    (d,) = world.delivers(1)
    assert (d.job_id, d.scheduled_at_ms, d.attempt, d.url) == ("a", due, 1, URL)
    assert d.not_before_ms == due
    world.answer(d, ok=True, http_status=200)
    done = world.wait_job("a", lambda j: j.status is JobStatus.COMPLETED)
    assert done.completed_at_ms is not None


def test_a_retryable_failure_retries_the_same_occurrence(world: World) -> None:
    due = T0 + 1_000
    _create(world, _unico("r", due), due)
    world.at(due)
    (first,) = world.delivers(1)
    world.answer(first, ok=False, http_status=500, error_type="http_error", retryable=True)
    failed = world.wait_job("r", lambda j: j.status is JobStatus.FAILED)
    assert failed.next_run_at_ms is not None and failed.next_run_at_ms > due
    world.at(failed.next_run_at_ms)
    second = world.delivers(2)[1]
    assert (second.scheduled_at_ms, second.attempt) == (due, 2)  # same idempotency key
    world.answer(second, ok=True, http_status=200)
    world.wait_job("r", lambda j: j.status is JobStatus.COMPLETED)


def test_a_non_retryable_failure_fails_at_once(world: World) -> None:
    due = T0 + 1_000
    _create(world, _unico("f", due), due)
    world.at(due)
    (d,) = world.delivers(1)
    world.answer(d, ok=False, http_status=404, error_type="http_error", retryable=False)
    job = world.wait_job("f", lambda j: j.completed_at_ms is not None)
    assert job.status is JobStatus.FAILED


def test_a_job_without_a_webhook_completes_at_its_time(world: World) -> None:
    due = T0 + 1_000
    _create(world, _unico("quiet", due, url=None), due)
    world.at(due)
    world.wait_job("quiet", lambda j: j.status is JobStatus.COMPLETED)
    assert world.webhook.of_type(Deliver) == []


def test_a_recurring_job_moves_on_to_its_next_run(world: World) -> None:
    spec = JobSpec(
        id="rec", type=JobType.RECURRENTE, cron_expression="*/10 * * * * *", webhook_url=URL
    )
    first = (T0 // 10_000 + 1) * 10_000
    _create(world, spec, first)
    world.at(first)
    (d,) = world.delivers(1)
    world.answer(d, ok=True, http_status=200)
    job = world.wait_job("rec", lambda j: j.next_run_at_ms == first + 10_000)
    assert job.status is JobStatus.PENDING


def test_a_missed_run_of_a_skip_job_moves_on_without_firing(world: World) -> None:
    spec = JobSpec(
        id="skip",
        type=JobType.RECURRENTE,
        cron_expression="0 * * * *",
        webhook_url=URL,
        misfire_policy=MisfirePolicy.SKIP,
    )
    missed = (T0 // 3_600_000 - 2) * 3_600_000  # two hours ago
    _create(world, spec, missed)
    job = world.wait_job("skip", lambda j: (j.next_run_at_ms or 0) > T0)
    assert job.status is JobStatus.PENDING
    assert world.webhook.of_type(Deliver) == []


def test_a_claim_left_by_an_older_term_fires_again_with_the_same_key(world: World) -> None:
    due = T0 - 1_000
    world.scheduler.tell(Leadership("n1", 1, False, False))  # idle while we plant the claim
    _create(world, _unico("lost", due), due)
    claim = c.ClaimOccurrence("lost", due, 1, "n0", 0, due)  # an older leader's claim
    assert world.propose(claim).results[0].code.value == "ok"
    status = wait_reply(world.raft, GetRaftStatus, T)
    world.scheduler.tell(Leadership("n1", status.term, True, True))
    (d,) = world.delivers(1)
    assert (d.scheduled_at_ms, d.attempt) == (due, 2)


def test_a_claim_an_older_term_made_ahead_fires_at_its_time_not_at_the_takeover(
    world: World,
) -> None:
    """Claims are made claim_ahead before the run: a new leader that finds one open
    fires it when it is due, never earlier (a graceful hand-over just before a
    burst sent every claimed run at once, up to claim_ahead early)."""
    due = T0 + 150  # within claim_ahead (200 ms) of now, so an old leader claimed it
    world.scheduler.tell(Leadership("n1", 1, False, False))
    _create(world, _unico("ahead", due), due)
    claim = c.ClaimOccurrence("ahead", due, 1, "n0", 0, due - 200)
    assert world.propose(claim).results[0].code.value == "ok"
    status = wait_reply(world.raft, GetRaftStatus, T)
    world.scheduler.tell(Leadership("n1", status.term, True, True))
    # The new leader claims the next attempt of the same occurrence; once that claim
    # is applied (and the scheduler has handled its answer), it must still be waiting.
    world.wait_job("ahead", lambda j: j.attempt_count == 2)
    world.scheduler.ask(Wake())  # a barrier: the claim's answer is handled
    assert world.webhook.of_type(Deliver) == []
    world.at(due)
    (d,) = world.delivers(1)
    assert (d.scheduled_at_ms, d.attempt, d.not_before_ms) == (due, 2, due)


def test_a_fenced_delivery_is_sent_again_while_leadership_lasts(world: World) -> None:
    """A delivery the lease stopped (nothing sent) keeps its claim and goes again."""
    due = T0 + 1_000
    _create(world, _unico("fenced", due), due)
    world.at(due)
    (d,) = world.delivers(1)
    world.answer(d, ok=False, error_type="fenced")
    # Handed over again at once (the retry is sooner than HAND_OVER_AHEAD_MS), to be
    # sent FENCED_RETRY_MS later.
    again = world.delivers(2)[1]
    assert (again.scheduled_at_ms, again.attempt) == (d.scheduled_at_ms, d.attempt)
    assert again.not_before_ms == due + scheduler_mod.FENCED_RETRY_MS


def test_losing_leadership_idles_the_scheduler_and_aborts_deliveries(world: World) -> None:
    due = T0 + 1_000
    _create(world, _unico("gone", due), due)
    world.at(due)
    world.delivers(1)
    world.scheduler.tell(Leadership("n2", 99, False, False))
    world.webhook.wait_for(AbortAll)  # the probe handles it on its own thread
    assert not world.scheduler.proxy().active.get()


def test_storage_tells_the_scheduler_what_it_applies_only_while_it_is_active(
    world: World,
) -> None:
    """An idle (follower's) scheduler drops every Applied event, so storage does not
    send them: each woke its thread for nothing.  It subscribes again when it becomes
    active, before it reads the window, and a job created then is still fired."""

    (storage,) = (  # the actor behind the ref: pykka shows no private field through it
        o for o in gc.get_objects() if isinstance(o, pykka.Actor) and o.actor_ref == world.storage
    )

    def subscribed() -> bool:
        # A barrier first: storage has handled what the scheduler told it before.
        wait_reply(world.storage, lambda r: Read(0, GetJob("none"), r), T)
        return world.scheduler in storage._subscribers

    world.scheduler.ask(Wake())
    assert subscribed()
    world.scheduler.tell(Leadership("n2", 99, False, False))
    world.scheduler.ask(Wake())
    assert not subscribed()
    due = T0 + 1_000
    _create(world, _unico("while-idle", due), due)
    status = wait_reply(world.raft, GetRaftStatus, T)
    world.scheduler.tell(Leadership("n1", status.term, True, True))
    world.scheduler.ask(Wake())
    assert subscribed()
    world.at(due)
    (d,) = world.delivers(1)
    assert d.job_id == "while-idle"


def test_only_the_hot_window_is_held_and_it_refills_as_time_passes(world: World) -> None:
    """Memory holds what is due within the window (60 s here), not every job."""
    near, far = T0 + 30_000, T0 + 300_000
    _create(world, _unico("near", near), near)
    _create(world, _unico("far", far), far)
    world.at(T0 + 1_000)
    held = world.scheduler.proxy().due.get()
    assert "near" in held and "far" not in held
    world.at(far - 50_000)  # a refill after the window has moved over "far"
    deadline = time.monotonic() + 10
    while "far" not in world.scheduler.proxy().due.get() and time.monotonic() < deadline:
        world.scheduler.ask(Wake())
    assert "far" in world.scheduler.proxy().due.get()


def test_finished_jobs_and_their_history_are_pruned_after_the_retention(
    short_memory: World,
) -> None:
    w = short_memory
    due = T0 + 1_000
    _create(w, _unico("old", due), due)
    w.at(due)
    (d,) = w.delivers(1)
    w.answer(d, ok=True, http_status=200)
    w.wait_job("old", lambda j: j.status is JobStatus.COMPLETED)
    w.at(due + 30_000)  # within the retention: kept, with its history
    assert wait_reply(w.storage, lambda r: Read(0, GetJob("old"), r), T).value is not None
    w.at(due + 120_000)  # past it: the next prune removes it
    deadline = time.monotonic() + 10
    while wait_reply(w.storage, lambda r: Read(0, GetJob("old"), r), T).value is not None:
        assert time.monotonic() < deadline, "the finished job was never pruned"
        w.scheduler.ask(Wake())
    assert wait_reply(w.storage, lambda r: Read(0, GetExecutions("old"), r), T).value == ()


def test_outcomes_wait_while_a_burst_fires_and_then_are_recorded(world: World) -> None:
    a_due, b_due = T0 + 1_000, T0 + 1_010  # b is due within FIRING_SOON_MS of a
    _create(world, _unico("a", a_due), a_due)
    _create(world, _unico("b", b_due), b_due)
    world.at(a_due)
    a, b = world.delivers(2)  # b handed over, to be sent at its time
    assert b.not_before_ms == b_due
    world.answer(a, ok=True, http_status=200)
    answered = now_ms()
    while now_ms() <= answered + 2 * scheduler_mod.OUTCOME_FLUSH_MS:  # past a flush
        world.scheduler.ask(Wake())
    # Held, not read yet (reading it costs the burst's CPU), and not proposed.
    held = DeliveryOutcome("a", a_due, 1, True, a_due, a_due, a_due, http_status=200)
    assert world.scheduler.proxy().unread.get() == [held]
    assert world.job("a").status is JobStatus.IN_PROGRESS
    world.at(b_due)  # b fires; nothing else is due: the held outcome goes out
    world.wait_job("a", lambda j: j.status is JobStatus.COMPLETED)
    assert world.scheduler.proxy().unread.get() == []


def test_a_held_outcome_is_recorded_after_the_longest_delay(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_mod, "OUTCOME_MAX_DELAY_MS", 50)
    a_due, b_due = T0 + 1_000, T0 + 1_010
    _create(world, _unico("a", a_due), a_due)
    _create(world, _unico("b", b_due), b_due)
    world.at(a_due)
    a, b = world.delivers(2)  # b handed over, to be sent at its time
    world.answer(a, ok=True, http_status=200)
    # The scheduler's clock stays before b's time, so the burst never ends; the
    # outcome still goes out once it has waited OUTCOME_MAX_DELAY_MS (real time).
    world.wait_job("a", lambda j: j.status is JobStatus.COMPLETED)
    assert world.job("b").status is JobStatus.IN_PROGRESS
    assert world.webhook.of_type(Deliver) == [a, b]


def test_a_claim_paused_before_its_time_is_not_sent_and_goes_out_on_resume(world: World) -> None:
    due = T0 + 10_000
    _create(world, _unico("hold", due), due)
    world.at(due - 150)  # claimed (claim_ahead 200 ms), armed, not yet handed over
    world.wait_job("hold", lambda j: j.status is JobStatus.IN_PROGRESS)
    assert world.propose(c.PauseJob("hold")).results[0].code.value == "ok"
    world.at(due + 5_000)  # past its time, paused: nothing is sent
    assert world.webhook.of_type(Deliver) == []
    assert world.propose(c.ResumeJob("hold")).results[0].code.value == "ok"
    (d,) = world.delivers(1)  # the claim held since the pause: same attempt, same key
    assert (d.job_id, d.scheduled_at_ms, d.attempt) == ("hold", due, 1)


@pytest.mark.parametrize("resume_first", [False, True])
def test_a_pause_takes_back_a_delivery_handed_over_ahead_of_its_time(
    world: World, resume_first: bool
) -> None:
    """Handed to the WebhookActor before its time, then paused: the scheduler asks for
    it back; once the WebhookActor answers that it was withdrawn, nothing sent, the
    claim is held for the resume (or, resumed meanwhile, handed over again)."""
    due = T0 + 10_000
    _create(world, _unico("taken", due), due)
    world.at(due - 50)  # claimed and handed over, due in 50 ms
    (d,) = world.delivers(1)
    assert world.propose(c.PauseJob("taken")).results[0].code.value == "ok"
    withdraw = world.webhook.wait_for(Withdraw)
    assert withdraw == Withdraw("taken", ((due, False),))
    if resume_first:
        assert world.propose(c.ResumeJob("taken")).results[0].code.value == "ok"
    world.scheduler.ask(Wake())  # the pause (and resume) handled before the answer
    world.answer(d, ok=False, error_type="withdrawn")
    if not resume_first:
        world.at(due + 5_000)  # past its time, paused: it stays held
        assert world.sent_so_far() == [d]
        assert world.job("taken").status is JobStatus.IN_PROGRESS
        assert world.propose(c.ResumeJob("taken")).results[0].code.value == "ok"
    again = world.delivers(2)[1]  # the same claim: same attempt, same key
    assert (again.job_id, again.scheduled_at_ms, again.attempt) == ("taken", due, 1)
    assert again.not_before_ms >= due
    world.answer(again, ok=True, http_status=200)
    world.wait_job("taken", lambda j: j.status is JobStatus.COMPLETED)


def test_a_job_updated_while_its_claim_was_proposed_fires_on_its_new_time(world: World) -> None:
    due = T0 + 10_000
    spec = _unico("moved", due)
    _create(world, spec, due)
    # The update commits first; the scheduler's claim, made for the old time, is
    # refused as stale when it commits after it.
    world.scheduler.tell(Leadership("n1", 1, False, False))  # idle while we reorder
    new_due = due + 500
    moved = replace(spec, timestamp_ms=new_due)
    assert world.propose(c.UpdateJob(moved, new_due, 1)).results[0].code.value == "ok"
    stale = c.ClaimOccurrence("moved", due, 1, "n1", 0, due - 100)
    assert world.propose(stale).results[0].code.value == "stale"
    status = wait_reply(world.raft, GetRaftStatus, T)
    world.scheduler.tell(Leadership("n1", status.term, True, True))
    world.at(due)
    assert world.webhook.of_type(Deliver) == []  # not at the old time
    world.at(new_due)
    (d,) = world.delivers(1)
    assert (d.scheduled_at_ms, d.attempt) == (new_due, 1)


def test_a_delivery_taken_back_by_a_pause_is_not_sent_once_its_job_is_cancelled(
    world: World,
) -> None:
    """Paused after the hand-over, then cancelled before the WebhookActor answered the
    Withdraw: its answer (withdrawn) must not hand the delivery over again."""
    due = T0 + 10_000
    _create(world, _unico("gone", due), due)
    world.at(due - 50)
    (d,) = world.delivers(1)
    assert world.propose(c.PauseJob("gone")).results[0].code.value == "ok"
    world.webhook.wait_for(Withdraw)
    assert world.propose(c.CancelJob("gone", due - 40)).results[0].code.value == "ok"
    world.scheduler.ask(Wake())  # the pause and the cancel handled before the answer
    world.answer(d, ok=False, error_type="withdrawn")
    world.at(due + 5_000)
    assert world.sent_so_far() == [d]


def test_runs_a_claim_held_across_a_pause_stood_for_are_recorded_as_paused(world: World) -> None:
    """Claimed just before a pause, sent after the resume 3.5 s later: the three runs
    due meanwhile were missed because of the pause, not overlapped by the delivery."""
    spec = JobSpec(id="tick", type=JobType.RECURRENTE, cron_expression="* * * * * *",
                   webhook_url=URL)  # fmt: skip
    due = T0 + 10_000
    _create(world, spec, due)
    world.at(due - 150)  # claimed (claim_ahead 200 ms), not yet handed over
    world.wait_job("tick", lambda j: j.status is JobStatus.IN_PROGRESS)
    assert world.propose(c.PauseJob("tick")).results[0].code.value == "ok"
    world.at(due + 3_500)
    assert world.propose(c.ResumeJob("tick")).results[0].code.value == "ok"
    (d,) = world.delivers(1)
    world.answer(d, True, http_status=200, response_time_ms=0)
    job = world.wait_job("tick", lambda j: j.status is JobStatus.PENDING)
    assert job.next_run_at_ms == due + 4_000
    history = wait_reply(world.storage, lambda r: Read(0, GetExecutions("tick"), r), T).value
    (entry,) = [a for a in history if a.status is JobStatus.SKIPPED]
    assert (entry.skip_reason, entry.scheduled_at_ms, entry.skipped_runs) == (
        SkipReason.PAUSED,
        due + 1_000,
        3,
    )


def test_an_allow_job_fires_its_next_run_on_time_while_the_last_is_in_flight(world: World) -> None:
    """Every second, a receiver that has not answered: each run goes out at its own
    time under its own key, marked as no manual run; a pause holds a run claimed ahead."""
    spec = JobSpec(id="tick", type=JobType.RECURRENTE, cron_expression="* * * * * *",
                   webhook_url=URL, overlap=Overlap.ALLOW)  # fmt: skip
    due = T0 + 10_000
    _create(world, spec, due)
    world.at(due)
    (first,) = world.delivers(1)
    world.at(due + 1_000)  # the first is still out
    first, second = world.delivers(2)
    assert [(d.scheduled_at_ms, d.trigger, d.scheduled) for d in (first, second)] == [
        (due, True, True),
        (due + 1_000, True, True),
    ]
    assert not first.manual and not second.manual
    world.answer(second, True, http_status=200)
    world.answer(first, True, http_status=200)

    def both_done(j: Job) -> bool:
        done = wait_reply(world.storage, lambda r: Read(0, GetExecutions("tick"), r), T).value
        return sum(a.status is JobStatus.COMPLETED for a in done) == 2

    world.wait_job("tick", both_done)
    world.at(due + 1_850)  # the run of due + 2 s is claimed ahead, not yet handed over
    assert world.propose(c.PauseJob("tick")).results[0].code.value == "ok"
    world.at(due + 3_500)
    assert len(world.webhook.of_type(Deliver)) == 2  # paused: nothing more went out
    assert world.propose(c.ResumeJob("tick")).results[0].code.value == "ok"
    third = world.delivers(3)[2]
    assert (third.scheduled_at_ms, third.attempt) == (due + 2_000, 1)


def test_a_claim_whose_reply_comes_after_the_pause_is_held_not_sent(world: World) -> None:
    """The claim commits before the pause, but the scheduler learns of the pause (an
    Applied event) before the claim's reply: it must hold the claim, not arm it.  The
    pause is given to the scheduler alone here, ahead of the claim, which is how it
    sees that order."""
    due = T0 + 10_000
    _create(world, _unico("late-reply", due), due)
    paused = world.job("late-reply").evolve(paused=True)
    pause = CommandResult(ResultCode.OK, c.CommandKind.PAUSE, "late-reply", paused)
    world.scheduler.tell(Applied(0, 0, (EntryResult(0, (pause,)),)))
    world.at(due - 100)  # the claim is proposed and commits (the state is not paused)
    claimed = world.wait_job("late-reply", lambda j: j.status is JobStatus.IN_PROGRESS)
    world.at(due + 1_000)
    assert world.sent_so_far() == []  # held: it waits for a resume
    resume = CommandResult(ResultCode.OK, c.CommandKind.RESUME, "late-reply", claimed)
    world.scheduler.tell(Applied(0, 0, (EntryResult(0, (resume,)),)))
    (d,) = world.delivers(1)  # the held claim goes out on the resume
    assert (d.scheduled_at_ms, d.attempt) == (due, 1)
