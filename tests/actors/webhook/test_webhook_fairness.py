"""The WebhookActor shares its slots across destinations: a receiver that hangs or has
a backlog delays only its own deliveries (issue 16, defect 7).  Real receivers on
loopback; the policy itself is unit-tested in tests/core/firing/test_fair_queue.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors.runtime.metrics import ApiMetrics
from actors.webhook.actor import WebhookActor
from actors.webhook.messages import AbortAll, DeliveryOutcome
from scheduled_db.firing.fair_queue import INITIAL_CAP
from tests.actors.probe import Inbox
from tests.actors.webhook.test_webhook import TIMEOUT_S, deliver, outcome_of, requests_seen
from tests.actors.webhook_receiver import LOOPBACK_ALLOWED, Receiver

pytestmark = pytest.mark.timeout(60)

Ref = pykka.ActorRef[Any]
HOLD_MS = 60_000  # a /block request's timeout: longer than any test


@pytest.fixture
def slow() -> Iterator[Receiver]:
    """The receiver whose requests the tests hold (``/block``)."""
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def fast() -> Iterator[Receiver]:
    """Another origin, answering at once (``/ok``)."""
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def metrics() -> ApiMetrics:
    return ApiMetrics()


@pytest.fixture
def start_webhook(metrics: ApiMetrics) -> Iterator[Any]:
    refs: list[Ref] = []

    def start(**kwargs: Any) -> Ref:
        ref = WebhookActor.start("n1", policy=LOOPBACK_ALLOWED, metrics=metrics, **kwargs)
        refs.append(ref)
        return ref

    yield start
    for ref in refs:
        ref.stop(timeout=TIMEOUT_S)


def sample(metrics: ApiMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value("scheduled_db_" + name)


def eventually(cond: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for a condition on what the actor's loop thread sets, such as a
    gauge; the actor has no reply to wait on."""
    deadline = time.monotonic() + TIMEOUT_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # the interval of a bounded poll, not a settle delay


def waiting_is(metrics: ApiMetrics, n: int) -> None:
    eventually(lambda: sample(metrics, "webhook_waiting") == n, f"{n} waiting")


def hold(webhook: Ref, slow: Receiver, ref: Ref, n: int, prefix: str = "held") -> None:
    for i in range(n):
        webhook.tell(deliver(slow.url("/block"), ref, job_id=f"{prefix}-{i}", timeout_ms=HOLD_MS))


def test_a_hanging_destination_holds_its_share_and_others_are_sent_at_once(
    slow: Receiver, fast: Receiver, probe: tuple[Ref, Inbox], start_webhook: Any
) -> None:
    ref, inbox = probe
    webhook = start_webhook(concurrency=8, per_destination=32)
    hold(webhook, slow, ref, 20)  # more than every slot there is
    slow.wait_until(lambda r: r.in_flight == INITIAL_CAP)

    for i in range(3):
        webhook.tell(deliver(fast.url("/ok"), ref, job_id=f"fast-{i}"))
    for i in range(3):
        assert outcome_of(inbox, f"fast-{i}").ok
    assert slow.in_flight == INITIAL_CAP  # its share, though slots are free
    assert len(inbox.of_type(DeliveryOutcome)) == 3  # nothing held came back
    slow.release(1000)


def test_destinations_take_turns_for_the_free_slots(
    slow: Receiver,
    fast: Receiver,
    probe: tuple[Ref, Inbox],
    start_webhook: Any,
    metrics: ApiMetrics,
) -> None:
    ref, inbox = probe
    webhook = start_webhook(concurrency=1)
    hold(webhook, slow, ref, 5)
    slow.wait_until(lambda r: r.in_flight == 1)
    webhook.tell(deliver(fast.url("/block"), ref, job_id="other", timeout_ms=HOLD_MS))
    waiting_is(metrics, 5)

    slow.release()  # held-0 ends; held-1 had its turn before "other" arrived
    slow.wait_until(requests_seen(2))
    slow.release()  # held-1 ends: now "other", not held-2
    fast.wait_until(requests_seen(1))
    assert len(slow.requests) == 2
    fast.release()
    assert outcome_of(inbox, "other").ok
    slow.release(1000)
    for i in range(5):
        assert outcome_of(inbox, f"held-{i}").ok


def test_timeouts_halve_a_destination_share_down_to_one(
    slow: Receiver, probe: tuple[Ref, Inbox], start_webhook: Any, metrics: ApiMetrics
) -> None:
    ref, inbox = probe
    webhook = start_webhook(per_destination=32)
    for i in range(INITIAL_CAP):
        webhook.tell(deliver(slow.url("/block"), ref, job_id=f"t-{i}", timeout_ms=300))
    for i in range(INITIAL_CAP):
        assert outcome_of(inbox, f"t-{i}").error_type == "timeout"
    assert sample(metrics, "webhook_destination_cuts_total") == INITIAL_CAP

    hold(webhook, slow, ref, 3)
    waiting_is(metrics, 2)  # one at a time now
    slow.wait_until(lambda r: r.in_flight == 1)
    slow.release()
    slow.wait_until(requests_seen(INITIAL_CAP + 3))  # an answer: room for two
    slow.wait_until(lambda r: r.in_flight == 2)
    waiting_is(metrics, 0)
    slow.release(1000)
    for i in range(3):
        assert outcome_of(inbox, f"held-{i}").ok


def test_a_delivery_that_waits_its_whole_timeout_fails_unsent_as_a_timeout(
    slow: Receiver, probe: tuple[Ref, Inbox], start_webhook: Any, metrics: ApiMetrics
) -> None:
    ref, inbox = probe
    webhook = start_webhook(concurrency=1)
    hold(webhook, slow, ref, 1)
    slow.wait_until(lambda r: r.in_flight == 1)
    webhook.tell(deliver(slow.url("/ok"), ref, job_id="late", timeout_ms=300))

    outcome = outcome_of(inbox, "late")
    assert (outcome.ok, outcome.error_type, outcome.retryable) == (False, "timeout", True)
    assert (outcome.sent_ms, outcome.response_time_ms) == (None, None)
    assert outcome.end_ms - outcome.start_ms >= 300
    port = slow.port
    assert outcome.error_message == (
        f"not sent: no turn to send to http://127.0.0.1:{port} within 300 ms"
    )
    waiting_is(metrics, 0)
    slow.release(1000)
    assert outcome_of(inbox, "held-0").ok
    assert slow.received("/ok") == []


def test_abort_all_reports_every_queued_and_sent_delivery_once_and_sends_no_more(
    slow: Receiver, probe: tuple[Ref, Inbox], start_webhook: Any, metrics: ApiMetrics
) -> None:
    ref, inbox = probe
    webhook = start_webhook(concurrency=2)
    hold(webhook, slow, ref, 6)
    slow.wait_until(lambda r: r.in_flight == 2)
    webhook.tell(AbortAll())

    outcomes = [outcome_of(inbox, f"held-{i}") for i in range(6)]
    assert {o.error_type for o in outcomes} == {"aborted"}
    assert sorted(o.sent_ms is None for o in outcomes) == [False] * 2 + [True] * 4
    slow.wait_until(lambda r: r.in_flight == 0)
    webhook.tell(deliver(slow.url("/ok"), ref, job_id="after"))  # a barrier
    assert outcome_of(inbox, "after").ok
    assert len(inbox.of_type(DeliveryOutcome)) == 7
    assert len(slow.received("/block")) == 2
    assert sample(metrics, "webhook_waiting") == 0


def test_per_destination_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_destination"):
        WebhookActor.start("n1", per_destination=0)
