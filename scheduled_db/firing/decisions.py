"""What the leader decides when a job is due and when an attempt ends.

Pure functions of (job, occurrence, now, policy): the scheduler actor calls them
and proposes the commands they return.  Every value a replica needs (claim time,
retry time, the next run of a recurring job) is computed here, on the leader,
and travels in the command (ARCHITECTURE rule 2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from scheduled_db.firing.retry import next_retry_ms
from scheduled_db.jobs.model import ErrorType, JobSpec, JobStatus, JobType, Overlap, SkipReason
from scheduled_db.jobs.schedule import after_downtime, next_run, runs_between
from scheduled_db.state import commands as c
from scheduled_db.state.queries import Due

# Runs that came due at most this long before the current leader took over were
# missed because there was no leader (a failover takes one to a few seconds), not
# because the cluster was down: each is fired, late, in order (see skip_missed).
# Runs missed for longer are a downtime, which the job's misfire policy decides.
FAILOVER_CATCHUP_MS = 10_000


class Jitter(Protocol):
    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """Cluster-wide delivery settings (a job may lower max_attempts, never raise it).

    The first four come from the ``execution.*`` keys (their defaults live in the key
    table only); the misfire grace is not configurable."""

    max_attempts: int
    timeout_ms: int
    backoff_base_ms: int
    backoff_cap_ms: int
    misfire_grace_ms: int = 1_000

    def attempts_for(self, spec: JobSpec) -> int:
        wanted = spec.max_attempts if spec.max_attempts is not None else self.max_attempts
        return max(1, min(wanted, self.max_attempts))

    def timeout_for(self, spec: JobSpec) -> int:
        return spec.timeout_ms if spec.timeout_ms is not None else self.timeout_ms


@dataclass(frozen=True, slots=True)
class Attempted:
    """How a delivery attempt ended, as the scheduler needs it."""

    ok: bool
    end_ms: int
    timed_out: bool = False
    retryable: bool = False
    retry_after_ms: int | None = None
    http_status: int | None = None
    response_time_ms: int | None = None
    error_type: str | None = None
    error_message: str | None = None


def claim(due: Due, node_id: str, term: int, now_ms: int) -> c.ClaimOccurrence:
    """Claim the next attempt of ``due``'s occurrence (claim before fire)."""
    return c.ClaimOccurrence(
        due.job.id, due.occurrence_ms, due.attempts + 1, node_id, term, now_ms, due.trigger
    )


def start_run(due: Due, node_id: str, term: int, now_ms: int, takeover_ms: int = 0) -> c.StartRun:
    """Start the occurrence of an ``overlap: allow`` job as a run of its own, the job
    moving on at once: to the run after it, or (a late start) to the first run after
    now, the runs missed meanwhile standing for one (see :func:`complete`)."""
    closing = complete(
        due.job.spec, due.occurrence_ms, now_ms, JobStatus.COMPLETED, takeover_ms, now_ms
    )
    assert isinstance(closing, c.CompleteOccurrence)
    return c.StartRun(
        due.job.id,
        due.occurrence_ms,
        node_id,
        term,
        now_ms,
        closing.next_run_at_ms,
        closing.skips,
    )


def _caught_up(occurrence_ms: int, takeover_ms: int) -> bool:
    """Was this run missed only because no leader was there to fire it?"""
    return takeover_ms - FAILOVER_CATCHUP_MS <= occurrence_ms < takeover_ms


def skip_missed(
    due: Due, now_ms: int, policy: Policy, takeover_ms: int = 0
) -> c.CompleteOccurrence | None:
    """For a recurring ``skip`` job whose run was missed, the command that moves it
    on to its next run without firing; None when the run should fire.

    ``takeover_ms`` is when the current leader began firing: a run due shortly
    before it (a failover's gap, :data:`FAILOVER_CATCHUP_MS`) is late from then,
    not from its due time, since nobody could have fired it sooner."""
    if due.attempts > 0 or due.trigger:
        return None  # a retry of an occurrence already begun, or a run asked for now
    late_from = takeover_ms if _caught_up(due.occurrence_ms, takeover_ms) else due.occurrence_ms
    if late_from >= now_ms - policy.misfire_grace_ms:
        return None  # on time (claims go out a little ahead of the run): fire it
    spec = due.job.spec
    fire, next_ms = after_downtime(
        spec, due.occurrence_ms, now_ms, grace_ms=policy.misfire_grace_ms
    )
    if fire:
        return None
    # The occurrence and every run after it up to now are passed over.
    missed = runs_between(spec, due.occurrence_ms, now_ms)
    skip = c.Skip(SkipReason.MISFIRE, due.occurrence_ms, 1 + missed.count)
    return c.CompleteOccurrence(
        due.job.id, due.occurrence_ms, next_ms, JobStatus.COMPLETED, now_ms, (skip,)
    )


def on_resume(spec: JobSpec, due_ms: int, now_ms: int) -> tuple[int | None, tuple[c.Skip, ...]]:
    """What resuming a job whose next run is ``due_ms`` does with the runs it missed
    while paused: ``(its new next run, or None to keep due_ms; the runs skipped)``.

    A one-time job, or a run not yet due, is kept (it fires, however late).  A
    recurring job's misfire policy decides: ``skip`` moves on to the next run after
    now, passing over every run missed; ``fire_once`` fires the latest run missed,
    once, at once, and passes over the others."""
    if due_ms > now_ms or spec.type is not JobType.RECURRENTE:
        return None, ()
    fire, following = after_downtime(spec, due_ms, now_ms)
    missed = runs_between(spec, due_ms, now_ms)  # after due_ms
    if not fire:
        if following is None:
            return None, ()  # the series is over: its last run fires, late
        return following, (c.Skip(SkipReason.PAUSED, due_ms, 1 + missed.count),)
    if missed.last is None:
        return None, ()  # only due_ms was missed: it fires
    return missed.last, (c.Skip(SkipReason.PAUSED, due_ms, missed.count),)


def complete(
    spec: JobSpec,
    occurrence_ms: int,
    now_ms: int,
    final: JobStatus,
    takeover_ms: int = 0,
    started_ms: int | None = None,
    late_reason: SkipReason = SkipReason.MISFIRE,
) -> c.Command:
    """Close an occurrence: a recurring job moves on to its next run after *now*,
    otherwise the job finishes with ``final``.

    Runs that came due while the occurrence was underway are not fired (they are
    recorded as skipped): those due before its first attempt went out
    (``started_ms``) were missed while nothing fired it (``late_reason``: a
    downtime's ``misfire``, or ``paused`` for a run claimed before a pause and sent
    after the resume; it fired once for them all); those due after it overlapped it, and
    the job's ``overlap`` policy decides: ``skip`` passes them over, ``buffer_one``
    keeps the latest of them, to fire at once, and passes over the rest.

    An occurrence due shortly before the current leader took over (``takeover_ms``)
    was late because of the failover, not because of its receiver: the run after it
    follows the schedule, so a failover loses no run (:func:`skip_missed` then
    fires it, late, unless the job's policy says skip)."""
    if _caught_up(occurrence_ms, takeover_ms):
        following = next_run(spec, occurrence_ms)
        if following is not None:
            return c.CompleteOccurrence(spec.id, occurrence_ms, following, None, now_ms)
        return c.CompleteOccurrence(spec.id, occurrence_ms, None, final, now_ms)
    started = min(max(occurrence_ms, started_ms or occurrence_ms), max(occurrence_ms, now_ms))
    skips: list[c.Skip] = []
    if started > occurrence_ms:  # sent late: the runs due before it went out were missed
        missed = runs_between(spec, occurrence_ms, started)
        if missed.first is not None:
            skips.append(c.Skip(late_reason, missed.first, missed.count))
    overlapped = runs_between(spec, started, now_ms)
    following = overlapped.after  # the first run after max(started, now): after now
    count = overlapped.count
    if spec.overlap_policy is Overlap.BUFFER_ONE and overlapped.last is not None:
        following, count = overlapped.last, count - 1  # the latest fires; the rest do not
    if overlapped.first is not None and count > 0:
        skips.append(c.Skip(SkipReason.OVERLAP, overlapped.first, count))
    status = None if following is not None else final
    return c.CompleteOccurrence(spec.id, occurrence_ms, following, status, now_ms, tuple(skips))


def after_attempt(
    spec: JobSpec,
    occurrence_ms: int,
    attempt: int,
    result: Attempted,
    policy: Policy,
    jitter: Jitter,
    takeover_ms: int = 0,
    trigger: bool = False,
    started_ms: int | None = None,
    late_reason: SkipReason = SkipReason.MISFIRE,
) -> tuple[c.Command, ...]:
    """The commands recording an attempt's outcome: retry it, or close the occurrence
    (``takeover_ms``, ``started_ms``, ``late_reason``: see :func:`complete`).  A
    triggered run (``trigger``) is retried the same way, per the job's policy, but
    closing it is its final outcome alone: the job's schedule is not its business."""
    status = (
        JobStatus.COMPLETED
        if result.ok
        else (JobStatus.TIMEOUT if result.timed_out else JobStatus.FAILED)
    )
    record = c.RecordOutcome(
        spec.id,
        occurrence_ms,
        attempt,
        status,
        result.end_ms,
        http_status=result.http_status,
        response_time_ms=result.response_time_ms,
        error_message=result.error_message,
        error_type=_error_type(result.error_type),
        trigger=trigger,
    )
    if not result.ok and result.retryable and attempt < policy.attempts_for(spec):
        retry_at = next_retry_ms(
            result.end_ms,
            attempt,
            result.retry_after_ms,
            policy.backoff_base_ms,
            policy.backoff_cap_ms,
            jitter,
        )
        return (replace(record, retry_at_ms=retry_at),)
    if trigger:
        return (record,)
    closing = complete(
        spec, occurrence_ms, result.end_ms, status, takeover_ms, started_ms, late_reason
    )
    return (record, closing)


def notice_retry(tries: int, result: Attempted, policy: Policy, jitter: Jitter) -> int | None:
    """When a notice whose send number ``tries`` ended with ``result`` goes again, on
    the deliveries' backoff; None when it is done: sent, or given up (a failure not
    worth retrying, or ``policy.max_attempts`` sends made)."""
    if result.ok or not result.retryable or tries >= policy.max_attempts:
        return None
    return next_retry_ms(
        result.end_ms,
        tries,
        result.retry_after_ms,
        policy.backoff_base_ms,
        policy.backoff_cap_ms,
        jitter,
    )


def _error_type(value: str | None) -> ErrorType | None:
    if value is None:
        return None
    try:
        return ErrorType(value)
    except ValueError:
        return ErrorType.CONNECTION_ERROR  # e.g. "aborted": the request may not have gone out
