"""The WebhookActor against a real local receiver: requests, outcomes, aborts, bounds."""

from __future__ import annotations

import configparser
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.runtime.clock import now_ms
from actors.runtime.metrics import ApiMetrics
from actors.webhook.actor import USER_AGENT, WebhookActor
from actors.webhook.attempt import Secrets
from actors.webhook.messages import (
    AbortAll,
    AbortDelivery,
    Deliver,
    DeliveryOutcome,
    DeliveryOutcomes,
    Withdraw,
)
from scheduled_db.policy import signing
from tests.actors.http_harness import FakeClock
from tests.actors.probe import Inbox, start_probe
from tests.actors.webhook_receiver import LOOPBACK_ALLOWED, Receiver

TIMEOUT_S = 10.0
SCHEDULED_MS = 1_800_000_000_000  # 2027-01-15T08:00:00Z
SENT_MS = SCHEDULED_MS + 1_234
PAYLOAD = {"order": 42, "tags": ["a", "b"]}

Ref = pykka.ActorRef[Any]
StartWebhook = Callable[..., Ref]


@pytest.fixture
def start_webhook() -> Iterator[StartWebhook]:
    """Starts WebhookActors (node ``n1``) and stops them, before the receiver and probe."""
    refs: list[Ref] = []

    def start(**kwargs: Any) -> Ref:
        kwargs.setdefault("policy", LOOPBACK_ALLOWED)  # the receiver is on loopback
        ref = WebhookActor.start("n1", **kwargs)
        refs.append(ref)
        return ref

    try:
        yield start
    finally:
        for ref in refs:
            ref.stop(timeout=TIMEOUT_S)


def deliver(url: str, receiver: Ref, job_id: str = "job-1", **changes: Any) -> Deliver:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "job_type": "unico",
        "scheduled_at_ms": SCHEDULED_MS,
        "attempt": 1,
        "term": 7,
        "url": url,
        "payload": PAYLOAD,
        "timeout_ms": 5_000,
        "reply": receiver.tell,
    }
    return Deliver(**{**fields, **changes})


def outcome_of(inbox: Inbox, job_id: str, timeout: float = TIMEOUT_S) -> DeliveryOutcome:
    return inbox.wait_for(DeliveryOutcome, lambda o: o.job_id == job_id, timeout=timeout)


def requests_seen(n: int) -> Callable[[Receiver], bool]:
    return lambda r: len(r.requests) == n


def setup_cfg_version() -> str:
    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[3] / "setup.cfg")
    return config["metadata"]["version"]


# --- what is sent, and success ------------------------------------------------------------


def test_a_2xx_is_a_success_and_the_request_carries_exact_headers_and_body(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook(clock=FakeClock(SENT_MS))
    webhook.tell(deliver(receiver.url("/ok"), ref, attempt=3))

    outcome = outcome_of(inbox, "job-1")
    assert outcome == DeliveryOutcome(
        job_id="job-1",
        scheduled_at_ms=SCHEDULED_MS,
        attempt=3,
        ok=True,
        start_ms=SENT_MS,
        end_ms=SENT_MS,
        sent_ms=SENT_MS,
        http_status=200,
        response_time_ms=0,
    )
    [request] = receiver.received("/ok")
    assert json.loads(request.body) == {
        "job_id": "job-1",
        "type": "unico",
        "scheduled_at": 1_800_000_000,
        "scheduled_at_ms": 1_800_000_000_000,
        "executed_at": 1_800_000_001,
        "executed_at_ms": 1_800_000_001_234,
        "attempt": 3,
        "payload": PAYLOAD,
        "timestamp": 1_800_000_001,  # the original's names: the send time,
        "data": PAYLOAD,  # and the payload
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT == f"scheduled-db/{setup_cfg_version()}"
    assert request.headers["Idempotency-Key"] == f"job-1:{SCHEDULED_MS}"
    assert request.headers["X-Scheduled-DB-Attempt"] == "3"
    assert request.headers["X-Scheduled-DB-Term"] == "7"
    assert "Cookie" not in request.headers


def test_a_triggered_run_has_its_own_key_and_says_so_in_the_body(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook(clock=FakeClock(SENT_MS))
    webhook.tell(deliver(receiver.url("/ok"), ref, trigger=True))
    assert outcome_of(inbox, "job-1").trigger
    [request] = receiver.received("/ok")
    assert request.headers["Idempotency-Key"] == f"job-1:t{SCHEDULED_MS}"
    body = json.loads(request.body)
    assert body["trigger"] is True and body["scheduled_at_ms"] == SCHEDULED_MS


def test_with_a_signing_secret_each_delivery_is_signed_over_its_exact_body(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    plain = start_webhook(clock=FakeClock(SENT_MS))
    plain.tell(deliver(receiver.url("/ok"), ref, job_id="plain"))
    outcome_of(inbox, "plain")
    assert signing.HEADER not in receiver.received("/ok")[0].headers  # no secret: unsigned
    secret = b"a-signing-secret-for-tests"
    signed = start_webhook(clock=FakeClock(SENT_MS), secrets=Secrets(signing=secret))
    signed.tell(deliver(receiver.url("/ok"), ref, job_id="signed"))
    outcome_of(inbox, "signed")
    request = receiver.received("/ok")[1]
    header = request.headers[signing.HEADER]
    assert header.startswith(f"t={SENT_MS // 1000},v1=")
    now_s = SENT_MS // 1000
    assert signing.verify(secret, header, request.body, now_s)
    assert not signing.verify(b"another-secret-of-length", header, request.body, now_s)
    assert not signing.verify(secret, header, request.body + b" ", now_s)  # body changed
    assert not signing.verify(secret, header, request.body, now_s + 301)  # too old
    assert signing.verify(secret, header, request.body, now_s + 300)
    assert not signing.verify(secret, "v1=abc", request.body, now_s)  # no timestamp
    assert secret.decode() not in str(dict(request.headers))


def test_a_job_naming_a_secret_is_signed_with_that_one_and_never_sent_unsigned(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    default, team_a = b"the-cluster-wide-secret", b"team-a-own-secret-xyz"
    webhook = start_webhook(
        clock=FakeClock(SENT_MS), secrets=Secrets(signing=default, named={"team-a": team_a})
    )
    webhook.tell(deliver(receiver.url("/ok"), ref, job_id="a", signing_secret_ref="team-a"))
    assert outcome_of(inbox, "a").ok
    request = receiver.received("/ok")[0]
    header, now_s = request.headers[signing.HEADER], SENT_MS // 1000
    assert signing.verify(team_a, header, request.body, now_s)
    assert not signing.verify(default, header, request.body, now_s)

    webhook.tell(deliver(receiver.url("/ok"), ref, job_id="b", signing_secret_ref="team-b"))
    outcome = outcome_of(inbox, "b")
    assert not outcome.ok and outcome.retryable and outcome.sent_ms is None
    assert outcome.error_message == "not sent: signing secret team-b is not configured on this node"
    assert len(receiver.received("/ok")) == 1  # the unsigned request never went out


def test_the_idempotency_key_is_the_same_for_every_attempt_of_an_occurrence(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook()
    webhook.tell(deliver(receiver.url("/status/503"), ref, attempt=1))
    assert inbox.wait_for(DeliveryOutcome, lambda o: o.attempt == 1).retryable
    webhook.tell(deliver(receiver.url("/ok"), ref, attempt=2))
    assert inbox.wait_for(DeliveryOutcome, lambda o: o.attempt == 2).ok

    [first] = receiver.received("/status/503")
    [second] = receiver.received("/ok")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.headers["Idempotency-Key"] == f"job-1:{SCHEDULED_MS}"
    assert first.headers["X-Scheduled-DB-Attempt"] == "1"
    assert second.headers["X-Scheduled-DB-Attempt"] == "2"


# --- HTTP errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "retryable", "message"),
    [
        ("/status/500?body=boom", 500, True, "HTTP 500: boom"),
        ("/status/502", 502, True, "HTTP 502"),
        ("/status/408", 408, True, "HTTP 408"),
        ("/status/404?body=no%20such%20hook", 404, False, "HTTP 404: no such hook"),
        ("/status/400?body=%1b%5b31m%0aforged%20line", 400, False, "HTTP 400: [31m forged line"),
    ],
)
def test_a_non_2xx_is_an_http_error(
    receiver: Receiver,
    probe: tuple[Ref, Inbox],
    start_webhook: StartWebhook,
    path: str,
    status: int,
    retryable: bool,
    message: str,
) -> None:
    ref, inbox = probe
    start_webhook().tell(deliver(receiver.url(path), ref))
    outcome = outcome_of(inbox, "job-1")
    assert (outcome.ok, outcome.error_type, outcome.http_status) == (False, "http_error", status)
    assert (outcome.retryable, outcome.error_message) == (retryable, message)
    assert outcome.retry_after_ms is None


def test_the_body_snippet_is_at_most_200_characters(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    start_webhook().tell(deliver(receiver.url(f"/status/500?body={'x' * 5000}"), ref))
    message = outcome_of(inbox, "job-1").error_message
    assert message is not None and message.startswith("HTTP 500: xxx")
    assert len(message) == len("HTTP 500: ") + 200


def test_a_429_reports_its_retry_after(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    start_webhook().tell(deliver(receiver.url("/status/429?retry_after=2"), ref))
    outcome = outcome_of(inbox, "job-1")
    assert (outcome.http_status, outcome.retryable, outcome.retry_after_ms) == (429, True, 2_000)


def test_a_redirect_is_not_followed(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    url = receiver.url(f"/status/307?location={receiver.url('/ok')}")
    start_webhook().tell(deliver(url, ref))
    outcome = outcome_of(inbox, "job-1")
    assert (outcome.error_type, outcome.http_status, outcome.retryable) == (
        "http_error",
        307,
        False,
    )
    assert outcome.error_message == "HTTP 307 (redirects are not followed)"
    assert receiver.received("/ok") == []


# --- transport errors --------------------------------------------------------------------------


def test_no_response_within_the_timeout_is_a_retryable_timeout(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    start_webhook().tell(deliver(receiver.url("/block"), ref, timeout_ms=300))
    outcome = outcome_of(inbox, "job-1")
    assert (outcome.ok, outcome.error_type, outcome.retryable) == (False, "timeout", True)
    assert outcome.error_message == "no response within 300 ms"
    assert outcome.sent_ms is not None and outcome.end_ms - outcome.sent_ms >= 300
    assert outcome.response_time_ms == outcome.end_ms - outcome.sent_ms


def test_a_refused_connection_is_a_retryable_connection_error(
    probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    ref, inbox = probe
    start_webhook().tell(deliver(f"http://127.0.0.1:{port}/hook", ref))
    outcome = outcome_of(inbox, "job-1")
    assert (outcome.error_type, outcome.retryable, outcome.http_status) == (
        "connection_error",
        True,
        None,
    )


def test_an_unresolvable_host_is_a_dns_error(
    probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    start_webhook().tell(deliver("http://does-not-exist.invalid/", ref))
    outcome = outcome_of(inbox, "job-1")
    assert (outcome.error_type, outcome.retryable) == ("dns_error", True)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "http://"])
def test_an_unusable_url_fails_for_good(
    probe: tuple[Ref, Inbox], start_webhook: StartWebhook, url: str
) -> None:
    ref, inbox = probe
    start_webhook().tell(deliver(url, ref))
    outcome = outcome_of(inbox, "job-1")
    assert (outcome.error_type, outcome.retryable) == ("connection_error", False)


# --- aborts --------------------------------------------------------------------------------------


def test_abort_delivery_cuts_that_job_short_at_once(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook()
    webhook.tell(deliver(receiver.url("/block"), ref, job_id="doomed", timeout_ms=60_000))
    webhook.tell(deliver(receiver.url("/block"), ref, job_id="kept", timeout_ms=60_000))
    receiver.wait_until(lambda r: r.in_flight == 2)

    webhook.tell(AbortDelivery("doomed"))
    outcome = outcome_of(inbox, "doomed", timeout=2.0)
    assert (outcome.ok, outcome.error_type, outcome.retryable) == (False, "aborted", False)
    assert outcome.sent_ms is not None
    assert inbox.of_type(DeliveryOutcome) == [outcome]  # the other job is still in flight

    receiver.wait_until(lambda r: r.in_flight == 1)  # the receiver saw the client go
    receiver.release()
    assert outcome_of(inbox, "kept").ok


def test_abort_all_cuts_every_delivery_short(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook()
    for job_id in ("a", "b", "c"):
        webhook.tell(deliver(receiver.url("/block"), ref, job_id=job_id, timeout_ms=60_000))
    receiver.wait_until(lambda r: r.in_flight == 3)

    webhook.tell(AbortAll())
    for job_id in ("a", "b", "c"):
        assert outcome_of(inbox, job_id, timeout=2.0).error_type == "aborted"


def test_a_delivery_aborted_while_waiting_for_a_slot_was_never_sent(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook(concurrency=1)
    webhook.tell(deliver(receiver.url("/block"), ref, job_id="holder", timeout_ms=60_000))
    receiver.wait_until(lambda r: r.in_flight == 1)
    webhook.tell(deliver(receiver.url("/ok"), ref, job_id="queued"))
    webhook.tell(AbortDelivery("queued"))

    outcome = outcome_of(inbox, "queued", timeout=2.0)
    assert (outcome.error_type, outcome.sent_ms, outcome.response_time_ms) == (
        "aborted",
        None,
        None,
    )
    receiver.release()
    assert outcome_of(inbox, "holder").ok
    assert receiver.received("/ok") == []


# --- handed over ahead of time ------------------------------------------------------------------


def test_deliveries_handed_over_ahead_go_out_at_their_time_never_before(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook()
    at = now_ms() + 300
    times = {"a": at, "b": at, "c": at, "d": at + 100}
    for job_id, not_before in times.items():
        webhook.tell(deliver(receiver.url("/ok"), ref, job_id=job_id, not_before_ms=not_before))
    outcomes = {job_id: outcome_of(inbox, job_id) for job_id in times}
    for job_id, outcome in outcomes.items():
        assert outcome.ok and outcome.sent_ms is not None
        assert outcome.sent_ms >= times[job_id], (job_id, outcome.sent_ms - times[job_id])
    arrived = {json.loads(r.body)["job_id"]: r.at * 1000 for r in receiver.received("/ok")}
    assert all(arrived[job_id] >= times[job_id] for job_id in times), arrived


def test_withdraw_takes_back_what_was_not_sent_and_nothing_else(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook()
    at = now_ms() + 1_000
    url = receiver.url("/ok")
    webhook.tell(deliver(url, ref, job_id="paused", not_before_ms=at))
    # The same job's manual run, and another occurrence: not named, not withdrawn.
    manual = deliver(url, ref, job_id="paused", not_before_ms=at, trigger=True)
    webhook.tell(manual)
    webhook.tell(deliver(url, ref, job_id="paused", scheduled_at_ms=SCHEDULED_MS + 1))
    webhook.tell(Withdraw("paused", ((SCHEDULED_MS, False),)))
    taken = inbox.wait_for(DeliveryOutcome, lambda o: o.error_type == "withdrawn")
    assert (taken.scheduled_at_ms, taken.trigger, taken.sent_ms) == (SCHEDULED_MS, False, None)
    assert now_ms() < at  # answered at once, not at its time
    webhook.tell(deliver(url, ref, job_id="marker", not_before_ms=at))  # after it, at once
    outcome_of(inbox, "marker")
    outcomes = inbox.of_type(DeliveryOutcome)
    assert len(outcomes) == 4 and [o for o in outcomes if not o.ok] == [taken]
    sent = sorted((b["job_id"], b["scheduled_at_ms"], b.get("trigger", False))
                  for b in (json.loads(r.body) for r in receiver.received("/ok")))  # fmt: skip
    assert sent == [
        ("marker", SCHEDULED_MS, False),
        ("paused", SCHEDULED_MS, True),
        ("paused", SCHEDULED_MS + 1, False),
    ]


def test_an_abort_cuts_short_a_delivery_handed_over_ahead(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook()
    at = now_ms() + 1_000
    webhook.tell(deliver(receiver.url("/ok"), ref, job_id="gone", not_before_ms=at))
    webhook.tell(AbortDelivery("gone"))
    outcome = outcome_of(inbox, "gone")
    assert (outcome.error_type, outcome.sent_ms) == ("aborted", None)
    assert now_ms() < at
    webhook.tell(deliver(receiver.url("/ok"), ref, job_id="marker", not_before_ms=at))
    outcome_of(inbox, "marker")
    assert [json.loads(r.body)["job_id"] for r in receiver.received("/ok")] == ["marker"]


def test_batched_outcomes_ending_together_come_in_one_message(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    webhook = start_webhook()
    at = now_ms() + 10_000
    for n in range(5):  # staged: an abort ends them all in one turn of the loop
        webhook.tell(deliver(receiver.url("/ok"), ref, f"s{n}", not_before_ms=at, batched=True))
    webhook.tell(AbortAll())
    (batch,) = [inbox.wait_for(DeliveryOutcomes)]
    assert [(o.job_id, o.error_type) for o in batch.outcomes] == [
        (f"s{n}", "aborted") for n in range(5)
    ]
    for n in range(20):  # sent: each outcome comes once, in whichever batch
        webhook.tell(deliver(receiver.url("/ok"), ref, f"b{n}", batched=True))

    def sent_outcomes(items: list[Any] | None = None) -> list[DeliveryOutcome]:
        seen = inbox.of_type(DeliveryOutcomes) if items is None else items
        batches = [m for m in seen if isinstance(m, DeliveryOutcomes)][1:]  # past the aborts
        return [o for b in batches for o in b.outcomes]

    inbox.wait_until(lambda items: len(sent_outcomes(items)) >= 20, TIMEOUT_S)
    assert sorted(o.job_id for o in sent_outcomes()) == sorted(f"b{n}" for n in range(20))
    assert all(o.ok for o in sent_outcomes()) and inbox.of_type(DeliveryOutcome) == []


# --- bounds, metrics, lifecycle ------------------------------------------------------------------


def test_no_more_than_concurrency_requests_are_in_flight(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    metrics = ApiMetrics()
    webhook = start_webhook(concurrency=2, metrics=metrics)
    for n in range(5):
        webhook.tell(deliver(receiver.url("/block"), ref, job_id=f"job-{n}", timeout_ms=60_000))
    receiver.wait_until(lambda r: r.in_flight == 2)
    assert metrics.registry.get_sample_value("scheduled_db_webhook_in_flight") == 2

    # Each request let through frees one slot for exactly one queued delivery.
    for seen in range(3, 6):
        receiver.release()
        receiver.wait_until(requests_seen(seen))
    receiver.release(2)
    for n in range(5):
        assert outcome_of(inbox, f"job-{n}").ok
    assert receiver.max_in_flight == 2
    assert metrics.registry.get_sample_value("scheduled_db_webhook_in_flight") == 0


def test_metrics_count_results_errors_durations_and_lateness(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    ref, inbox = probe
    metrics = ApiMetrics()
    webhook = start_webhook(metrics=metrics)
    due = now_ms() - 5_000  # so the first attempt is sent about 5 s late
    webhook.tell(deliver(receiver.url("/ok"), ref, job_id="ok", scheduled_at_ms=due))
    webhook.tell(deliver(receiver.url("/status/503"), ref, job_id="bad", attempt=2))
    outcome_of(inbox, "ok"), outcome_of(inbox, "bad")

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value("scheduled_db_" + name, labels)

    assert sample("webhook_deliveries_total", result="success") == 1
    assert sample("webhook_deliveries_total", result="failure") == 1
    assert sample("webhook_failures_total", error_type="http_error") == 1
    assert sample("execution_duration_seconds_count") == 2
    # Only first attempts measure lateness (a retry is late by its backoff).
    assert sample("firing_lateness_seconds_count") == 1
    assert sample("firing_lateness_seconds_bucket", le="0.001") == 0  # seconds late
    assert sample("firing_lateness_seconds_bucket", le="1.0") == 0
    assert sample("firing_lateness_seconds_bucket", le="15.0") == 1


def test_an_outcome_for_a_dead_receiver_is_dropped(
    receiver: Receiver, probe: tuple[Ref, Inbox], start_webhook: StartWebhook
) -> None:
    dead, _ = start_probe()
    dead.stop(timeout=TIMEOUT_S)
    ref, inbox = probe
    webhook = start_webhook()
    webhook.tell(deliver(receiver.url("/ok"), dead, job_id="orphan"))
    webhook.tell(deliver(receiver.url("/ok"), ref, job_id="next"))
    assert outcome_of(inbox, "next").ok
    assert webhook.is_alive()


def test_stopping_aborts_what_is_in_flight_and_ends_the_loop_thread(
    receiver: Receiver, probe: tuple[Ref, Inbox]
) -> None:
    ref, inbox = probe
    webhook = WebhookActor.start("n-stop", policy=LOOPBACK_ALLOWED)
    webhook.tell(deliver(receiver.url("/block"), ref, timeout_ms=60_000))
    receiver.wait_until(lambda r: r.in_flight == 1)

    started = time.monotonic()
    webhook.stop(timeout=TIMEOUT_S)
    assert time.monotonic() - started < 2.0
    assert outcome_of(inbox, "job-1").error_type == "aborted"
    assert not [t for t in threading.enumerate() if t.name == "webhook-n-stop"]


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        WebhookActor.start("n1", concurrency=0)


def test_a_job_with_jitter_names_the_nominal_time_even_when_its_offset_is_zero() -> None:
    """Only jobs with jitter carry nominal_at, all of them: an offset of 0 (1 in
    10,000 for a 10 s jitter) is a jittered run like any other."""
    from actors.webhook.attempt import request_body

    base = Deliver("j", "unico", 1_800_000_000_000, 1, 1, "http://x/", None, 1_000)
    plain = json.loads(request_body(base, 1_800_000_000_005))
    assert "nominal_at_ms" not in plain
    for moved in (0, 4_321):
        body = json.loads(request_body(replace(base, jittered_ms=moved), 1_800_000_004_400))
        assert body["nominal_at_ms"] == 1_800_000_000_000
        assert body["scheduled_at_ms"] == 1_800_000_000_000 + moved
