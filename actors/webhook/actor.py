"""The WebhookActor: delivers claimed occurrences over HTTP, on an event loop of its own.

Like the HttpActor, the actor owns a thread running an asyncio loop; one
:class:`~actors.webhook.client.WebhookClient` there pools connections for every
delivery.  The actor thread never waits on that loop except for the bounded start
and stop handshakes: it queues each message for the loop and wakes the loop once
per batch (``loop.call_soon_threadsafe``), so a burst of thousands of Delivers costs
a handful of wake-ups, not one each.

Contract:

- every :class:`~actors.webhook.messages.Deliver` gets exactly one
  :class:`~actors.webhook.messages.DeliveryOutcome`, given to its ``reply`` from the loop
  thread (a gone receiver is logged and the outcome dropped);
- at most ``concurrency`` requests are in flight over all destinations (a URL's
  origin: scheme, host, port), and to one destination at most its share: a cap
  that starts small, grows with each answer up to ``per_destination`` and halves
  when a request times out (:mod:`scheduled_db.firing.fair_queue`).  Deliveries past those
  caps wait in a queue per destination, and free slots go to the destinations in
  turn, so a receiver that hangs or has a backlog delays only its own deliveries;
- a delivery waits for its turn at most its timeout (``Deliver.timeout_ms``): past
  it, it fails as a ``timeout`` with nothing sent.  Once sent, the request has its
  whole timeout again, so an outcome comes within about twice the timeout;
- a Deliver handed over ahead of its time (``not_before_ms`` at least
  :data:`STAGE_AHEAD_MS` away: the scheduler hands a burst over before it is due)
  is *staged*: its destination and span are worked out on arrival, and at its time
  one timer per instant releases every delivery due then into the queues at
  once, so the work of a burst's arrival is done before the burst, not in it;
- :class:`~actors.webhook.messages.AbortDelivery` and :class:`~actors.webhook.messages.AbortAll` cut
  deliveries short, staged, queued or in flight: their outcome is an error of type
  ``aborted``.  Stopping the actor aborts whatever is left the same way.
  :class:`~actors.webhook.messages.Withdraw` takes back those not sent yet (staged
  or queued): their outcome is of type ``withdrawn``.

Each Deliver is a single attempt; when to retry is the caller's decision
(:mod:`scheduled_db.firing.retry`), since a retry needs a new claim through Raft.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from typing import Any, Protocol

import pykka

from actors.raft.lease import LeaderLease
from actors.runtime import tracing
from actors.runtime.clock import now_ms
from actors.runtime.loop_thread import LoopThread
from actors.runtime.metrics import ApiMetrics
from actors.webhook import attempt as webhook_attempt
from actors.webhook.client import WebhookClient
from actors.webhook.dns import Resolver, system_resolve
from actors.webhook.messages import (
    AbortAll,
    AbortDelivery,
    Deliver,
    DeliveryOutcome,
    DeliveryOutcomes,
    Messages,
    Withdraw,
)
from scheduled_db.errors import safe_text
from scheduled_db.firing.fair_queue import FairQueue, Signal, signal_for
from scheduled_db.policy.ssrf import DENY, AddressPolicy

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
DNS_CACHE_TTL_S = 30.0  # long enough to spare the resolver, short enough to follow a move
# Execution takes up to the per-attempt timeout; lateness is milliseconds when healthy.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A Deliver due at least this far ahead is staged until its time (see above); one due
# sooner goes to its queue at once (and its task waits out the rest).
STAGE_AHEAD_MS = 2
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)


def _version() -> str:
    try:
        return metadata.version("scheduled-db")
    except metadata.PackageNotFoundError:  # running from a source tree never installed
        return "0+unknown"


USER_AGENT = f"scheduled-db/{_version()}"


class WebhookMetrics:
    """The delivery metrics, registered in the node's registry."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self.deliveries = metrics.counter(
            "webhook_deliveries_total", "Webhook delivery attempts by result", ("result",)
        )
        # The two children every attempt touches, looked up once.
        self.successes = self.deliveries.labels("success")
        self.failed = self.deliveries.labels("failure")
        self.failures = metrics.counter(
            "webhook_failures_total", "Failed webhook delivery attempts", ("error_type",)
        )
        self.fenced = metrics.counter(
            "webhook_fenced_total",
            "Deliveries not sent because this node's leader lease had ended",
        )
        self.in_flight = metrics.gauge("webhook_in_flight", "Webhook requests being sent")
        self.waiting = metrics.gauge(
            "webhook_waiting", "Webhook deliveries waiting for their destination's turn"
        )
        self.cuts = metrics.counter(
            "webhook_destination_cuts_total",
            "Times a destination's share of requests was halved (a timeout, 429, 503, 504)",
        )
        self.duration = metrics.histogram(
            "execution_duration_seconds",
            "From sending a webhook request to its response (or failure)",
            buckets=DURATION_BUCKETS,
        )
        self.lateness = metrics.histogram(
            "firing_lateness_seconds",
            "How long after its scheduled time an occurrence's first attempt was sent",
            buckets=LATENESS_BUCKETS,
        )

    def observe(self, deliver: Deliver, outcome: DeliveryOutcome) -> None:
        """Count one finished attempt (a notice's are the scheduler's to count)."""
        if deliver.notice is not None:
            return
        if outcome.error_type == webhook_attempt.FENCED:
            self.fenced.inc()  # not an attempt: nothing left this node
            return
        if outcome.error_type == webhook_attempt.WITHDRAWN:
            return  # not an attempt either: taken back before its time
        (self.successes if outcome.ok else self.failed).inc()
        if not outcome.ok:
            self.failures.labels(outcome.error_type or "unknown").inc()
        if outcome.sent_ms is None:
            return  # aborted while waiting for a slot: nothing was sent
        self.duration.observe((outcome.end_ms - outcome.sent_ms) / 1000)
        # Retries are late by their backoff, by design: only first attempts measure
        # how precisely the scheduler fires.  An early send (the wall clock stepped
        # back) counts as on time: a negative observation would skew the sum.
        if deliver.attempt == 1:
            due_ms = deliver.scheduled_at_ms + (deliver.jittered_ms or 0)
            self.lateness.observe(max(0, outcome.sent_ms - due_ms) / 1000)


def give_outcome(reply: Callable[[Any], None], message: Any, job_id: str, stopping: bool) -> None:
    """Tell ``reply`` an outcome (or a batch of them); a receiver gone is logged, and
    only quietly while this side stops too."""
    try:
        reply(message)
    except pykka.ActorDeadError:
        level = logging.DEBUG if stopping else logging.WARNING
        log.log(level, "webhook: dropping the outcome of %s: its receiver is gone", job_id)


class _Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Level(Protocol):
    def set(self, value: float) -> None: ...


class DeliveryMetrics(Protocol):
    """What the actor counts into: :class:`WebhookMetrics`, or a delivery worker's
    (actors/webhook/workers.py), which passes the figures to the node's process."""

    @property
    def cuts(self) -> _Count: ...

    @property
    def waiting(self) -> _Level: ...

    @property
    def in_flight(self) -> _Level: ...

    def observe(self, deliver: Deliver, outcome: DeliveryOutcome) -> None: ...


@dataclass(eq=False, slots=True)
class _Pending:
    """One Deliver, from its arrival to its outcome (compared by identity)."""

    deliver: Deliver
    start_ms: int
    destination: str
    task: asyncio.Task[DeliveryOutcome] | None = None  # once it is sent
    expiry: asyncio.TimerHandle | None = None  # while it waits for its turn (paced)
    # While it waits for its turn: the deliveries that arrived with it and share its
    # timeout, whose one timer expires those still waiting (see _arm_expiries).
    waiting_in: set[_Pending] | None = None
    span: tracing.Span | None = None  # with tracing on: from its arrival to its outcome
    staged: bool = False  # handed over ahead of its time, and not released yet


class WebhookActor(pykka.ThreadingActor):
    """Sends webhook deliveries, at most ``concurrency`` at a time and at most
    ``per_destination`` to one origin, and reports each one's :class:`DeliveryOutcome`.
    Raises ValueError if either is below 1.

    Only to addresses ``policy`` allows (by default public ones; see
    :mod:`scheduled_db.policy.ssrf`), resolved by ``resolve`` (the system's by default)."""

    def __init__(
        self,
        node_id: str,
        concurrency: int = 4096,
        metrics: ApiMetrics | DeliveryMetrics | None = None,
        clock: Callable[[], int] = now_ms,
        user_agent: str = USER_AGENT,
        secrets: webhook_attempt.Secrets | None = None,
        policy: AddressPolicy = DENY,
        resolve: Resolver = system_resolve,
        per_destination: int = 128,
        lease: LeaderLease | None = None,
        per_destination_rate: float | None = None,
    ) -> None:
        super().__init__()
        self._lease = lease  # None: no fencing (tests of delivery alone)
        self._secrets = secrets or webhook_attempt.Secrets()
        self._policy = policy
        self._resolve = resolve
        if concurrency < 1 or per_destination < 1:
            raise ValueError(
                f"concurrency and per_destination must be >= 1, got {concurrency}, "
                f"{per_destination}"
            )
        self._node_id = node_id
        self._per_destination = per_destination
        self._metrics: DeliveryMetrics | None = (
            WebhookMetrics(metrics) if isinstance(metrics, ApiMetrics) else metrics
        )
        self._clock = clock
        self._user_agent = user_agent
        self._lt: LoopThread | None = None
        # Touched only on the loop thread, once on_start has created them.
        self._client: WebhookClient | None = None
        self._queue: FairQueue[str, _Pending] = FairQueue(
            concurrency, per_destination, rate=per_destination_rate
        )
        self._pacer: asyncio.TimerHandle | None = None  # the next admit a rate is owed
        self._pending: dict[str, set[_Pending]] = {}  # job id -> its deliveries
        self._arrived: list[_Pending] = []  # in this drain, to arm the waiting ones
        # Deliveries staged until their time (not_before_ms -> destination -> them, in
        # arrival order; a withdrawn or aborted one stays listed, unstaged), with a
        # timer per instant.
        self._staged: dict[int, dict[str, list[_Pending]]] = {}
        self._release_timers: dict[int, asyncio.TimerHandle] = {}
        # Destinations staged for in this drain -> (a URL of theirs, the instant): the
        # drain opens the connections their burst will need (WebhookClient.warm).
        self._to_warm: dict[str, tuple[str, int]] = {}
        self._warmers: set[asyncio.Task[int]] = set()  # held, or the loop may lose them
        # Outcomes of batched Delivers ended in this turn of the loop, per reply; sent
        # at the start of the next one (_send_outcomes).
        self._outbox: dict[Callable[[Any], None], list[DeliveryOutcome]] = {}
        self._stopping = False
        # Handed from the actor thread to the loop thread (deque appends and pops are
        # thread-safe); _wake_set says a drain is scheduled and has not started yet.
        self._queued: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._wake_set = False

    # --- messages (actor thread) -------------------------------------------------------

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Messages):
            for item in message.items:
                self.on_receive(item)
        elif isinstance(message, Deliver):
            self._on_loop(self._spawn, message, self._clock())
        elif isinstance(message, AbortDelivery):
            self._on_loop(self._abort, message.job_id)
        elif isinstance(message, AbortAll):
            self._on_loop(self._abort_all)
        elif isinstance(message, Withdraw):
            self._on_loop(self._withdraw, message)
        else:
            log.warning("webhook: ignoring unexpected message %r", type(message).__name__)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        # One FIFO queue for spawns and aborts: an abort told after a Deliver always
        # finds that delivery's task registered.
        assert self._lt is not None, "on_start creates the loop before any message"
        self._queued.append((fn, args))
        if not self._wake_set:  # else a drain is scheduled and will find this one
            self._wake_set = True
            self._lt.call(self._drain)

    def _drain(self) -> None:
        # Cleared before draining: whatever is queued after this line either is
        # drained below or schedules a drain of its own.
        self._wake_set = False
        while self._queued:
            fn, args = self._queued.popleft()
            fn(*args)
        self._admit()  # once per batch: a burst is shared out in turn, not first-come
        self._arm_expiries()
        self._count_waiting()
        if self._to_warm:
            self._warm()

    def _warm(self) -> None:
        """Open ahead the connections a staged burst will send on at first: as many as
        its destination's cap lets through at once, at most one per delivery."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        for destination, (url, at) in self._to_warm.items():
            staged = len(self._staged.get(at, {}).get(destination, ()))
            n = min(self._queue.cap(destination), staged)
            warmer = loop.create_task(self._client.warm(url, n))
            self._warmers.add(warmer)
            warmer.add_done_callback(self._warmers.discard)
        self._to_warm.clear()

    # --- deliveries (loop thread) ------------------------------------------------------

    def _spawn(self, deliver: Deliver, start_ms: int) -> None:
        assert self._client is not None
        destination = self._client.destination(deliver.url)
        pending = _Pending(deliver, start_ms, destination)
        pending.span = webhook_attempt.delivery_span(deliver, destination)
        self._pending.setdefault(deliver.job_id, set()).add(pending)
        now = self._clock()
        if deliver.not_before_ms - now < STAGE_AHEAD_MS:
            self._queue.push(pending.destination, pending)
            self._arrived.append(pending)
            return
        pending.staged = True
        at = deliver.not_before_ms
        staged = self._staged.get(at)
        if staged is None:
            staged = self._staged[at] = {}
            loop = asyncio.get_running_loop()
            self._release_timers[at] = loop.call_later((at - now) / 1000, self._release, at)
        staged.setdefault(pending.destination, []).append(pending)
        self._to_warm[pending.destination] = (deliver.url, at)

    def _release(self, at: int) -> None:
        """The deliveries staged for ``at`` go to their queues, all at once; never
        before ``at`` by this actor's clock (a timer may ring a little early)."""
        early_ms = at - self._clock()
        if early_ms > 0:
            loop = asyncio.get_running_loop()
            self._release_timers[at] = loop.call_later(early_ms / 1000, self._release, at)
            return
        del self._release_timers[at]
        for destination, pendings in self._staged.pop(at).items():
            released = [pending for pending in pendings if pending.staged]
            for pending in released:
                pending.staged = False
            self._queue.push_many(destination, released)
            self._arrived.extend(released)
        self._admit()
        self._arm_expiries()
        self._count_waiting()

    def _arm_expiries(self) -> None:
        """Give the deliveries of this batch that have to wait a deadline: one timer for
        those with the same timeout, not one each (a burst of thousands waits)."""
        groups: dict[int, set[_Pending]] = {}
        for pending in self._arrived:
            if self._queue.is_waiting(pending.destination, pending):  # not sent, not aborted
                group = groups.get(pending.deliver.timeout_ms)
                if group is None:
                    group = groups[pending.deliver.timeout_ms] = set()
                group.add(pending)
                pending.waiting_in = group
        self._arrived.clear()
        loop = asyncio.get_running_loop()
        for timeout_ms, group in groups.items():
            loop.call_later(timeout_ms / 1000, self._expire_group, group)

    def _expire_group(self, group: set[_Pending]) -> None:
        for pending in list(group):  # those still waiting: the others left the group
            self._expire(pending)

    def _admit(self) -> None:
        """Send every delivery whose turn it is; with a rate per destination, come back
        when the next token is due."""
        loop = asyncio.get_running_loop()
        for _, pending in self._queue.admit(self._clock()):
            self._stop_waiting(pending)
            traceparent = tracing.traceparent_of(pending.span)
            pending.task = loop.create_task(
                self._deliver(pending.deliver, pending.start_ms, traceparent)
            )
            pending.task.add_done_callback(partial(self._done, pending))
        due = self._queue.next_due_ms()
        if due is not None and self._pacer is None:
            self._pacer = loop.call_later(max(0, due - self._clock()) / 1000, self._paced_admit)

    def _paced_admit(self) -> None:
        self._pacer = None
        self._admit()
        self._count_waiting()

    def _done(self, pending: _Pending, task: asyncio.Task[DeliveryOutcome]) -> None:
        self._forget(pending)
        # A task cancelled before its first step never ran a line of _deliver (an
        # abort in the same loop iteration as its turn): nothing was sent.
        if task.cancelled():
            deliver = pending.deliver
            outcome = webhook_attempt.aborted(deliver, pending.start_ms, None, self._clock())
        else:
            outcome = task.result()
        signal = signal_for(outcome.http_status, outcome.error_type == "timeout")
        self._queue.release(pending.destination, signal)
        if self._metrics is not None and signal is Signal.SLOW_DOWN:
            self._metrics.cuts.inc()
        self._finish(pending, outcome)
        self._admit()
        self._count_waiting()

    def _stop_waiting(self, pending: _Pending) -> None:
        """It no longer waits for its turn: no deadline."""
        if pending.expiry is not None:
            pending.expiry.cancel()
            pending.expiry = None
        if pending.waiting_in is not None:
            pending.waiting_in.discard(pending)
            pending.waiting_in = None

    def _expire(self, pending: _Pending) -> None:
        """Its timeout passed while it waited for its turn: it fails, never sent; unless
        what it waits for is its destination's rate, which delays but never drops."""
        self._stop_waiting(pending)
        if self._queue.is_paced(pending.destination):
            loop = asyncio.get_running_loop()
            timeout_s = pending.deliver.timeout_ms / 1000
            pending.expiry = loop.call_later(timeout_s, self._expire, pending)
            return
        if not self._queue.withdraw(pending.destination, pending):
            return  # sent or aborted meanwhile
        self._forget(pending)
        outcome = webhook_attempt.not_sent_in_time(
            pending.deliver, pending.start_ms, self._clock(), pending.destination
        )
        self._finish(pending, outcome)
        self._count_waiting()

    def _abort(self, job_id: str) -> None:
        for pending in list(self._pending.get(job_id, ())):
            if pending.deliver.notice is None:  # a notice outlives its job's end
                self._cancel(pending)

    def _abort_all(self) -> None:
        for pendings in list(self._pending.values()):
            for pending in list(pendings):
                self._cancel(pending)

    def _cancel(self, pending: _Pending) -> None:
        """Abort one delivery: cancel its request, or take it out of its queue."""
        if pending.task is not None:
            pending.task.cancel()  # _done reports it
            return
        self._unqueue(pending)
        aborted = webhook_attempt.aborted(pending.deliver, pending.start_ms, None, self._clock())
        self._finish(pending, aborted)

    def _withdraw(self, message: Withdraw) -> None:
        """Take back the named deliveries of a job that are not on their way."""
        wanted = set(message.occurrences)
        for pending in list(self._pending.get(message.job_id, ())):
            deliver = pending.deliver
            if pending.task is not None or deliver.notice is not None:
                continue
            if (deliver.scheduled_at_ms, deliver.trigger) in wanted:
                self._unqueue(pending)
                outcome = webhook_attempt.withdrawn(deliver, pending.start_ms, self._clock())
                self._finish(pending, outcome)

    def _unqueue(self, pending: _Pending) -> None:
        """Take a delivery not sent yet out of its stage or queue, and forget it."""
        if pending.staged:
            pending.staged = False  # its instant's list drops it on release
        else:
            self._queue.withdraw(pending.destination, pending)
        self._stop_waiting(pending)
        self._forget(pending)

    def _forget(self, pending: _Pending) -> None:
        job_id = pending.deliver.job_id
        pendings = self._pending.get(job_id)
        if pendings is not None:
            pendings.discard(pending)
            if not pendings:
                del self._pending[job_id]

    async def _deliver(
        self, deliver: Deliver, start_ms: int, traceparent: str | None
    ) -> DeliveryOutcome:
        """One attempt whose turn has come, from sending to its outcome."""
        assert self._client is not None
        sent_ms: int | None = None
        may_send = None if self._lease is None else partial(self._lease.holds, deliver.term)
        try:
            early_ms = deliver.not_before_ms - self._clock()
            if early_ms > 0:  # never before its time, whatever the caller's clock did
                await asyncio.sleep(early_ms / 1000)
            sent_ms = self._clock()
            return await webhook_attempt.attempt(
                self._client,
                deliver,
                self._user_agent,
                self._clock,
                start_ms,
                sent_ms,
                self._secrets,
                may_send,
                traceparent,
            )
        except asyncio.CancelledError:
            # Only our own abort (or stop) cancels a delivery, and it still owes an
            # outcome: report it instead of propagating, so the task ends normally.
            return webhook_attempt.aborted(deliver, start_ms, sent_ms, self._clock())
        except Exception as exc:
            # A bug here must not leave the caller waiting forever for an outcome.
            job = safe_text(deliver.job_id)  # any text but "/" and controls: escaped
            log.exception("webhook: delivery of %s failed unexpectedly", job)
            return webhook_attempt.failed(deliver, start_ms, sent_ms, self._clock(), exc)

    def _count_waiting(self) -> None:
        """Set the gauges of waiting and in-flight deliveries (after each change: once
        per batch, not per delivery)."""
        if self._metrics is not None:
            self._metrics.waiting.set(self._queue.waiting)
            self._metrics.in_flight.set(self._queue.in_flight)

    def _finish(self, pending: _Pending, outcome: DeliveryOutcome) -> None:
        """Count the outcome and give it to the delivery's ``reply``."""
        deliver = pending.deliver
        if pending.span is not None:
            webhook_attempt.end_delivery_span(pending.span, outcome)
        if self._metrics is not None:
            self._metrics.observe(deliver, outcome)
        reply = deliver.reply
        if reply is None:
            return
        if deliver.batched:
            if not self._outbox:
                asyncio.get_running_loop().call_soon(self._send_outcomes)
            self._outbox.setdefault(reply, []).append(outcome)
            return
        self._reply(reply, outcome, outcome.job_id)

    def _send_outcomes(self) -> None:
        outbox, self._outbox = self._outbox, {}
        for reply, outcomes in outbox.items():
            self._reply(reply, DeliveryOutcomes(tuple(outcomes)), outcomes[0].job_id)

    def _reply(self, reply: Callable[[Any], None], message: Any, job_id: str) -> None:
        give_outcome(reply, message, job_id, self._stopping)

    # --- lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        self._lt = LoopThread(f"webhook-{self._node_id}")
        self._lt.start(self._open(), START_TIMEOUT_S, self._close)

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, *exc_info: object) -> None:
        self._shutdown()

    async def _open(self) -> None:
        # The client belongs to this loop, so it is made on it.  The
        # client sends no cookies and uses no proxy from the node's environment.
        self._client = WebhookClient(
            webhook_attempt.BODY_READ_LIMIT,
            DNS_CACHE_TTL_S,
            self._per_destination,  # the queue never lets more through: a backstop
            policy=self._policy,
            resolve=self._resolve,
        )

    async def _close(self) -> None:
        self._stopping = True
        for timer in self._release_timers.values():
            timer.cancel()
        self._release_timers.clear()
        self._staged.clear()  # each one is still in _pending: aborted below
        for warmer in list(self._warmers):
            warmer.cancel()
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None
        pendings = [p for pendings in self._pending.values() for p in pendings]
        tasks = [p.task for p in pendings if p.task is not None]
        self._abort_all()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._send_outcomes()  # the loop stops before another turn
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _shutdown(self) -> None:
        """Abort the deliveries, close the session, stop the loop: each bounded in time;
        idempotent."""
        if self._lt is not None:
            self._lt.stop(self._close, STOP_TIMEOUT_S)
