"""The SchedulerActor: fires due jobs from the leader, claiming each before it fires.

It is active only while this node's leadership is *established* (its first entry
of the term is applied) and goes idle the moment a :class:`Leadership` event says
otherwise; everything it holds belongs to one leadership *epoch*, and replies
from an older epoch are ignored.

While active:

* the hot window (:class:`~scheduled_db.firing.slots.SlotIndex`) holds the occurrences
  due before a horizon ``hot_window`` ahead, refilled from the storage's due index
  every ``slot_gap`` and kept current by the storage's ``Applied`` events;
* ``claim_ahead`` before an occurrence is due, its claim (job, occurrence,
  attempt, node, term) is proposed, together with every other claim due then, in
  one Raft entry; only a committed claim is *armed*;
* an armed occurrence fires at its own time (an alarm, not a poll): it is handed
  to the WebhookActor HAND_OVER_AHEAD_MS before (``not_before_ms``: its time), which
  readies it and sends it at that time, so a burst's Delivers are made and queued
  before the burst, not in it; a pause takes back those not sent yet (``Withdraw``).
  The WebhookActor delivers it, and the outcome is proposed with what comes next
  (a retry time, or the recurring job's next run, computed here); outcomes are
  batched, and held back while a burst is firing (see FIRING_SOON_MS);
* claims left open by an older term are fired again with the same idempotency
  key (at-least-once), at the time they were due, never earlier (claims are made
  ``claim_ahead`` before it); runs that came due shortly before this leader took
  over are caught up one by one (:func:`scheduled_db.firing.decisions.skip_missed`), so a
  failover costs a recurring job no run; this term's claims that were lost track
  of become ``timeout`` after ``inprogress_timeout`` and are retried while
  attempts remain;
* a delivery is sent only while this node's leader lease holds (actors/raft/lease.py);
  one that was not (``fenced``) is tried again shortly, unless this node has
  stopped leading by then;
* a run triggered by ``POST /jobs/{id}/trigger`` goes the same way (claimed, fired,
  retried, fired again by a new leader) under its own key, ``(job id, asked ms)``
  (:data:`~scheduled_db.firing.slots.SlotKey`), so it and the job's scheduled
  occurrence, keyed by the job id, can be in flight together: a manual run does not
  wait for a slow scheduled one, nor delay it; an ``overlap: allow`` job's
  occurrences start as such runs (``StartRun``: the job moves on to its next run
  at once), so they, too, may be in flight together, each under its own key;
* notices of outcomes (a job's ``on_failure``/``on_success``,
  :mod:`scheduled_db.state.notices`) are read with every refill and taken from
  ``Applied`` events, sent at their time, and settled: deleted once sent or
  given up on (after ``execution.max_attempts`` sends), or kept for a retry.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from random import Random
from typing import TYPE_CHECKING, Any

import pykka

from actors.raft.messages import Leadership, Propose, ProposeOutcome, SubscribeLeadership
from actors.runtime.clock import Alarm, now_ms
from actors.scheduler.messages import SchedulerProposed, Wake
from actors.storage.messages import (
    Applied,
    Read,
    ReadResult,
    SnapshotInstalled,
    Subscribe,
    Unsubscribe,
)
from actors.storage.proposed import Proposed
from actors.webhook import attempt as webhook_attempt
from actors.webhook.messages import (
    AbortAll,
    AbortDelivery,
    Deliver,
    DeliveryOutcome,
    DeliveryOutcomes,
    Withdraw,
)
from scheduled_db.config.model import NodeConfig
from scheduled_db.errors import safe_text
from scheduled_db.firing import decisions as firing
from scheduled_db.firing.slots import SlotIndex, SlotKey
from scheduled_db.jobs.model import Attempt, Job, JobSpec, JobStatus, Overlap, SkipReason
from scheduled_db.jobs.schedule import attempt_fire_ms, jitter_of
from scheduled_db.state import commands as c
from scheduled_db.state.queries import Due
from scheduled_db.state.reads import DueOccurrences, GetJob, GetNotices, GetOpenClaims, ListJobs
from scheduled_db.state.records import Notice
from scheduled_db.state.results import CommandResult, ResultCode

if TYPE_CHECKING:
    from actors.raft.actor import RaftActor
    from actors.storage.actor import StorageActor
    from actors.webhook.actor import WebhookActor

log = logging.getLogger(__name__)
K = c.CommandKind
# Outcomes are collected for this long and proposed as one Raft entry: under load
# that turns thousands of entries into a few, and it delays only the bookkeeping,
# never a firing.
OUTCOME_FLUSH_MS = 5
# Firing comes first.  In a burst (an armed occurrence due within FIRING_SOON_MS,
# BURST_IN_FLIGHT deliveries out, or one handed over and not due yet) the flush
# waits, since applying outcomes takes the CPU the deliveries need; for at most
# OUTCOME_MAX_DELAY_MS after the oldest outcome waiting (150: 2,000 deliveries due
# at once go out in about 100-150 ms on one core, without an apply in their way,
# and a failover's echo keeps a margin under the fault suite's 250 ms).
# That bound is also the window of deliveries a failover sends again (their
# outcomes were not committed): a leader lost mid-burst redelivers what it sent in
# roughly its last OUTCOME_MAX_DELAY_MS plus one commit.
FIRING_SOON_MS = 20
BURST_IN_FLIGHT = 32
OUTCOME_MAX_DELAY_MS = 150
# An armed occurrence with a webhook is handed to the WebhookActor this long before
# its time, to be sent at its time (see the module docstring); one without a webhook
# completes at its time, here.
HAND_OVER_AHEAD_MS = 100
# A delivery fenced by an ended lease is tried again after this long: by then this
# node has either renewed its lease or learnt that it no longer leads (and idles).
FENCED_RETRY_MS = 50
# A notice whose settle was proposed this long ago and is still read from the state
# lost its settle (a refused proposal): it is sent again.
SETTLE_WAIT_MS = 10_000
DUE_STATUSES = (JobStatus.PENDING, JobStatus.FAILED, JobStatus.TIMEOUT)


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The scheduler's settings: from the ``scheduler`` and ``execution`` config
    sections (whose key table holds the defaults), but for two internal rhythms."""

    node_id: str
    slot_gap_ms: int
    hot_window_ms: int
    claim_ahead_ms: int
    inprogress_timeout_ms: int
    history_retention_ms: int
    policy: firing.Policy
    prune_every_ms: int = 60_000  # how often finished history is pruned
    refill_limit: int = 50_000  # most due occurrences read in one refill

    @classmethod
    def from_config(cls, cfg: NodeConfig) -> SchedulerSettings:
        ex = cfg.execution
        policy = firing.Policy(
            max_attempts=ex.max_attempts,
            timeout_ms=ex.timeout_ms,
            backoff_base_ms=ex.backoff_base_ms,
            backoff_cap_ms=ex.backoff_cap_ms,
        )
        return cls(
            node_id=cfg.node.id,
            slot_gap_ms=cfg.scheduler.slot_gap_ms,
            hot_window_ms=cfg.scheduler.hot_window_ms,
            claim_ahead_ms=cfg.scheduler.claim_ahead_ms,
            inprogress_timeout_ms=ex.inprogress_timeout_ms,
            history_retention_ms=ex.history_retention_ms,
            policy=policy,
        )


@dataclass(frozen=True, slots=True)
class _Armed:
    """A committed claim, waiting for its fire time or out for delivery."""

    job: Job
    occurrence_ms: int
    attempt: int
    fire_at_ms: int = 0
    trigger: bool = False
    resumed: bool = False  # claimed before a pause, and sent after the resume
    scheduled: bool = False  # with trigger: an allow job's occurrence, not a manual run

    @property
    def key(self) -> SlotKey:
        return _key(self.job.id, self.occurrence_ms, self.trigger)


class SchedulerActor(pykka.ThreadingActor):
    """Leader-only scheduling; see the module docstring."""

    def __init__(
        self,
        settings: SchedulerSettings,
        raft: pykka.ActorRef[RaftActor],
        storage: pykka.ActorRef[StorageActor],
        webhook: pykka.ActorRef[WebhookActor],
        clock: Any = now_ms,
        seed: int | None = None,
        metrics: Any = None,
        proposed: Proposed | None = None,
    ) -> None:
        super().__init__()
        self.metrics = metrics
        # Where the commands proposed are remembered, so this node's storage applies
        # them without decoding their entries (actors/storage/proposed.py).
        self.proposed = proposed
        self.s = settings
        self.raft, self.storage, self.webhook = raft, storage, webhook
        self.clock = clock
        self.jitter = Random(seed)
        self.alarm = Alarm(self._ring, clock)
        self.flush_alarm = Alarm(self._ring)  # real time: batching is not scheduling
        self.epoch = 0
        self.term = 0
        self.active = False
        self.active_since = 0  # when (wall ms) this node's current term of firing began
        self._reads: dict[int, tuple[int, Any]] = {}
        self._read_ids = 0
        self._reset()

    def _reset(self) -> None:
        self.due: SlotIndex[Due] = SlotIndex(self.s.slot_gap_ms)
        self.claiming: dict[SlotKey, Due] = {}
        self.armed: SlotIndex[_Armed] = SlotIndex(self.s.slot_gap_ms)
        self.in_flight: dict[SlotKey, _Armed] = {}
        self.handed_until = 0  # the latest fire time of a delivery handed over
        # Job id -> asked ms of its triggered runs this scheduler has seen due: what a
        # cancel or delete of the job must drop (may name runs already finished).
        self.triggered: dict[str, set[int]] = {}
        # Committed claims of this term whose job was paused before they fired: not
        # sent, and armed again if the job is resumed while this node leads.
        self.held: dict[SlotKey, _Armed] = {}
        # Jobs this scheduler saw paused (and not resumed since): a claim committed
        # before the pause whose reply comes after it is held, not armed.
        self.paused: set[str] = set()
        # Runs an overlap policy of buffer_one kept (key -> occurrence): due already
        # when the run before them ended, they fire at once, whatever the misfire
        # policy says of late runs (a new leader does not know them: it applies it).
        self.buffered: dict[SlotKey, int] = {}
        # Notices of outcomes waiting for their time, and those being sent.
        self.notices: SlotIndex[Notice] = SlotIndex(self.s.slot_gap_ms)
        self.notices_out: dict[bytes, Notice] = {}
        # Notices whose settle is on its way (key -> when it was sent): a refill that
        # reads their record before the settle is applied must not send them again.
        self.notices_settling: dict[bytes, int] = {}
        self.horizon = 0
        self.next_refill = 0
        self.next_claim_check = 0
        self.next_prune = 0
        self.outbox: list[c.Command] = []
        # Outcomes that came while a burst was firing, read once it is over (or when
        # the flush can wait no longer): reading one costs the GIL the burst needs.
        self.unread: list[DeliveryOutcome] = []
        self.outbox_since = 0
        self.next_flush: int | None = None

    def _ring(self) -> None:
        try:
            self.actor_ref.tell(Wake())
        except pykka.ActorDeadError:
            self.alarm.stop()

    def on_start(self) -> None:
        self.alarm.start()
        self.flush_alarm.start()
        # Storage's Applied events come only while active (_leadership): a follower's
        # scheduler would drop each, and every one woke this thread for nothing.
        self.raft.tell(SubscribeLeadership(self.actor_ref))

    def on_stop(self) -> None:
        self.alarm.stop()
        self.flush_alarm.stop()
        if self.active:
            self._read_unread()
            self._flush()  # outcomes held back are proposed, not lost with us

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Leadership):
            self._leadership(message)
        elif not self.active:
            return  # followers never fire; stale replies die here
        elif isinstance(message, Wake):
            self._wake()
        elif isinstance(message, Applied):
            self._applied(message)
            self._wake()
        elif isinstance(message, ReadResult):
            self._read_done(message)
        elif isinstance(message, SchedulerProposed):
            self._proposed(message)
        elif isinstance(message, DeliveryOutcomes):
            self._outcomes(message.outcomes)
        elif isinstance(message, DeliveryOutcome):
            self._outcomes((message,))
        elif isinstance(message, SnapshotInstalled):
            self.next_refill = 0  # the state was replaced: reload the window

    # -- leadership --

    def _leadership(self, ev: Leadership) -> None:
        should = ev.is_leader and ev.established
        if should and (not self.active or ev.term != self.term):
            self.epoch += 1
            self.active, self.term = True, ev.term
            self.active_since = self.clock()
            self._reset()
            # Before the first read (the refill in _wake): storage answers in order, so
            # what it applied before this is in that read and what after, in an Applied.
            self.storage.tell(Subscribe(self.actor_ref))
            log.info("scheduler: active in term %d", ev.term)
            self._wake()
        elif not should and self.active:
            self.epoch += 1
            self.active = False
            self.storage.tell(Unsubscribe(self.actor_ref))
            if self.in_flight:
                self.webhook.tell(AbortAll())
            self._reset()
            self.alarm.set(None)
            log.info("scheduler: idle (no longer the established leader)")

    # -- reads and proposals, tagged with the epoch --

    def _read(self, query: Any, then: Any) -> None:
        self._read_ids += 1
        self._reads[self._read_ids] = (self.epoch, then)
        self.storage.tell(Read(self._read_ids, query, self.actor_ref.tell))

    def _read_done(self, msg: ReadResult) -> None:
        waiting = self._reads.pop(msg.request_id, None)
        if waiting is not None and waiting[0] == self.epoch and msg.error is None:
            waiting[1](msg.value)

    def _propose(self, purpose: str, commands: list[c.Command], keys: tuple[SlotKey, ...]) -> None:
        if not commands:
            return
        ref, epoch = self.actor_ref, self.epoch
        cmd = commands[0] if len(commands) == 1 else c.Batch(tuple(commands))

        def reply(outcome: ProposeOutcome) -> None:
            # Called on the Raft actor's thread; if we have stopped, nobody waits.
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(SchedulerProposed(epoch, purpose, keys, outcome))

        data = c.encode_command(cmd)
        if self.proposed is not None:
            self.proposed.remember(data, cmd)
        self.raft.tell(Propose(data, reply))

    def _proposed(self, msg: SchedulerProposed) -> None:
        if msg.epoch != self.epoch:
            return
        if msg.purpose != "claim":
            for r in msg.outcome.results:
                if self.metrics is not None:
                    for entry in r.skips:
                        reason = entry.skip_reason.value if entry.skip_reason else "unknown"
                        self.metrics.occurrences_skipped.labels(reason).inc(entry.skipped_runs)
                if not r.accepted:
                    job = safe_text(r.job_id)  # a job id is any text but "/" and controls
                    log.debug("scheduler: %s of %s refused: %s", r.kind, job, r.detail)
            return
        results = msg.outcome.results if msg.outcome.error is None else ()
        for key, result in zip(msg.keys, _pad(results, len(msg.keys)), strict=True):
            due = self.claiming.pop(key, None)
            if due is not None and result is not None and result.code is ResultCode.OK:
                assert result.job is not None and result.attempt is not None
                attempt = result.attempt.attempt_num
                run = result.trigger
                if run is not None and run.scheduled and not due.trigger:
                    self._started(result.job, due, attempt)  # an allow job's occurrence
                    continue
                claimed, occurrence, fire_at = result.job, due.occurrence_ms, due.fire_at_ms
                armed = _Armed(claimed, occurrence, attempt, fire_at, due.trigger, due.scheduled)
                self._arm_claimed(key, armed)
            elif result is not None and result.job is not None and isinstance(key, str):
                # Refused: the job changed while its claim was on the way (an update or
                # a resume gave it another run, which Applied did not add: the job was
                # busy being claimed).  Hold what it waits for now.  (A triggered run's
                # refused claim: its run is over or was claimed; the refill has the rest.)
                self._hold(key, result.job, None)
        self._wake()

    # -- the alarm --

    def _wake(self) -> None:
        now = self.clock()
        if now >= self.next_refill:
            self._refill(now)
        if now >= self.next_prune:
            self._prune(now)
        self._claim_due(now)
        for _, armed in self.armed.pop_due(now):
            self._fire(armed, now)
        for _, notice in self.notices.pop_due(now):
            self._send_notice(notice)
        if self.next_flush is not None and now_ms() >= self.next_flush:
            self._flush_unless_firing(now)
        self._arm()

    def _later(self, commands: tuple[c.Command, ...]) -> None:
        """Queue outcome commands for the next flush (see OUTCOME_FLUSH_MS)."""
        self.outbox.extend(commands)
        self._start_flush_clock()

    def _start_flush_clock(self) -> None:
        """Something waits for a flush: unless one is set, it is due in OUTCOME_FLUSH_MS
        and the wait counts from now (OUTCOME_MAX_DELAY_MS)."""
        if self.next_flush is None:
            self.outbox_since = now_ms()
            self.next_flush = self.outbox_since + OUTCOME_FLUSH_MS
            self.flush_alarm.set(self.next_flush)

    def _firing(self, now: int) -> bool:
        """Is a burst firing: deliveries out in numbers, one handed over and not due
        yet, or an armed occurrence due within FIRING_SOON_MS?"""
        if len(self.in_flight) - len(self.unread) >= BURST_IN_FLIGHT or now < self.handed_until:
            return True
        soon = self.armed.next_at()
        return soon is not None and soon <= now + FIRING_SOON_MS

    def _outcomes(self, outcomes: tuple[DeliveryOutcome, ...]) -> None:
        """Read the outcomes now, or, while a burst fires, once it is over: they wait
        with the outbox (at most OUTCOME_MAX_DELAY_MS), and only their bookkeeping
        waits, since a retry is at least a backoff away."""
        if not self.unread and not self._firing(self.clock()):
            for outcome in outcomes:
                self._delivered(outcome)
            return
        self.unread.extend(outcomes)
        self._start_flush_clock()

    def _read_unread(self) -> None:
        unread, self.unread = self.unread, []
        for outcome in unread:
            self._delivered(outcome)

    def _flush_unless_firing(self, now: int) -> None:
        real_now = now_ms()
        if self._firing(now):
            give_up_at = self.outbox_since + OUTCOME_MAX_DELAY_MS
            if real_now < give_up_at:
                self.next_flush = min(real_now + OUTCOME_FLUSH_MS, give_up_at)
                self.flush_alarm.set(self.next_flush)
                return
        self._read_unread()
        self._flush()

    def _flush(self) -> None:
        commands, self.outbox, self.next_flush = self.outbox, [], None
        self._propose("outcome", commands, tuple(_job_id(cmd) for cmd in commands))

    def _arm(self) -> None:
        times = [self.next_refill, self.next_prune]
        if (at := self.due.next_at()) is not None:
            times.append(at - self.s.claim_ahead_ms)
        if (at := self.armed.next_at()) is not None:
            times.append(at)
        if (at := self.notices.next_at()) is not None:
            times.append(at)
        self.alarm.set(min(times))

    def _claim_due(self, now: int) -> None:
        claims: list[c.Command] = []
        keys: list[SlotKey] = []
        skips: list[c.Command] = []
        for _, due in self.due.pop_due(now + self.s.claim_ahead_ms):
            key = _due_key(due)
            if self._busy(key):
                continue
            skip = None
            if self.buffered.pop(key, None) != due.occurrence_ms:  # a buffered run fires
                skip = firing.skip_missed(due, now, self.s.policy, self.active_since)
            if skip is not None:
                skips.append(skip)
                continue
            self.claiming[key] = due
            keys.append(key)
            node, term = self.s.node_id, self.term
            if not due.trigger and due.attempts == 0 and due.job.spec.overlap is Overlap.ALLOW:
                claims.append(firing.start_run(due, node, term, now, self.active_since))
            else:
                claims.append(firing.claim(due, node, term, now))
        self._propose("claim", claims, tuple(keys))  # claims due together: one entry
        self._propose("outcome", skips, ())

    def _fire(self, armed: _Armed, now: int) -> None:
        spec = armed.job.spec
        if spec.webhook_url is None:  # nothing to call: the occurrence completes now
            done = firing.Attempted(ok=True, end_ms=now)
            self._record(armed, done)
            return
        self.in_flight[armed.key] = armed
        self.handed_until = max(self.handed_until, armed.fire_at_ms)
        self.webhook.tell(
            Deliver(
                spec.id,
                spec.type.value,
                armed.occurrence_ms,
                armed.attempt,
                self.term,
                spec.webhook_url,
                spec.payload,
                self.s.policy.timeout_for(spec),
                self.actor_ref.tell,
                spec.signing_secret_ref,
                armed.fire_at_ms,
                armed.trigger,
                armed.job.traceparent,
                spec.http_method,
                spec.headers,
                _jittered(spec, armed),
                scheduled=armed.scheduled,
                batched=True,
            )
        )

    def _started(self, job: Job, due: Due, attempt: int) -> None:
        """An allow job's occurrence was claimed as a run of its own (StartRun): arm it
        under the run's key, and hold the job's next run, due while it is in flight."""
        run_key = (job.id, due.occurrence_ms)
        armed = _Armed(job, due.occurrence_ms, attempt, due.fire_at_ms, True, scheduled=True)
        self._arm_claimed(run_key, armed)
        self.triggered.setdefault(job.id, set()).add(due.occurrence_ms)
        self._hold(job.id, job, None)

    def _arm_claimed(self, key: SlotKey, armed: _Armed) -> None:
        """Arm a committed claim, or hold it if its job was paused after the claim
        committed and before its reply came (a manual run is never held)."""
        if armed.job.id in self.paused and (not armed.trigger or armed.scheduled):
            self.held[key] = armed
        else:
            self._arm_at(key, armed)

    def _arm_at(self, key: SlotKey, armed: _Armed) -> None:
        """Arm ``armed`` to go to the WebhookActor HAND_OVER_AHEAD_MS before its fire
        time, or, with no webhook to call, to complete at it."""
        ahead = 0 if armed.job.spec.webhook_url is None else HAND_OVER_AHEAD_MS
        self.armed.add(key, armed.fire_at_ms - ahead, armed)

    def _record(self, armed: _Armed, result: firing.Attempted) -> None:
        spec = armed.job.spec
        # When the occurrence's first attempt went out: runs due before it were missed,
        # runs due after it overlapped it (firing.complete).
        started = armed.job.first_attempt_at_ms
        if armed.attempt == 1 and result.response_time_ms is not None:
            started = result.end_ms - result.response_time_ms
        cmds = firing.after_attempt(
            spec,
            armed.occurrence_ms,
            armed.attempt,
            result,
            self.s.policy,
            self.jitter,
            self.active_since,
            armed.trigger,
            started,
            SkipReason.PAUSED if armed.resumed else SkipReason.MISFIRE,
        )
        if self.metrics is not None and len(cmds) == 1 and not result.ok:
            self.metrics.job_retries.inc()  # one command: the outcome with a retry time
        closing = cmds[-1]
        kept = closing.next_run_at_ms if isinstance(closing, c.CompleteOccurrence) else None
        if kept is not None and kept <= result.end_ms and spec.overlap is Overlap.BUFFER_ONE:
            self.buffered[armed.key] = kept  # a run due already, kept by the policy
        self._later(cmds)

    def _delivered(self, out: DeliveryOutcome) -> None:
        if out.notice is not None:
            self._notice_sent(out)
            return
        key = _key(out.job_id, out.scheduled_at_ms, out.trigger)
        armed = self.in_flight.get(key)
        if armed is None or (armed.occurrence_ms, armed.attempt) != (
            out.scheduled_at_ms,
            out.attempt,
        ):
            return
        del self.in_flight[key]
        if out.error_type == webhook_attempt.FENCED:
            # Not sent, and the claim still stands: try again once the lease has been
            # renewed, or drop it all when a Leadership event says we lost it.
            self._arm_at(key, replace(armed, fire_at_ms=self.clock() + FENCED_RETRY_MS))
            self._wake()
            return
        if out.error_type == webhook_attempt.ABORTED:
            return  # cancelled or deleted: the state machine has closed the attempt
        if out.error_type == webhook_attempt.WITHDRAWN:
            # Taken back by a pause before it was sent: held while the job stays
            # paused, else (resumed meanwhile) armed again, as a resume arms it.
            if armed.job.id in self.paused:
                self.held[key] = armed
            else:
                fire_at = max(armed.fire_at_ms, self.clock())
                resumed = armed.resumed or not armed.trigger
                self._arm_at(key, replace(armed, fire_at_ms=fire_at, resumed=resumed))
                self._wake()
            return
        self._record(armed, _attempted(out))

    # -- notices of outcomes --

    def _keep_notice(self, notice: Notice, settled: bool = False) -> None:
        """Hold ``notice`` for its time, unless it is being sent, or (read by a
        refill) its settle was sent within SETTLE_WAIT_MS; ``settled``: the record
        is the one a settle kept for its next try."""
        key = notice.key
        if settled:
            self.notices_settling.pop(key, None)
        settling = self.notices_settling.get(key)
        if settling is not None and self.clock() - settling < SETTLE_WAIT_MS:
            return
        self.notices_settling.pop(key, None)
        if key not in self.notices_out:
            self.notices.add(key, notice.next_at_ms, notice)

    def _send_notice(self, notice: Notice) -> None:
        self.notices_out[notice.key] = notice
        self.webhook.tell(
            Deliver(
                notice.job_id,
                "",
                notice.occurrence_ms,
                notice.tries + 1,
                self.term,
                notice.url,
                None,
                self.s.policy.timeout_ms,
                self.actor_ref.tell,
                notice.signing_secret_ref,
                trigger=notice.trigger,
                headers=notice.headers,
                notice=notice,
                batched=True,
            )
        )

    def _notice_sent(self, out: DeliveryOutcome) -> None:
        assert out.notice is not None
        notice = self.notices_out.pop(out.notice, None)
        if notice is None:
            return
        if out.error_type in (webhook_attempt.FENCED, webhook_attempt.ABORTED):
            # Not sent, or cut short (this node is stopping or no longer leads): the
            # record stands; try again shortly, or a new leader will.
            self.notices.add(notice.key, self.clock() + FENCED_RETRY_MS, notice)
            self._wake()
            return
        tries = notice.tries + 1
        retry_at = firing.notice_retry(tries, _attempted(out), self.s.policy, self.jitter)
        result = "sent" if out.ok else "retry" if retry_at is not None else "given_up"
        if result == "given_up":
            job = safe_text(notice.job_id)
            log.warning(
                "scheduler: the %s notice of %s (occurrence %d) was not delivered after %d "
                "tries: %s",
                notice.event,
                job,
                notice.occurrence_ms,
                tries,
                safe_text(out.error_message or out.error_type or "error"),
            )
        if self.metrics is not None:
            self.metrics.callbacks.labels(notice.event, result).inc()
        self.notices_settling[notice.key] = self.clock()
        settle = c.SettleNotice(
            notice.job_id,
            notice.occurrence_ms,
            notice.attempt,
            notice.trigger,
            notice.event,
            retry_at,
        )
        self._later((settle,))

    # -- keeping the window current --

    def _busy(self, key: SlotKey) -> bool:
        """Is an attempt of this occurrence being claimed, armed or delivered already?"""
        return (
            key in self.claiming or key in self.armed or key in self.in_flight or key in self.held
        )

    def _refill(self, now: int) -> None:
        self.next_refill = now + self.s.slot_gap_ms
        horizon = now + self.s.hot_window_ms
        self._read(DueOccurrences(horizon, self.s.refill_limit), self._refilled(horizon))
        if now >= self.next_claim_check:
            # Claims of older terms exist from the start of the term, so the first
            # check finds them; later ones only look for this term's lost claims,
            # which take inprogress_timeout to matter.  Reading every open claim is
            # not free in a burst (thousands of them), so not every slot gap.
            self.next_claim_check = now + max(self.s.slot_gap_ms, self.s.inprogress_timeout_ms // 4)
            self._read(GetOpenClaims(), self._check_open_claims)
        self._read(GetNotices(), self._notices_read)

    def _notices_read(self, found: tuple[Notice, ...]) -> None:
        for notice in found:
            self._keep_notice(notice)
        since = self.clock() - SETTLE_WAIT_MS  # the rest were settled: forget them
        self.notices_settling = {k: t for k, t in self.notices_settling.items() if t > since}
        self._wake()

    def _refilled(self, horizon: int) -> Any:
        def then(found: tuple[Due, ...]) -> None:
            for due in found:
                self._keep(due)
            full = len(found) >= self.s.refill_limit
            if full and found:
                # Jobs are read by their next run, and a jittered one fires later: what
                # was not read runs no earlier than the latest next run that was.
                read = max((d.job.next_run_at_ms or 0 for d in found if not d.trigger), default=0)
                self.horizon = min(found[-1].fire_at_ms, read or found[-1].fire_at_ms)
            else:
                self.horizon = horizon
            self._wake()

        return then

    def _applied(self, ev: Applied) -> None:
        for r in ev.results:
            for notice in r.notices:
                self._keep_notice(notice, settled=r.kind is K.SETTLE_NOTICE)
            if r.kind is K.SETTLE_NOTICE:
                continue  # not about the job's runs (its job may be gone)
            if r.changed and r.job_id is not None:
                self._track(r)

    def _keep(self, due: Due) -> None:
        """Keep ``due`` in the hot window, unless its occurrence is underway already."""
        key = _due_key(due)
        if self._busy(key):
            return
        self.due.add(key, due.fire_at_ms, due)
        if due.trigger:
            self.triggered.setdefault(due.job.id, set()).add(due.occurrence_ms)

    def _track(self, r: CommandResult) -> None:
        key = r.job_id
        assert key is not None
        job = r.job
        if r.kind in (K.DELETE, K.CANCEL) or job is None:
            self._drop_job(key)
            return
        if r.kind is K.PAUSE:  # its scheduled runs wait; runs triggered still go
            self.paused.add(key)
            self._pause(key)
            return
        if r.kind is K.START_RUN:
            self._hold(key, job, None)  # the next run (the one started is armed by its reply)
        if r.trigger is not None or (r.attempt is not None and r.attempt.trigger):
            self._track_trigger(job, r)
            return
        if r.kind is K.RESUME:
            self.paused.discard(key)
            self._resume_runs(job)
            held = self.held.pop(key, None)
            if held is not None and job.status is JobStatus.IN_PROGRESS:
                fire_at = max(held.fire_at_ms, self.clock())
                resumed = _Armed(job, held.occurrence_ms, held.attempt, fire_at, resumed=True)
                self._arm_at(key, resumed)
                return
            if job.status is JobStatus.IN_PROGRESS:
                self.next_claim_check = 0  # an older term's claim: fire it again soon
        self._hold(key, job, r.attempt)

    def _pause(self, job_id: str) -> None:
        """Hold what the job has claimed and not sent (its scheduled occurrence, and an
        allow job's started runs), and take back what was handed over but not sent;
        drop what waits for a claim.  Manual runs go on."""
        keys: list[SlotKey] = [job_id]
        for asked in self.triggered.get(job_id, ()):
            run_key: SlotKey = (job_id, asked)
            run = self.armed.get(run_key) or self.due.get(run_key) or self.in_flight.get(run_key)
            if run is not None and run.scheduled:
                keys.append(run_key)
        handed: list[tuple[int, bool]] = []
        for key in keys:
            self.due.remove(key)
            armed = self.armed.remove(key)
            if armed is not None:
                self.held[key] = armed  # claimed, not sent: it waits for a resume
            out = self.in_flight.get(key)
            if out is not None:
                handed.append((out.occurrence_ms, out.trigger))
        if handed:  # held when the WebhookActor answers that it took them back
            self.webhook.tell(Withdraw(job_id, tuple(handed)))

    def _resume_runs(self, job: Job) -> None:
        """An allow job's started runs held by its pause go again; those waiting for a
        retry come back with the next refill, which is made at once."""
        for key in [k for k in self.held if isinstance(k, tuple) and k[0] == job.id]:
            held = self.held.pop(key)
            fire_at = max(held.fire_at_ms, self.clock())
            again = _Armed(job, held.occurrence_ms, held.attempt, fire_at, True, scheduled=True)
            self._arm_at(key, again)
        self.next_refill = 0
        self.next_claim_check = 0  # an older term's claims of its runs: fire them again

    def _hold(self, key: str, job: Job, attempt: Attempt | None) -> None:
        """Hold the occurrence ``job`` waits for, if it is due within the hot window."""
        if job.next_run_at_ms is not None and job.next_run_at_ms >= self.horizon:
            return  # it fires no sooner than its next run (jitter only delays a run)
        due = _due_of(job, attempt)
        if due is not None and due.fire_at_ms < self.horizon:
            self._keep(due)

    def _track_trigger(self, job: Job, r: CommandResult) -> None:
        """A triggered run was asked for, claimed, or given an outcome."""
        run = r.trigger
        if run is None:  # its outcome was final: the run is over
            asked = self.triggered.get(job.id)
            if asked is not None and r.attempt is not None:
                asked.discard(r.attempt.scheduled_at_ms)
                if not asked:
                    del self.triggered[job.id]
            return
        if run.claim_open:
            return  # armed from the claim's own reply
        due = Due(job, run.asked_ms, run.attempt, run.fire_at_ms, True, run.scheduled)
        if due.fire_at_ms < self.horizon and not (run.scheduled and job.paused):
            self._keep(due)

    def _drop_job(self, job_id: str) -> None:
        """The job was cancelled or deleted: forget its occurrences, abort its deliveries."""
        keys: list[SlotKey] = [job_id]
        keys += [(job_id, asked) for asked in self.triggered.pop(job_id, ())]
        self.paused.discard(job_id)
        out = False
        for key in keys:
            self.held.pop(key, None)
            self.due.remove(key)
            self.armed.remove(key)
            # Forgotten: its outcome, whatever it is (aborted, withdrawn by a pause
            # before, or sent before the abort), is the state machine's to refuse, and
            # must not arm anything again here.
            out = self.in_flight.pop(key, None) is not None or out
        if out:
            self.webhook.tell(AbortDelivery(job_id))  # every delivery of the job

    def _check_open_claims(self, claims: tuple[Attempt, ...]) -> None:
        now = self.clock()
        for a in claims:
            key = _key(a.job_id, a.scheduled_at_ms, a.trigger)
            if self._busy(key):
                continue
            if a.term < self.term:  # in flight when an older leader went away
                self._read(GetJob(a.job_id), self._refire(a))
            elif now - a.claim_ms >= self.s.inprogress_timeout_ms:
                self._read(GetJob(a.job_id), self._time_out(a, now))

    def _refire(self, a: Attempt) -> Any:
        def then(job: Job | None) -> None:
            if job is None or not _open_claim_stands(job, a):
                return
            if a.attempt_num >= self.s.policy.attempts_for(job.spec):
                self._time_out(a, self.clock())(job)
                return
            # Same occurrence, so the same idempotency key; the next attempt number; and
            # the attempt's own fire time (the claim was made ahead of it), not now: a
            # triggered run's open attempt holds it as its start.
            fire_at = job.next_run_at_ms if job.next_run_at_ms is not None else a.scheduled_at_ms
            if a.trigger:
                fire_at = a.start_time_ms
            fire_at = attempt_fire_ms(job.spec, a.scheduled_at_ms, fire_at, a.trigger)
            self._keep(Due(job, a.scheduled_at_ms, a.attempt_num, fire_at, a.trigger, a.scheduled))
            self._wake()

        return then

    def _time_out(self, a: Attempt, now: int) -> Any:
        def then(job: Job | None) -> None:
            if job is None or not _open_claim_stands(job, a):
                return
            lost = firing.Attempted(
                ok=False,
                end_ms=now,
                timed_out=True,
                retryable=True,
                error_type="timeout",
                error_message="no outcome within the in-progress timeout",
            )
            occurrence, n = a.scheduled_at_ms, a.attempt_num
            self._record(_Armed(job, occurrence, n, 0, a.trigger, scheduled=a.scheduled), lost)

        return then

    def _prune(self, now: int) -> None:
        self.next_prune = now + self.s.prune_every_ms
        cutoff = now - self.s.history_retention_ms
        self._propose("outcome", [c.PruneHistory(cutoff, 1_000)], ())
        for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            self._read(ListJobs(status, None, 500), self._prune_finished(cutoff))

    def _prune_finished(self, cutoff: int) -> Any:
        def then(page: Any) -> None:
            # A finished job re-run by a trigger is kept while its run goes on.
            old = [
                c.DeleteJob(j.id)
                for j in page.jobs
                if j.completed_at_ms is not None
                and j.completed_at_ms < cutoff
                and j.id not in self.triggered
            ]
            self._propose("outcome", list(old), tuple(d.job_id for d in old))

        return then


def _jittered(spec: JobSpec, armed: _Armed) -> int | None:
    """How far the job's jitter moved this run (0 included), or None if it has none
    (no jitter, or a manual run): the body names the nominal time only then."""
    manual = armed.trigger and not armed.scheduled
    if spec.jitter_ms is None or manual:
        return None
    return jitter_of(spec, armed.occurrence_ms, manual)


def _attempted(out: DeliveryOutcome) -> firing.Attempted:
    """How a delivery (or a notice's send) ended, as the firing decisions take it."""
    return firing.Attempted(
        ok=out.ok,
        end_ms=out.end_ms,
        timed_out=out.error_type == "timeout",
        retryable=out.retryable,
        retry_after_ms=out.retry_after_ms,
        http_status=out.http_status,
        response_time_ms=out.response_time_ms,
        error_type=out.error_type,
        error_message=out.error_message,
    )


def _due_of(job: Job, attempt: Attempt | None) -> Due | None:
    """The occurrence a job waits for after a change, if it is due at all."""
    if job.paused or job.next_run_at_ms is None or job.status not in DUE_STATUSES:
        return None
    if job.status is JobStatus.PENDING:
        fire_at = attempt_fire_ms(job.spec, job.next_run_at_ms, job.next_run_at_ms, False)
        return Due(job, job.next_run_at_ms, 0, fire_at)
    if attempt is None:
        return None  # a retry is only known from the outcome that asked for it
    return Due(job, attempt.scheduled_at_ms, attempt.attempt_num, job.next_run_at_ms)


def _open_claim_stands(job: Job, a: Attempt) -> bool:
    """May the open claim ``a`` still be fired again or timed out?  A scheduled one
    while the job is in progress; a triggered one while the job is not cancelled
    (the claim or outcome command checks the run itself), nor, for an allow job's
    started run, paused (its resume fires it again)."""
    if a.trigger:
        return job.status is not JobStatus.CANCELLED and not (a.scheduled and job.paused)
    return job.status is JobStatus.IN_PROGRESS


def _key(job_id: str, occurrence_ms: int, trigger: bool) -> SlotKey:
    """The scheduler's key of an occurrence (:data:`SlotKey`)."""
    return (job_id, occurrence_ms) if trigger else job_id


def _due_key(due: Due) -> SlotKey:
    return _key(due.job.id, due.occurrence_ms, due.trigger)


def _job_id(cmd: c.Command) -> str:
    return getattr(cmd, "job_id", "")


def _pad(results: tuple[CommandResult, ...], n: int) -> list[CommandResult | None]:
    return list(results) + [None] * (n - len(results))
