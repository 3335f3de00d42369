"""scheduled_db.client.retry: which failures are retried, and how long between tries."""

from __future__ import annotations

import pytest

from scheduled_db.client.retry import (
    Failure,
    RetryPolicy,
    Safety,
    parse_retry_after,
    retry_delay,
)

POLICY = RetryPolicy(attempts=6, max_wait_s=15, max_retry_after_s=5, backoff_s=0.2)
IDEMPOTENT, UNMADE_ONLY = Safety.IDEMPOTENT, Safety.UNMADE_ONLY


@pytest.mark.parametrize("safety", list(Safety))
@pytest.mark.parametrize(
    "failure",
    [
        Failure(503, "no_leader", 1),
        Failure(503, "not_leader", 1),
        Failure(503, "overloaded", 1),
        Failure(429, "rate_limited", 1),
        Failure(refused=True),
    ],
    ids=["no_leader", "not_leader", "overloaded", "rate_limited", "refused"],
)
def test_a_request_certainly_not_carried_out_is_retried_whatever_it_is(
    safety: Safety, failure: Failure
) -> None:
    assert retry_delay(POLICY, safety, failure, tries=1, waited=0) is not None


@pytest.mark.parametrize(
    "failure",
    [Failure(503, "unknown_outcome", 1), Failure(503, "", None), Failure(dropped=True)],
    ids=["unknown_outcome", "a proxy's 503", "dropped"],
)
def test_a_doubt_is_retried_only_when_sending_twice_is_harmless(failure: Failure) -> None:
    assert retry_delay(POLICY, IDEMPOTENT, failure, tries=1, waited=0) is not None
    assert retry_delay(POLICY, UNMADE_ONLY, failure, tries=1, waited=0) is None


@pytest.mark.parametrize(
    "failure",
    [
        Failure(400, "validation_error"),
        Failure(404, "job_not_found"),
        Failure(409, "job_in_progress"),
        Failure(412, "version_mismatch"),
        Failure(500, "internal_error"),
        Failure(502, ""),
        Failure(507, "disk_full", 5),
        Failure(),  # no answer, neither refused nor dropped: a timeout, a TLS failure
    ],
)
def test_other_failures_are_not_retried(failure: Failure) -> None:
    assert retry_delay(POLICY, IDEMPOTENT, failure, tries=1, waited=0) is None


def test_retry_after_is_honoured_and_capped() -> None:
    assert retry_delay(POLICY, IDEMPOTENT, Failure(503, "no_leader", 2), 1, 0) == 2
    assert retry_delay(POLICY, IDEMPOTENT, Failure(503, "no_leader", 60), 1, 0) == 5
    assert retry_delay(POLICY, IDEMPOTENT, Failure(503, "no_leader", None), 1, 0) == 1


def test_a_refused_connection_backs_off_doubling_up_to_a_second() -> None:
    delays = [retry_delay(POLICY, UNMADE_ONLY, Failure(refused=True), n, 0) for n in range(1, 6)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_the_tries_and_the_total_wait_are_bounded() -> None:
    unmade = Failure(503, "no_leader", 1)
    assert retry_delay(POLICY, IDEMPOTENT, unmade, tries=6, waited=0) is None
    assert retry_delay(POLICY, IDEMPOTENT, unmade, tries=2, waited=14.5) is None
    assert retry_delay(POLICY, IDEMPOTENT, unmade, tries=2, waited=14) == 1
    assert retry_delay(RetryPolicy(attempts=1), IDEMPOTENT, unmade, 1, 0) is None


def test_a_policy_that_cannot_try_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(backoff_s=-1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), (" 0.5 ", 0.5), (None, None), ("soon", None), ("-1", None), ("nan", None)],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds
