"""Webhook delivery in worker processes: sending does not wait on the node's GIL.

One process holds one GIL, and a node's process also applies the Raft log, runs
the scheduler and serves HTTP: in a burst, the thread that sends webhooks gets a
share of one core.  With ``execution.delivery_workers`` >= 1 the node starts that
many worker processes, each running a :class:`~actors.webhook.actor.WebhookActor`
of its own, and the :class:`DeliveryWorkers` actor stands where the WebhookActor
stood: it takes the same messages and keeps the same contract (one outcome per
Deliver, to its reply).

- Deliveries are shared out by destination (a URL's scheme, host and port), so one
  destination's fair queue and its caps live in one worker; ``execution.concurrency``
  is shared out evenly between the workers.
- A worker checks the node's lease before each request, through shared memory
  (:class:`~actors.raft.lease.SharedLease`): the Raft thread's grant reaches it
  without a message, as it reaches the in-process actor.
- Messages go down a pipe per worker in batches: all the messages that came while
  the actor was busy go in one write.  Outcomes come back the same way, one
  message per turn of the worker's loop, read by a thread per worker in this
  process, which counts them in the node's metrics (the worker sends its queue's
  gauges along) and gives them to their Delivers' replies.
- A worker that dies stops this actor, and so the node (``actors/node.py`` watches
  its actors): its deliveries in flight would never be answered otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import pykka

from actors.raft.lease import LeaderLease, SharedLease, WorkerLease, beat
from actors.runtime.metrics import ApiMetrics
from actors.webhook.actor import WebhookActor, WebhookMetrics, give_outcome
from actors.webhook.messages import (
    AbortAll,
    AbortDelivery,
    Deliver,
    DeliveryOutcome,
    DeliveryOutcomes,
    Messages,
    Withdraw,
)
from scheduled_db.jobs.model import evolved

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0  # a spawned interpreter imports the node's modules first
STOP_TIMEOUT_S = 10.0
# The node's process says it runs this often, and a worker sends only while it last
# said so at most FRESH_S ago (actors.raft.lease.WorkerLease).
BEAT_S = 0.005
FRESH_S = 0.05
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How a node's WebhookActor is built, in the node's process or in a delivery
    worker's (all picklable; the log fields serve a worker's own logging)."""

    node_id: str
    concurrency: int
    per_destination: int
    per_destination_rate: float | None
    secrets: Any  # actors.webhook.attempt.Secrets
    policy: Any  # scheduled_db.policy.ssrf.AddressPolicy
    log_level: str = "INFO"
    log_json: bool = False
    redact: tuple[str, ...] = ()

    def start_actor(self, metrics: Any, lease: LeaderLease) -> pykka.ActorRef[WebhookActor]:
        """Start the WebhookActor these settings describe, checking ``lease``."""
        return WebhookActor.start(
            self.node_id,
            self.concurrency,
            metrics,
            secrets=self.secrets,
            policy=self.policy,
            per_destination=self.per_destination,
            lease=lease,
            per_destination_rate=self.per_destination_rate,
        )


@dataclass(frozen=True, slots=True)
class _Report:
    """A worker's message up the pipe: outcomes ended in one turn of its loop, and
    its queue's gauges then."""

    outcomes: tuple[DeliveryOutcome, ...]
    waiting: int
    in_flight: int
    cuts: int  # destination cuts since the last report


_READY = "ready"
_STOP = "stop"
_GONE = "gone"


def shard(url: str, workers: int) -> int:
    """The worker that sends to ``url``'s origin (the same one for every URL of it)."""
    if workers == 1:
        return 0
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        origin = f"{scheme}://{(parts.hostname or '').lower()}:{port}"
    except ValueError:  # a URL that cannot be posted to: it fails wherever it goes
        origin = url
    return zlib.crc32(origin.encode("utf-8", "surrogatepass")) % workers


_Key = tuple[str, int, int, bool, "bytes | None"]


def _deliver_key(d: Deliver) -> _Key:
    notice = None if d.notice is None else d.notice.key
    return d.job_id, d.scheduled_at_ms, d.attempt, d.trigger, notice


def _outcome_key(o: DeliveryOutcome) -> _Key:
    return o.job_id, o.scheduled_at_ms, o.attempt, o.trigger, o.notice


class _Worker:
    """One worker process, its pipe, and the thread in this process that reads it."""

    def __init__(self, index: int, conn: Connection, proc: Any) -> None:
        self.index = index
        self.conn = conn
        self.proc = proc
        self.outbox: list[Any] = []
        self.reader: threading.Thread | None = None
        self.waiting = 0
        self.in_flight = 0


class DeliveryWorkers(pykka.ThreadingActor):
    """Delivers through ``workers`` worker processes; the WebhookActor's contract."""

    def __init__(
        self,
        settings: DeliverySettings,
        workers: int,
        lease: SharedLease,
        metrics: ApiMetrics | None = None,
    ) -> None:
        super().__init__()
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        share = -(-settings.concurrency // workers)
        self._settings = replace(settings, concurrency=max(1, share))
        self._count = workers
        self._lease = lease
        self._metrics = WebhookMetrics(metrics) if metrics is not None else None
        self._workers: list[_Worker] = []
        # Delivers sent and not answered, by their key; a deque, since the same
        # attempt may be sent again (a withdrawn one re-armed) before the first's
        # outcome is read.  Written by the actor thread, read by the readers.
        self._sent: dict[_Key, deque[Deliver]] = {}
        self._sent_lock = threading.Lock()
        self._stopping = False
        self._stopped = threading.Event()
        self._beater: threading.Thread | None = None

    # --- lifecycle (actor thread) ---------------------------------------------------

    def on_start(self) -> None:
        beat(self._lease.cells)
        self._beater = threading.Thread(target=self._beat, name="delivery-beat", daemon=True)
        self._beater.start()
        ctx = multiprocessing.get_context("spawn")
        for index in range(self._count):
            here, there = ctx.Pipe()
            proc = ctx.Process(
                target=run_worker,
                args=(there, self._lease.cells, self._settings, index),
                name=f"scheduled-db-delivery-{index}",
                daemon=True,
            )
            proc.start()
            there.close()
            self._workers.append(_Worker(index, here, proc))
        for worker in self._workers:
            if not worker.conn.poll(START_TIMEOUT_S) or worker.conn.recv() != _READY:
                raise OSError(f"delivery worker {worker.index} did not start")
            worker.reader = threading.Thread(
                target=self._read,
                args=(worker,),
                name=f"delivery-reader-{worker.index}",
                daemon=True,
            )
            worker.reader.start()
        log.info("webhook deliveries go through %d worker process(es)", self._count)

    def _beat(self) -> None:
        while not self._stopped.wait(BEAT_S):
            beat(self._lease.cells)

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, *exc_info: object) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        """Each worker aborts what it holds, answers it, and exits; bounded in time."""
        self._stopping = True
        for worker in self._workers:
            with contextlib.suppress(OSError):  # a worker already gone
                worker.conn.send([_STOP])
        for worker in self._workers:
            if worker.reader is not None:
                worker.reader.join(STOP_TIMEOUT_S)
            worker.proc.join(STOP_TIMEOUT_S)
            if worker.proc.is_alive():
                worker.proc.kill()
                worker.proc.join(STOP_TIMEOUT_S)
            worker.conn.close()
        self._stopped.set()

    def worker_pids(self) -> list[int]:
        """The workers' process ids (for operators' tools and tests)."""
        return [w.proc.pid for w in self._workers]

    # --- messages (actor thread) ----------------------------------------------------

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Deliver):
            self._send_deliver(message)
        elif isinstance(message, (Withdraw, AbortDelivery, AbortAll)):
            for worker in self._workers:  # a job's URLs may go to different workers
                worker.outbox.append(message)
        else:
            log.warning("webhook: ignoring unexpected message %r", type(message).__name__)
            return
        if self.actor_inbox.empty():  # the batch ends: one write per worker
            self._flush()

    def _send_deliver(self, deliver: Deliver) -> None:
        key = _deliver_key(deliver)
        with self._sent_lock:
            sent = self._sent.get(key)
            if sent is None:
                sent = self._sent[key] = deque()
            sent.append(deliver)
        worker = self._workers[shard(deliver.url, self._count)]
        worker.outbox.append(evolved(deliver, reply=None, batched=True))

    def _flush(self) -> None:
        for worker in self._workers:
            if worker.outbox:
                batch, worker.outbox = worker.outbox, []
                worker.conn.send(batch)

    # --- outcomes (a reader thread per worker) --------------------------------------

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                report = worker.conn.recv()
            except (EOFError, OSError):
                report = None
            if report == _GONE:
                return
            if not isinstance(report, _Report):
                if not self._stopping:
                    log.error("webhook: delivery worker %d exited; stopping", worker.index)
                    self.actor_ref.stop(block=False)
                return
            self._answer(report.outcomes)
            self._gauges(worker, report)

    def _answer(self, outcomes: Iterable[DeliveryOutcome]) -> None:
        batches: dict[Callable[[Any], None], list[DeliveryOutcome]] = {}
        for outcome in outcomes:
            deliver = self._take(outcome)
            if deliver is None:
                log.warning("webhook: an outcome of %s matches no delivery", outcome.job_id)
                continue
            if self._metrics is not None:
                self._metrics.observe(deliver, outcome)
            if deliver.reply is None:
                continue
            if deliver.batched:
                batches.setdefault(deliver.reply, []).append(outcome)
            else:
                self._reply(deliver.reply, outcome, outcome.job_id)
        for reply, answered in batches.items():
            self._reply(reply, DeliveryOutcomes(tuple(answered)), answered[0].job_id)

    def _take(self, outcome: DeliveryOutcome) -> Deliver | None:
        key = _outcome_key(outcome)
        with self._sent_lock:
            sent = self._sent.get(key)
            if not sent:
                return None
            deliver = sent.popleft()
            if not sent:
                del self._sent[key]
        return deliver

    def _reply(self, reply: Callable[[Any], None], message: Any, job_id: str) -> None:
        give_outcome(reply, message, job_id, self._stopping)

    def _gauges(self, worker: _Worker, report: _Report) -> None:
        worker.waiting, worker.in_flight = report.waiting, report.in_flight
        if self._metrics is not None:
            self._metrics.waiting.set(sum(w.waiting for w in self._workers))
            self._metrics.in_flight.set(sum(w.in_flight for w in self._workers))
            if report.cuts:
                self._metrics.cuts.inc(report.cuts)


# --- the worker process -----------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: float = 1) -> None:
        self.value += int(amount)


class _Gauge:
    def __init__(self) -> None:
        self.value = 0

    def set(self, value: float) -> None:
        self.value = int(value)


class WorkerMetrics:
    """The worker's WebhookActor counts into this; each report carries the figures up
    (attempts are counted up there, from the outcomes themselves)."""

    def __init__(self) -> None:
        self.cuts = _Counter()
        self.waiting = _Gauge()
        self.in_flight = _Gauge()

    def observe(self, deliver: Deliver, outcome: DeliveryOutcome) -> None:
        """Nothing here: the node's process counts the outcome when it reads it."""

    def report(self, outcomes: tuple[DeliveryOutcome, ...]) -> _Report:
        cuts, self.cuts.value = self.cuts.value, 0
        return _Report(outcomes, self.waiting.value, self.in_flight.value, cuts)


def run_worker(conn: Connection, cells: Any, settings: DeliverySettings, index: int) -> None:
    """A worker process's body: a WebhookActor fed from ``conn`` until told to stop, or
    until the node's process is gone (the pipe closes)."""
    from actors.node import tune_interpreter
    from actors.runtime import tracing
    from actors.runtime.logs import setup_logging

    setup_logging(settings.log_level, settings.log_json, settings.node_id, redact=settings.redact)
    tune_interpreter()
    try:
        tracing.setup(os.environ, settings.node_id)
    except tracing.TracingError as exc:  # the node itself checked the same variables
        log.warning("delivery worker %d: tracing off: %s", index, exc)
    metrics = WorkerMetrics()
    send_lock = threading.Lock()

    def send(message: DeliveryOutcomes) -> None:  # on the worker's loop thread
        report = metrics.report(message.outcomes)
        with send_lock:
            conn.send(report)

    actor = settings.start_actor(metrics, WorkerLease(cells, FRESH_S))
    conn.send(_READY)
    try:
        _serve(conn, actor, send)
    finally:
        actor.stop()  # aborts what is left; those outcomes go up before _GONE
        with send_lock, contextlib.suppress(OSError):  # the node's process is gone
            conn.send(_GONE)
        tracing.shutdown()


def _serve(
    conn: Connection, actor: pykka.ActorRef[WebhookActor], send: Callable[..., None]
) -> None:
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return  # the node's process is gone
        items: list[Any] = []
        for message in batch:
            if message == _STOP:
                actor.tell(Messages(tuple(items)))
                return
            if isinstance(message, Deliver):
                message = replace(message, reply=send)
            items.append(message)
        actor.tell(Messages(tuple(items)))
