"""DeliveryWorkers: the WebhookActor's contract kept through real worker processes,
a real receiver, and the node's lease in shared memory."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors.raft.lease import SharedLease
from actors.runtime.clock import now_ms
from actors.runtime.metrics import ApiMetrics
from actors.webhook.attempt import Secrets
from actors.webhook.messages import (
    AbortAll,
    AbortDelivery,
    DeliveryOutcome,
    DeliveryOutcomes,
    Withdraw,
)
from actors.webhook.workers import DeliverySettings, DeliveryWorkers, shard
from scheduled_db.testing.harness import wait_until
from tests.actors.probe import Inbox
from tests.actors.webhook.test_webhook import SCHEDULED_MS, deliver, outcome_of
from tests.actors.webhook_receiver import LOOPBACK_ALLOWED, Receiver

TIMEOUT_S = 20.0
TERM = 7  # the term test_webhook.deliver names

Ref = pykka.ActorRef[Any]
StartWorkers = Callable[..., tuple[Ref, SharedLease]]


@pytest.fixture
def start_workers() -> Iterator[StartWorkers]:
    """Starts DeliveryWorkers whose lease holds term 7 (unless told otherwise)."""
    refs: list[Ref] = []

    def start(
        workers: int = 1, lease_held: bool = True, metrics: ApiMetrics | None = None, **kw: Any
    ) -> tuple[Ref, SharedLease]:
        lease = SharedLease()
        if lease_held:
            lease.grant(TERM, time.monotonic() + 3600)
        settings = DeliverySettings(
            "n1",
            kw.pop("concurrency", 64),
            kw.pop("per_destination", 16),
            None,
            kw.pop("secrets", Secrets()),
            LOOPBACK_ALLOWED,
            "WARNING",
        )
        ref = DeliveryWorkers.start(settings, workers, lease, metrics)
        refs.append(ref)
        return ref, lease

    try:
        yield start
    finally:
        for ref in refs:
            if ref.is_alive():
                ref.stop(timeout=TIMEOUT_S)


def test_a_delivery_through_a_worker_is_sent_as_the_node_would_send_it(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    workers, _ = start_workers(secrets=Secrets(signing=b"s3cret-signing-key"))
    workers.tell(deliver(receiver.url("/ok"), ref, attempt=2))

    outcome = outcome_of(inbox, "job-1")
    assert (outcome.ok, outcome.http_status, outcome.attempt) == (True, 200, 2)
    [request] = receiver.received("/ok")
    body = json.loads(request.body)
    assert (body["job_id"], body["attempt"]) == ("job-1", 2)
    assert request.headers["Idempotency-Key"] == f"job-1:{SCHEDULED_MS}"
    assert request.headers["X-Scheduled-DB-Term"] == str(TERM)
    assert "X-Scheduled-DB-Signature" in request.headers  # the secret reached the worker
    [pid] = workers.proxy().worker_pids().get(timeout=TIMEOUT_S)
    assert pid != os.getpid()  # the request left another process


def test_batched_deliveries_are_answered_once_each_in_batches(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    workers, _ = start_workers()
    at = now_ms() + 300
    ids = [f"job-{i:03d}" for i in range(200)]
    for job_id in ids:
        workers.tell(
            deliver(receiver.url("/ok"), ref, job_id=job_id, not_before_ms=at, batched=True)
        )

    def answered() -> list[DeliveryOutcome]:
        return [o for b in inbox.of_type(DeliveryOutcomes) for o in b.outcomes]

    wait_until(lambda: len(answered()) >= len(ids), TIMEOUT_S, "every outcome")
    outcomes = answered()
    assert sorted(o.job_id for o in outcomes) == ids  # each once
    assert all(o.ok and o.sent_ms is not None and o.sent_ms >= at for o in outcomes)
    assert len(inbox.of_type(DeliveryOutcomes)) < len(ids)  # not one message each
    assert inbox.of_type(DeliveryOutcome) == []
    assert len(receiver.received("/ok")) == len(ids)


def test_a_worker_sends_nothing_while_the_nodes_lease_does_not_hold_the_term(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    workers, lease = start_workers(lease_held=False)
    workers.tell(deliver(receiver.url("/ok"), ref, job_id="fenced"))
    assert outcome_of(inbox, "fenced").error_type == "fenced"
    assert receiver.received("/ok") == []

    lease.grant(TERM, time.monotonic() + 3600)  # this process writes, the worker reads
    workers.tell(deliver(receiver.url("/ok"), ref, job_id="granted"))
    assert outcome_of(inbox, "granted").ok

    lease.revoke()
    workers.tell(deliver(receiver.url("/ok"), ref, job_id="revoked"))
    assert outcome_of(inbox, "revoked").error_type == "fenced"
    assert [json.loads(r.body)["job_id"] for r in receiver.received("/ok")] == ["granted"]


def test_withdraw_takes_back_a_delivery_handed_over_ahead(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    workers, _ = start_workers()
    at = now_ms() + 5_000
    workers.tell(deliver(receiver.url("/ok"), ref, job_id="paused", not_before_ms=at))
    workers.tell(Withdraw("paused", ((SCHEDULED_MS, False),)))
    outcome = outcome_of(inbox, "paused")
    assert (outcome.error_type, outcome.sent_ms) == ("withdrawn", None)

    # The same attempt handed over again after its withdrawal is sent and answered.
    workers.tell(deliver(receiver.url("/ok"), ref, job_id="paused"))
    wait_until(lambda: len(inbox.of_type(DeliveryOutcome)) == 2, TIMEOUT_S, "the second outcome")
    assert inbox.of_type(DeliveryOutcome)[1].ok
    assert len(receiver.received("/ok")) == 1


def test_aborts_reach_the_worker_that_holds_the_delivery(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    workers, _ = start_workers(workers=2)
    for job_id in ("doomed", "a", "b"):
        workers.tell(deliver(receiver.url("/block"), ref, job_id=job_id, timeout_ms=60_000))
    receiver.wait_until(lambda r: r.in_flight == 3)

    workers.tell(AbortDelivery("doomed"))
    assert outcome_of(inbox, "doomed").error_type == "aborted"
    workers.tell(AbortAll())
    assert {outcome_of(inbox, j).error_type for j in ("a", "b")} == {"aborted"}


def test_two_workers_share_destinations_out_and_each_gets_all_of_its_own(
    probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    receivers: list[Receiver] = []
    try:
        # Receivers (ports) until both workers have a destination: each a coin toss.
        while len(receivers) < 2 or len({shard(r.url("/ok"), 2) for r in receivers}) < 2:
            assert len(receivers) < 12, "the shards of 12 ports were all one"
            receivers.append(Receiver().start())
        urls = [r.url("/ok") for r in receivers]
        # A destination always goes to one worker, whatever the URL's path and case.
        assert shard(urls[0], 2) == shard(urls[0].replace("/ok", "/other").upper(), 2)
        workers, _ = start_workers(workers=2)
        n = 10 * len(urls)
        for i in range(n):
            workers.tell(deliver(urls[i % len(urls)], ref, job_id=f"job-{i:03d}"))
        wait_until(lambda: len(inbox.of_type(DeliveryOutcome)) == n, TIMEOUT_S, "every outcome")
        assert all(o.ok for o in inbox.of_type(DeliveryOutcome))
        assert [len(r.received("/ok")) for r in receivers] == [10] * len(urls)
    finally:
        for r in receivers:
            r.stop()


def test_outcomes_are_counted_in_the_nodes_metrics(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    metrics = ApiMetrics()
    workers, _ = start_workers(metrics=metrics)
    workers.tell(deliver(receiver.url("/ok"), ref, job_id="ok"))
    workers.tell(deliver(receiver.url("/status/500"), ref, job_id="bad"))
    outcome_of(inbox, "ok"), outcome_of(inbox, "bad")
    text = metrics.render().decode()
    assert 'scheduled_db_webhook_deliveries_total{result="success"} 1.0' in text
    assert 'scheduled_db_webhook_deliveries_total{result="failure"} 1.0' in text
    assert 'scheduled_db_webhook_failures_total{error_type="http_error"} 1.0' in text


def test_stopping_answers_what_the_workers_still_hold(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    ref, inbox = probe
    workers, _ = start_workers()
    workers.tell(deliver(receiver.url("/block"), ref, job_id="held", timeout_ms=60_000))
    receiver.wait_until(lambda r: r.in_flight == 1)
    workers.stop(timeout=TIMEOUT_S)
    assert outcome_of(inbox, "held").error_type == "aborted"


def test_a_worker_that_dies_stops_the_actor_and_so_the_node(
    probe: tuple[Ref, Inbox], start_workers: StartWorkers
) -> None:
    workers, _ = start_workers()
    [pid] = workers.proxy().worker_pids().get(timeout=TIMEOUT_S)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not workers.is_alive(), TIMEOUT_S, "the actor to stop")
