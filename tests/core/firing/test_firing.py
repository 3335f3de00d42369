"""The leader's decisions at fire time and after an attempt (pure, fixed times)."""

import random
from dataclasses import replace

from scheduled_db.firing.decisions import (
    FAILOVER_CATCHUP_MS,
    Attempted,
    Policy,
    after_attempt,
    claim,
    complete,
    notice_retry,
    on_resume,
    skip_missed,
    start_run,
)
from scheduled_db.jobs.model import (
    Job,
    JobSpec,
    JobStatus,
    JobType,
    MisfirePolicy,
    Overlap,
    SkipReason,
)
from scheduled_db.jobs.schedule import MAX_COUNTED_RUNS, Runs, runs_between
from scheduled_db.state import commands as c
from scheduled_db.state.queries import Due

HOUR = 3_600_000
T = 1_900_000_000_000 - 1_900_000_000_000 % HOUR  # on the hour
POLICY = Policy(max_attempts=3, timeout_ms=30_000, backoff_base_ms=1_000, backoff_cap_ms=8_000)
ONCE = JobSpec(id="once", type=JobType.UNICO, timestamp_ms=T, webhook_url="http://x/")
HOURLY = JobSpec(id="hourly", type=JobType.RECURRENTE, cron_expression="0 * * * *")


def _due(spec: JobSpec, occurrence: int, attempts: int = 0) -> Due:
    return Due(Job(spec, T - HOUR, occurrence), occurrence, attempts, occurrence)


def test_a_claim_names_the_next_attempt_of_the_occurrence() -> None:
    cmd = claim(_due(ONCE, T, attempts=1), "n1", 7, T + 5)
    assert cmd == c.ClaimOccurrence("once", T, 2, "n1", 7, T + 5)


def test_success_completes_a_one_time_job() -> None:
    cmds = after_attempt(ONCE, T, 1, Attempted(ok=True, end_ms=T + 20), POLICY, random.Random(1))
    record, done = cmds
    assert isinstance(record, c.RecordOutcome) and record.status is JobStatus.COMPLETED
    assert done == c.CompleteOccurrence("once", T, None, JobStatus.COMPLETED, T + 20)


def test_a_retryable_failure_asks_for_a_retry_within_the_backoff() -> None:
    failed = Attempted(ok=False, end_ms=T, retryable=True, http_status=503)
    (record,) = after_attempt(ONCE, T, 1, failed, POLICY, random.Random(1))
    assert isinstance(record, c.RecordOutcome) and record.status is JobStatus.FAILED
    assert record.retry_at_ms is not None and T < record.retry_at_ms <= T + 1_000


def test_retry_after_is_honoured() -> None:
    failed = Attempted(ok=False, end_ms=T, retryable=True, http_status=429, retry_after_ms=5_000)
    (record,) = after_attempt(ONCE, T, 1, failed, POLICY, random.Random(1))
    assert isinstance(record, c.RecordOutcome) and record.retry_at_ms == T + 5_000


def test_the_last_attempt_and_a_timeout_close_the_occurrence() -> None:
    lost = Attempted(ok=False, end_ms=T + 9, timed_out=True, retryable=True, error_type="timeout")
    record, done = after_attempt(ONCE, T, 3, lost, POLICY, random.Random(1))
    assert isinstance(record, c.RecordOutcome) and record.status is JobStatus.TIMEOUT
    assert record.error_type is not None and record.error_type.value == "timeout"
    assert done == c.CompleteOccurrence("once", T, None, JobStatus.TIMEOUT, T + 9)


def test_a_job_may_lower_but_not_raise_the_attempts() -> None:
    assert POLICY.attempts_for(JobSpec(id="a", type=JobType.UNICO, max_attempts=1)) == 1
    assert POLICY.attempts_for(JobSpec(id="a", type=JobType.UNICO, max_attempts=50)) == 3


def test_a_recurring_job_continues_after_a_failed_occurrence() -> None:
    failed = Attempted(ok=False, end_ms=T + 50, retryable=False, http_status=400)
    _, done = after_attempt(HOURLY, T, 1, failed, POLICY, random.Random(1))
    assert done == c.CompleteOccurrence("hourly", T, T + HOUR, None, T + 50)


def test_missed_runs_collapse_into_one_then_the_schedule_goes_on() -> None:
    """The run of T went out three hours late (a downtime): it stands for the three
    runs missed meanwhile, which are recorded as skipped by misfire."""
    three_hours_late = T + 3 * HOUR + 10
    done = complete(
        HOURLY, T, three_hours_late, JobStatus.COMPLETED, started_ms=three_hours_late - 5
    )
    missed = c.Skip(SkipReason.MISFIRE, T + HOUR, 3)
    assert done == c.CompleteOccurrence(
        "hourly", T, T + 4 * HOUR, None, three_hours_late, (missed,)
    )


def test_runs_due_while_a_delivery_ran_are_skipped_or_the_latest_buffered() -> None:
    """Sent on time at T + 10 ms, answered at T + 3.5 h: the runs of T + 1, 2, 3 h
    overlapped it.  skip passes over the three; buffer_one keeps the latest (fired
    at once) and passes over two; on time, nothing is skipped."""
    end = T + 3 * HOUR + HOUR // 2
    done = complete(HOURLY, T, end, JobStatus.COMPLETED, started_ms=T + 10)
    assert isinstance(done, c.CompleteOccurrence) and done.next_run_at_ms == T + 4 * HOUR
    assert done.skips == (c.Skip(SkipReason.OVERLAP, T + HOUR, 3),)
    buffered = complete(replace(HOURLY, overlap=Overlap.BUFFER_ONE), T, end, JobStatus.COMPLETED,
                        started_ms=T + 10)  # fmt: skip
    assert isinstance(buffered, c.CompleteOccurrence)
    assert buffered.next_run_at_ms == T + 3 * HOUR
    assert buffered.skips == (c.Skip(SkipReason.OVERLAP, T + HOUR, 2),)
    on_time = complete(HOURLY, T, T + 500, JobStatus.COMPLETED, started_ms=T + 10)
    assert isinstance(on_time, c.CompleteOccurrence) and on_time.skips == ()
    assert on_time.next_run_at_ms == T + HOUR
    late_and_slow = complete(HOURLY, T, end, JobStatus.COMPLETED, started_ms=T + HOUR + 10)
    assert isinstance(late_and_slow, c.CompleteOccurrence)
    assert late_and_slow.skips == (
        c.Skip(SkipReason.MISFIRE, T + HOUR, 1),
        c.Skip(SkipReason.OVERLAP, T + 2 * HOUR, 2),
    )


def test_a_misfire_skip_counts_the_run_and_those_missed_after_it() -> None:
    skipper = replace(HOURLY, misfire_policy=MisfirePolicy.SKIP)
    moved = skip_missed(_due(skipper, T), T + 2 * HOUR + 1, POLICY)
    assert isinstance(moved, c.CompleteOccurrence)
    assert moved.skips == (c.Skip(SkipReason.MISFIRE, T, 3),)


def test_resume_fires_the_latest_missed_run_once_or_skips_them_all() -> None:
    now = T + 3 * HOUR + 20
    assert on_resume(HOURLY, T, now) == (T + 3 * HOUR, (c.Skip(SkipReason.PAUSED, T, 3),))
    skipper = replace(HOURLY, misfire_policy=MisfirePolicy.SKIP)
    assert on_resume(skipper, T, now) == (T + 4 * HOUR, (c.Skip(SkipReason.PAUSED, T, 4),))
    assert on_resume(HOURLY, T, T + 30) == (None, ())  # only T was missed: it fires
    assert on_resume(HOURLY, T + HOUR, now - 2 * HOUR) == (None, ())  # not due yet
    assert on_resume(ONCE, T, now) == (None, ())  # a one-time job fires, however late


def test_runs_are_counted_up_to_a_cap_and_the_latest_is_exact() -> None:
    runs = runs_between(SECONDLY, T, T + 3_600_000)
    assert (runs.count, runs.first, runs.last) == (MAX_COUNTED_RUNS, T + 1_000, T + 3_600_000)
    assert runs.after == T + 3_601_000
    assert runs_between(SECONDLY, T, T + 2_500) == Runs(2, T + 1_000, T + 2_000, T + 3_000)
    assert runs_between(HOURLY, T, T + 10) == Runs(after=T + HOUR)
    ending = replace(HOURLY, last_date_ms=T + HOUR)
    assert runs_between(ending, T, T + 2 * HOUR) == Runs(1, T + HOUR, T + HOUR, None)


def test_skip_drops_a_missed_run_but_fire_once_and_on_time_runs_fire() -> None:
    skipper = JobSpec(
        id="s", type=JobType.RECURRENTE, cron_expression="0 * * * *",
        misfire_policy=MisfirePolicy.SKIP,
    )  # fmt: skip
    late = T + 2 * HOUR + 1
    moved = skip_missed(_due(skipper, T), late, POLICY)
    assert isinstance(moved, c.CompleteOccurrence) and moved.next_run_at_ms == T + 3 * HOUR
    assert skip_missed(_due(HOURLY, T), late, POLICY) is None  # fire_once fires
    assert skip_missed(_due(skipper, T), T + 500, POLICY) is None  # within the grace
    assert skip_missed(_due(skipper, T), T - 150, POLICY) is None  # claimed ahead
    assert skip_missed(_due(skipper, T, attempts=1), late, POLICY) is None  # a retry
    assert skip_missed(_due(ONCE, T), late, POLICY) is None  # one-time jobs always fire


def test_a_series_ends_at_last_date() -> None:
    ending = JobSpec(
        id="e", type=JobType.RECURRENTE, cron_expression="0 * * * *", last_date_ms=T + HOUR - 1
    )
    assert complete(ending, T, T + 5, JobStatus.COMPLETED) == c.CompleteOccurrence(
        "e", T, None, JobStatus.COMPLETED, T + 5
    )


SECONDLY = JobSpec(id="sec", type=JobType.RECURRENTE, cron_expression="* * * * * *")


def test_after_a_failover_the_next_run_follows_the_schedule() -> None:
    """The new leader took over at T + 1.4 s and re-fired the run of T, which an old
    leader had claimed: the run of T + 1 s still follows (late), not T + 2 s."""
    takeover = T + 1_400
    done = complete(SECONDLY, T, T + 1_450, JobStatus.COMPLETED, takeover)
    assert isinstance(done, c.CompleteOccurrence) and done.next_run_at_ms == T + 1_000
    # ... and so does the one after it, due before the takeover too.
    done = complete(SECONDLY, T + 1_000, T + 1_470, JobStatus.COMPLETED, takeover)
    assert isinstance(done, c.CompleteOccurrence) and done.next_run_at_ms == T + 2_000


def test_runs_that_came_due_while_a_delivery_ran_are_still_skipped() -> None:
    """Outside a failover (a slow receiver), the run underway covers the ones that
    came due meanwhile: the next run is the first after the delivery ended."""
    done = complete(SECONDLY, T + 20_000, T + 22_500, JobStatus.COMPLETED, T)
    assert isinstance(done, c.CompleteOccurrence) and done.next_run_at_ms == T + 23_000


def test_a_run_a_failover_delayed_is_not_a_misfire_but_a_downtime_is() -> None:
    skipper = JobSpec(
        id="s", type=JobType.RECURRENTE, cron_expression="* * * * * *",
        misfire_policy=MisfirePolicy.SKIP,
    )  # fmt: skip
    takeover = T + 3_000  # no leader from T to T + 3 s
    assert skip_missed(_due(skipper, T + 1_000), takeover + 50, POLICY, takeover) is None
    assert skip_missed(_due(skipper, T + 1_000), takeover + 50, POLICY) is not None
    long_ago = takeover - FAILOVER_CATCHUP_MS - 1_000  # down for longer: the policy decides
    assert skip_missed(_due(skipper, long_ago), takeover + 50, POLICY, takeover) is not None


def test_an_allow_job_starts_its_run_and_moves_on_at_once_collapsing_a_late_start() -> None:
    allow = replace(HOURLY, overlap=Overlap.ALLOW)
    on_time = start_run(_due(allow, T), "n1", 3, T - 200)
    assert on_time == c.StartRun("hourly", T, "n1", 3, T - 200, T + HOUR)
    late = start_run(_due(allow, T), "n1", 3, T + 2 * HOUR + 5)
    assert late.next_run_at_ms == T + 3 * HOUR
    assert late.skips == (c.Skip(SkipReason.MISFIRE, T + HOUR, 2),)


def test_a_notice_is_retried_on_the_backoff_until_its_sends_are_used_up() -> None:
    failed = Attempted(ok=False, end_ms=T, retryable=True, http_status=503)
    retry = notice_retry(1, failed, POLICY, random.Random(1))
    assert retry is not None and T < retry <= T + 1_000
    assert (
        notice_retry(1, replace(failed, retry_after_ms=4_000), POLICY, random.Random(1))
        == T + 4_000
    )
    assert notice_retry(POLICY.max_attempts, failed, POLICY, random.Random(1)) is None  # given up
    assert notice_retry(1, replace(failed, retryable=False), POLICY, random.Random(1)) is None
    assert notice_retry(1, Attempted(ok=True, end_ms=T), POLICY, random.Random(1)) is None  # sent
