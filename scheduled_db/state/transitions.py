"""One handler per command: check the job's status, then write the new state.

Status machine of a job (one occurrence at a time)::

    pending --claim--> in_progress --outcome--> completed | failed | timeout
    failed/timeout --claim (attempt + 1)--> in_progress           (retry)
    in_progress --claim (newer term, attempt + 1)--> in_progress  (failover re-fire)
    completed/failed/timeout/pending --complete(next run)--> pending   (recurring)
    completed/failed/timeout/pending --complete(no next run)--> final status
    pending/in_progress/failed/timeout --cancel--> cancelled (final)

A run asked for by ``POST /jobs/{id}/trigger`` is not part of this machine: it has
its own state and handlers (:mod:`scheduled_db.state.triggers`), and a cancel ends
it too.

A job is *finished* once ``completed_at_ms`` is set (final status or
cancelled); nothing but delete changes a finished job.  Handlers never raise:
every rejection is a :class:`CommandResult` with a code.

An attempt's ``start_time_ms`` is when it began, never its claim (claims are made
ahead of the run, and a start before the due time would read as an early firing):
at the claim it is the time the attempt is to be sent, the later of the claim and
the job's fire time; the outcome replaces it with when the request went out, which
is ``end_time_ms - response_time_ms`` (the response time counts from the send).
Only an attempt that sent nothing keeps the first value.  The claim time itself
is kept as ``claimed_at_ms``.
"""

from __future__ import annotations

from typing import Any

from scheduled_db.jobs.model import Attempt, Job, JobStatus, JobType, evolved
from scheduled_db.state import commands as c
from scheduled_db.state.notices import after_outcome
from scheduled_db.state.records import MAX_JOB_ID_BYTES, Execution
from scheduled_db.state.results import CommandResult, ResultCode
from scheduled_db.state.txn import Txn

OUTCOME_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT})
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.TIMEOUT})
CLAIMABLE = frozenset({JobStatus.PENDING, JobStatus.IN_PROGRESS}) | RETRYABLE
K = c.CommandKind


def _reject(code: ResultCode, kind: K, job_id: str, job: Job | None, why: str) -> CommandResult:
    return CommandResult(code, kind, job_id, job, detail=why)


def _not_found(kind: K, job_id: str) -> CommandResult:
    return CommandResult(ResultCode.NOT_FOUND, kind, job_id)


def _finished(job: Job) -> bool:
    return job.completed_at_ms is not None


def _id_problem(job_id: str) -> str | None:
    if not job_id:
        return "empty job id"
    if "\0" in job_id:
        return "job id contains NUL"
    if len(job_id.encode()) > MAX_JOB_ID_BYTES:
        return f"job id longer than {MAX_JOB_ID_BYTES} bytes"
    return None


def create(tx: Txn, cmd: c.CreateJob) -> CommandResult:
    job_id = cmd.spec.id
    problem = _id_problem(job_id)
    if problem is not None:
        return _reject(ResultCode.INVALID, K.CREATE, job_id, None, problem)
    old = tx.get_job(job_id)
    if old is not None:
        same = old.spec == cmd.spec
        code = ResultCode.EXISTS_IDENTICAL if same else ResultCode.EXISTS_DIFFERENT
        return CommandResult(code, K.CREATE, job_id, old)
    job = Job(
        spec=cmd.spec,
        created_at_ms=cmd.created_at_ms,
        next_run_at_ms=cmd.next_run_at_ms,
        traceparent=cmd.traceparent,
    )
    tx.put_job(None, job)
    tx.put_exec(job_id, Execution(cmd.next_run_at_ms), new=True)
    return CommandResult(ResultCode.OK, K.CREATE, job_id, job)


def delete(tx: Txn, cmd: c.DeleteJob) -> CommandResult:
    job = tx.get_job(cmd.job_id)
    if job is None:
        return _not_found(K.DELETE, cmd.job_id)
    tx.remove_job(job)
    return CommandResult(ResultCode.OK, K.DELETE, cmd.job_id, job)


def cancel(tx: Txn, cmd: c.CancelJob) -> CommandResult:
    job = tx.get_job(cmd.job_id)
    if job is None:
        return _not_found(K.CANCEL, cmd.job_id)
    if job.status is JobStatus.CANCELLED:
        return CommandResult(ResultCode.UNCHANGED, K.CANCEL, job.id, job)
    if _finished(job):
        return _reject(ResultCode.ILLEGAL_TRANSITION, K.CANCEL, job.id, job, "finished")
    ex = tx.get_exec(job.id)
    times: dict[str, int | None] = {}
    if ex.claim_open and ex.occurrence_ms is not None:
        # The in-flight attempt is closed now, so its late outcome is rejected.
        opened = tx.get_attempt(job.id, ex.occurrence_ms, ex.attempt)
        if opened is not None:
            closed = _closed(opened, JobStatus.CANCELLED, cmd.at_ms)
            tx.put_attempt(closed)
            times = _attempt_times(job, closed.attempt_num, closed.start_time_ms)
        tx.put_exec(job.id, evolved(ex, claim_open=False))
    _cancel_triggered_runs(tx, job, cmd.at_ms)
    new = job.evolve(
        **times,
        status=JobStatus.CANCELLED,
        next_run_at_ms=None,
        completed_at_ms=cmd.at_ms,
        cancelled_at_ms=cmd.at_ms,
        cancellation_reason=cmd.reason,
    )
    tx.put_job(job, new)
    return CommandResult(ResultCode.OK, K.CANCEL, job.id, new)


def _cancel_triggered_runs(tx: Txn, job: Job, at_ms: int) -> None:
    """A cancel ends the job's triggered runs too (:mod:`scheduled_db.state.triggers`):
    an attempt in flight is closed as cancelled, so its late outcome is refused,
    and the runs' records go."""
    for run in tx.triggers_of(job.id):
        if run.claim_open:
            opened = tx.get_attempt(job.id, run.asked_ms, run.attempt, trigger=True)
            if opened is not None:
                tx.put_attempt(_closed(opened, JobStatus.CANCELLED, at_ms))
        tx.delete_trigger(run)


def _claim_problem(job: Job, ex: Execution, cmd: c.ClaimOccurrence) -> str | None:
    if cmd.scheduled_at_ms != ex.occurrence_ms:
        return f"occurrence {cmd.scheduled_at_ms} is not the current one ({ex.occurrence_ms})"
    if cmd.attempt != ex.attempt + 1:
        return f"attempt {cmd.attempt} is not the next one ({ex.attempt + 1})"
    if job.status is JobStatus.IN_PROGRESS and cmd.term <= ex.claim_term:
        return f"an attempt from term {ex.claim_term} is in flight"
    return None


def first_claim_problem(tx: Txn, job: Job, cmd: c.ClaimOccurrence) -> CommandResult | None:
    """The refusal of a claim of the job's scheduled occurrence, or None."""
    if _finished(job) or job.paused or job.status not in CLAIMABLE:
        why = "paused" if job.paused else f"status {job.status.value}"
        return _reject(ResultCode.ILLEGAL_TRANSITION, K.CLAIM, job.id, job, why)
    problem = _claim_problem(job, tx.get_exec(job.id), cmd)
    if problem is not None:
        return _reject(ResultCode.STALE, K.CLAIM, job.id, job, problem)
    return None


def claim(tx: Txn, cmd: c.ClaimOccurrence) -> CommandResult:
    job = tx.get_job(cmd.job_id)
    if job is None:
        return _not_found(K.CLAIM, cmd.job_id)
    refused = first_claim_problem(tx, job, cmd)
    if refused is not None:
        return refused
    # Sent at its fire time (the next run, or the retry time), not before.
    fire_ms = cmd.scheduled_at_ms if job.next_run_at_ms is None else job.next_run_at_ms
    start_ms = max(cmd.at_ms, fire_ms)
    attempt = Attempt(
        job.id,
        cmd.scheduled_at_ms,
        cmd.attempt,
        cmd.node_id,
        cmd.term,
        start_ms,
        claimed_at_ms=cmd.at_ms,
    )
    tx.put_attempt(attempt)
    tx.put_exec(job.id, Execution(cmd.scheduled_at_ms, cmd.attempt, True, cmd.node_id, cmd.term))
    new = job.evolve(
        status=JobStatus.IN_PROGRESS,
        attempt_count=cmd.attempt,
        executing_node_id=cmd.node_id,
        **_attempt_times(job, cmd.attempt, start_ms),
    )
    tx.put_job(job, new)
    return CommandResult(ResultCode.OK, K.CLAIM, job.id, new, attempt=attempt)


def _outcome_problem(job: Job, ex: Execution, cmd: c.RecordOutcome) -> tuple[ResultCode, str]:
    if cmd.status not in OUTCOME_STATUSES:
        return ResultCode.INVALID, f"{cmd.status.value} is not an outcome"
    if cmd.retry_at_ms is not None and cmd.status is JobStatus.COMPLETED:
        return ResultCode.INVALID, "a completed attempt has no retry"
    if _finished(job):
        return ResultCode.ILLEGAL_TRANSITION, f"status {job.status.value}"
    if not ex.claim_open or (ex.occurrence_ms, ex.attempt) != (cmd.scheduled_at_ms, cmd.attempt):
        return ResultCode.STALE, "not the attempt in flight"
    return ResultCode.OK, ""


def record_outcome(tx: Txn, cmd: c.RecordOutcome) -> CommandResult:
    job = tx.get_job(cmd.job_id)
    if job is None:
        return _not_found(K.RECORD_OUTCOME, cmd.job_id)
    ex = tx.get_exec(job.id)
    code, why = _outcome_problem(job, ex, cmd)
    opened = tx.get_attempt(job.id, cmd.scheduled_at_ms, cmd.attempt)
    if code is not ResultCode.OK or opened is None:
        return _reject(code, K.RECORD_OUTCOME, job.id, job, why or "no such attempt")
    closed = closed_attempt(opened, cmd)
    tx.put_attempt(closed)
    tx.put_exec(job.id, evolved(ex, claim_open=False))
    new = job.evolve(
        status=cmd.status,
        next_run_at_ms=cmd.retry_at_ms,
        **_attempt_times(job, cmd.attempt, closed.start_time_ms),
    )
    tx.put_job(job, new)
    notices = after_outcome(tx, new, closed, final=cmd.retry_at_ms is None)
    return CommandResult(
        ResultCode.OK, K.RECORD_OUTCOME, job.id, new, attempt=closed, notices=notices
    )


def closed_attempt(opened: Attempt, cmd: c.RecordOutcome) -> Attempt:
    """The attempt ``opened`` as the outcome ``cmd`` closes it."""
    sent_ms = None if cmd.response_time_ms is None else cmd.end_time_ms - cmd.response_time_ms
    return _closed(
        opened,
        cmd.status,
        cmd.end_time_ms,
        sent_ms,
        http_status=cmd.http_status,
        response_time_ms=cmd.response_time_ms,
        error_message=cmd.error_message,
        error_type=cmd.error_type,
    )


def _closed(
    opened: Attempt, status: JobStatus, end_ms: int, sent_ms: int | None = None, **more: Any
) -> Attempt:
    """The attempt ``opened`` ended at ``end_ms`` with ``status``; it started when its
    request went out (``sent_ms``), or if it sent nothing when it was to be sent.
    Not before its claim (a clock stepped back), nor after its end (an attempt
    cancelled before its fire time ends at once).  The claim time is kept: records
    from before ``claimed_at_ms`` existed hold it as their start.  ``more``: other
    fields of the closed attempt (the response's)."""
    start_ms = opened.start_time_ms if sent_ms is None else max(sent_ms, opened.claim_ms)
    return evolved(
        opened,
        status=status,
        start_time_ms=min(start_ms, end_ms),
        end_time_ms=end_ms,
        claimed_at_ms=opened.claim_ms,
        **more,
    )


def _attempt_times(job: Job, attempt: int, start_ms: int) -> dict[str, int | None]:
    """The job's first and last attempt times, given attempt ``attempt`` of its
    current run started at ``start_ms``."""
    first = start_ms if attempt == 1 else job.first_attempt_at_ms
    return {"first_attempt_at_ms": first, "last_attempt_at_ms": start_ms}


def _complete_problem(job: Job, ex: Execution, cmd: c.CompleteOccurrence) -> tuple[ResultCode, str]:
    if _finished(job):
        return ResultCode.ILLEGAL_TRANSITION, f"status {job.status.value}"
    if job.status is JobStatus.IN_PROGRESS:
        return ResultCode.ILLEGAL_TRANSITION, "no outcome recorded for the attempt in flight"
    if cmd.scheduled_at_ms != ex.occurrence_ms:
        return ResultCode.STALE, f"occurrence {cmd.scheduled_at_ms} is not the current one"
    if cmd.next_run_at_ms is not None:
        if job.spec.type is not JobType.RECURRENTE:
            return ResultCode.INVALID, "only a recurring job has a next run"
        if cmd.next_run_at_ms <= cmd.scheduled_at_ms:
            return ResultCode.INVALID, "the next run must be after the occurrence"
        return ResultCode.OK, ""
    final = cmd.final_status or job.status
    if final not in OUTCOME_STATUSES:
        return ResultCode.INVALID, f"{final.value} is not a final status"
    return ResultCode.OK, ""


def complete(tx: Txn, cmd: c.CompleteOccurrence) -> CommandResult:
    job = tx.get_job(cmd.job_id)
    if job is None:
        return _not_found(K.COMPLETE, cmd.job_id)
    ex = tx.get_exec(job.id)
    code, why = _complete_problem(job, ex, cmd)
    if code is not ResultCode.OK:
        return _reject(code, K.COMPLETE, job.id, job, why)
    new = moved_on(tx, job, cmd.next_run_at_ms, cmd.final_status or job.status, cmd.at_ms)
    tx.put_job(job, new)
    skipped = record_skips(tx, job, cmd.skips, cmd.at_ms)
    return CommandResult(ResultCode.OK, K.COMPLETE, job.id, new, skips=skipped)


def moved_on(
    tx: Txn, job: Job, next_ms: int | None, final: JobStatus, at_ms: int, **changes: Any
) -> Job:
    """The job moved on to its next run at ``next_ms`` (a new occurrence, pending), or,
    with none, finished with ``final`` at ``at_ms``; ``changes`` besides."""
    if next_ms is None:
        return job.evolve(status=final, next_run_at_ms=None, completed_at_ms=at_ms, **changes)
    tx.put_exec(job.id, Execution(next_ms))
    return job.evolve(
        status=JobStatus.PENDING,
        next_run_at_ms=next_ms,
        attempt_count=0,
        executing_node_id=None,
        **changes,
    )


def record_skips(tx: Txn, job: Job, skips: tuple[c.Skip, ...], at_ms: int) -> tuple[Attempt, ...]:
    """One executions entry (status ``skipped``, attempt 0) per skip the leader
    decided, keyed by its first run (no run is skipped twice: an entry already
    there stays as it is)."""
    out = []
    for skip in skips:
        if skip.runs <= 0 or tx.get_attempt(job.id, skip.first_ms, 0) is not None:
            continue
        entry = Attempt(
            job.id,
            skip.first_ms,
            0,
            "",
            0,
            at_ms,
            end_time_ms=at_ms,
            status=JobStatus.SKIPPED,
            skip_reason=skip.reason,
            skipped_runs=skip.runs,
        )
        tx.put_attempt(entry)
        out.append(entry)
    return tuple(out)


def update(tx: Txn, cmd: c.UpdateJob) -> CommandResult:
    """A new spec for a job that is not finished and has no attempt in flight: its
    occurrence starts anew at ``next_run_at_ms`` (a retry waiting is dropped)."""
    job = _unfinished(tx, K.UPDATE, cmd.spec.id)
    if isinstance(job, CommandResult):
        return job
    if cmd.expected_version is not None and cmd.expected_version != job.version:
        why = f"version {job.version}, not {cmd.expected_version}"
        return _reject(ResultCode.STALE, K.UPDATE, job.id, job, why)
    if cmd.spec.type is not job.spec.type:
        return _reject(ResultCode.INVALID, K.UPDATE, job.id, job, "the type cannot change")
    if job.status is JobStatus.IN_PROGRESS:
        why = f"status {job.status.value}"
        return _reject(ResultCode.ILLEGAL_TRANSITION, K.UPDATE, job.id, job, why)
    tx.put_exec(job.id, Execution(cmd.next_run_at_ms))
    new = job.evolve(
        spec=cmd.spec,
        status=JobStatus.PENDING,
        next_run_at_ms=cmd.next_run_at_ms,
        attempt_count=0,
        executing_node_id=None,
        version=job.version + 1,
    )
    tx.put_job(job, new)
    return CommandResult(ResultCode.OK, K.UPDATE, job.id, new)


def _unfinished(tx: Txn, kind: K, job_id: str) -> Job | CommandResult:
    """The job ``job_id`` a command of ``kind`` acts on, or the result refusing the
    command: no such job, or the job is finished."""
    job = tx.get_job(job_id)
    if job is None:
        return _not_found(kind, job_id)
    if _finished(job):
        why = f"status {job.status.value}"
        return _reject(ResultCode.ILLEGAL_TRANSITION, kind, job.id, job, why)
    return job


def pause(tx: Txn, cmd: c.PauseJob) -> CommandResult:
    job = _unfinished(tx, K.PAUSE, cmd.job_id)
    if isinstance(job, CommandResult):
        return job
    if job.paused:
        return CommandResult(ResultCode.UNCHANGED, K.PAUSE, job.id, job)
    new = job.evolve(paused=True, version=job.version + 1)
    tx.put_job(job, new)
    return CommandResult(ResultCode.OK, K.PAUSE, job.id, new)


def resume(tx: Txn, cmd: c.ResumeJob) -> CommandResult:
    job = _unfinished(tx, K.RESUME, cmd.job_id)
    if isinstance(job, CommandResult):
        return job
    if not job.paused:
        return CommandResult(ResultCode.UNCHANGED, K.RESUME, job.id, job)
    new = job.evolve(paused=False, version=job.version + 1)
    skipped: tuple[Attempt, ...] = ()
    if cmd.next_run_at_ms is not None and job.status is JobStatus.PENDING:
        # The leader applied the misfire policy: runs missed while paused move on.
        tx.put_exec(job.id, Execution(cmd.next_run_at_ms))
        new = new.evolve(next_run_at_ms=cmd.next_run_at_ms, attempt_count=0)
        skipped = record_skips(tx, job, cmd.skips, cmd.at_ms)
    tx.put_job(job, new)
    return CommandResult(ResultCode.OK, K.RESUME, job.id, new, skips=skipped)


def prune_history(tx: Txn, cmd: c.PruneHistory) -> CommandResult:
    """Drop up to ``limit`` attempts started before the cutoff, except one in flight."""
    doomed: list[Attempt] = []
    for job_id, occurrence, n, trigger in tx.attempts_started_before(cmd.cutoff_ms):
        if len(doomed) >= cmd.limit:
            break
        if _in_flight(tx, job_id, occurrence, n, trigger):
            continue
        a = tx.get_attempt(job_id, occurrence, n, trigger)
        if a is not None:
            doomed.append(a)
    for a in doomed:  # collected first: the overlay must not change while iterated
        tx.delete_attempt(a)
    return CommandResult(ResultCode.OK, K.PRUNE_HISTORY, count=len(doomed))


def _in_flight(tx: Txn, job_id: str, occurrence: int, n: int, trigger: bool) -> bool:
    """Is this attempt the open claim of its occurrence (scheduled or triggered)?"""
    if trigger:
        run = tx.get_trigger(job_id, occurrence)
        return run is not None and run.claim_open and run.attempt == n
    ex = tx.get_exec(job_id)
    return ex.claim_open and (ex.occurrence_ms, ex.attempt) == (occurrence, n)
