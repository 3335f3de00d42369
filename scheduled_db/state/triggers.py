"""The commands of a triggered run (``POST /jobs/{id}/trigger``): one delivery of a
job now, outside its schedule.

A triggered run is an occurrence of its own, beside the job's scheduled one: its
state is a :class:`~scheduled_db.state.records.Trigger` record, so a trigger and a
scheduled run of one job can be in flight together, and nothing here changes the
job record (its status, next run and attempt count belong to the schedule).  Its
attempts are claimed and recorded as a scheduled occurrence's are (claim before
fire; a newer term may claim again an attempt left open; a failed attempt is
retried per the job's policy, with the same occurrence and so the same
idempotency key), with the commands' ``trigger`` flag set; the record is deleted
when the outcome is final, and the attempts stay in the history.

A cancelled job takes no trigger (and its cancel closed its runs); a paused job
and a finished one do: a manual run, or a re-run of a one-time job.

A recurring job with ``overlap: allow`` runs each scheduled occurrence the same
way: :func:`start_run` claims the occurrence's first attempt as a run record with
``scheduled`` set (its attempts keep the scheduled run's idempotency key and say
``trigger: false``) and moves the job on to its next run at once, so the next
occurrence can start while this one is in flight.
"""

from __future__ import annotations

from dataclasses import replace

from scheduled_db.jobs.model import Attempt, Job, JobStatus, Overlap
from scheduled_db.state import commands as c
from scheduled_db.state import transitions as t
from scheduled_db.state.notices import after_outcome
from scheduled_db.state.records import Trigger
from scheduled_db.state.results import CommandResult, ResultCode
from scheduled_db.state.transitions import OUTCOME_STATUSES, closed_attempt
from scheduled_db.state.txn import Txn

K = c.CommandKind


def _reject(code: ResultCode, kind: K, job: Job, why: str) -> CommandResult:
    return CommandResult(code, kind, job.id, job, detail=why)


def _live_job(tx: Txn, kind: K, job_id: str) -> Job | CommandResult:
    """The job a command on its triggered runs acts on, or the refusal: no such
    job, or a cancelled one."""
    job = tx.get_job(job_id)
    if job is None:
        return CommandResult(ResultCode.NOT_FOUND, kind, job_id)
    if job.status is JobStatus.CANCELLED:
        return _reject(ResultCode.ILLEGAL_TRANSITION, kind, job, "cancelled")
    return job


def _free_ms(tx: Txn, job_id: str, at_ms: int) -> int:
    """``at_ms``, or the first millisecond after it that no run of the job triggered
    before has (two triggers in one millisecond, or a clock stepped back): each
    run's occurrence, and so its idempotency key, is its own."""
    while tx.get_trigger(job_id, at_ms) or tx.get_attempt(job_id, at_ms, 1, trigger=True):
        at_ms += 1
    return at_ms


def trigger(tx: Txn, cmd: c.TriggerJob) -> CommandResult:
    job = _live_job(tx, K.TRIGGER, cmd.job_id)
    if isinstance(job, CommandResult):
        return job
    asked = _free_ms(tx, job.id, cmd.at_ms)
    run = Trigger(job.id, asked, fire_at_ms=asked)
    tx.put_trigger(None, run)
    return CommandResult(ResultCode.OK, K.TRIGGER, job.id, job, trigger=run)


def start_run(tx: Txn, cmd: c.StartRun) -> CommandResult:
    """The first attempt of an ``overlap: allow`` job's occurrence, claimed as a run of
    its own; the job moves on to its next run.  The checks are a first claim's.  If a
    run record already holds that millisecond (a manual run asked for at that very
    ms), the occurrence is claimed the ordinary way instead: it then runs as the
    job's own, and the next one waits for it."""
    as_claim = c.ClaimOccurrence(
        cmd.job_id, cmd.scheduled_at_ms, 1, cmd.node_id, cmd.term, cmd.at_ms
    )
    taken = tx.get_trigger(cmd.job_id, cmd.scheduled_at_ms) or tx.get_attempt(
        cmd.job_id, cmd.scheduled_at_ms, 1, trigger=True
    )
    job = tx.get_job(cmd.job_id)
    if job is None or taken is not None or job.spec.overlap is not Overlap.ALLOW:
        return t.claim(tx, as_claim)  # answers as a claim would (not found, refused...)
    problem = t.first_claim_problem(tx, job, as_claim)
    if problem is not None:
        return problem
    fire_ms = job.next_run_at_ms if job.next_run_at_ms is not None else cmd.scheduled_at_ms
    start_ms = max(cmd.at_ms, fire_ms)
    run = Trigger(
        job.id,
        cmd.scheduled_at_ms,
        fire_ms,
        attempt=1,
        claim_open=True,
        claim_node=cmd.node_id,
        claim_term=cmd.term,
        scheduled=True,
    )
    attempt = Attempt(
        job.id,
        cmd.scheduled_at_ms,
        1,
        cmd.node_id,
        cmd.term,
        start_ms,
        claimed_at_ms=cmd.at_ms,
        trigger=True,
        scheduled=True,
    )
    tx.put_trigger(None, run)
    tx.put_attempt(attempt)
    # The job moves on at once (its schedule over: completed; this last run goes on).
    times = {"first_attempt_at_ms": start_ms, "last_attempt_at_ms": start_ms}
    new = t.moved_on(tx, job, cmd.next_run_at_ms, JobStatus.COMPLETED, cmd.at_ms, **times)
    tx.put_job(job, new)
    skipped = t.record_skips(tx, job, cmd.skips, cmd.at_ms)
    return CommandResult(
        ResultCode.OK, K.START_RUN, job.id, new, attempt=attempt, trigger=run, skips=skipped
    )


def _claim_problem(run: Trigger | None, cmd: c.ClaimOccurrence, job: Job) -> str | None:
    if run is None:
        return f"no triggered run at {cmd.scheduled_at_ms}"
    if run.scheduled and job.paused:
        return "paused"  # an allow job's started run: a paused job does not fire
    if cmd.attempt != run.attempt + 1:
        return f"attempt {cmd.attempt} is not the next one ({run.attempt + 1})"
    if run.claim_open and cmd.term <= run.claim_term:
        return f"an attempt from term {run.claim_term} is in flight"
    return None


def claim(tx: Txn, cmd: c.ClaimOccurrence) -> CommandResult:
    job = _live_job(tx, K.CLAIM, cmd.job_id)
    if isinstance(job, CommandResult):
        return job
    run = tx.get_trigger(job.id, cmd.scheduled_at_ms)
    problem = _claim_problem(run, cmd, job)
    if problem is not None or run is None:
        return _reject(ResultCode.STALE, K.CLAIM, job, problem or "")
    attempt = Attempt(
        job.id,
        run.asked_ms,
        cmd.attempt,
        cmd.node_id,
        cmd.term,
        max(cmd.at_ms, run.fire_at_ms),  # sent at its fire time, not before
        claimed_at_ms=cmd.at_ms,
        trigger=True,
        scheduled=run.scheduled,
    )
    tx.put_attempt(attempt)
    claimed = replace(
        run, attempt=cmd.attempt, claim_open=True, claim_node=cmd.node_id, claim_term=cmd.term
    )
    tx.put_trigger(run, claimed)
    return CommandResult(ResultCode.OK, K.CLAIM, job.id, job, attempt=attempt, trigger=claimed)


def _outcome_problem(run: Trigger | None, cmd: c.RecordOutcome) -> tuple[ResultCode, str]:
    if cmd.status not in OUTCOME_STATUSES:
        return ResultCode.INVALID, f"{cmd.status.value} is not an outcome"
    if cmd.retry_at_ms is not None and cmd.status is JobStatus.COMPLETED:
        return ResultCode.INVALID, "a completed attempt has no retry"
    if run is None or not run.claim_open or run.attempt != cmd.attempt:
        return ResultCode.STALE, "not the attempt in flight"
    return ResultCode.OK, ""


def record_outcome(tx: Txn, cmd: c.RecordOutcome) -> CommandResult:
    job = _live_job(tx, K.RECORD_OUTCOME, cmd.job_id)
    if isinstance(job, CommandResult):
        return job
    run = tx.get_trigger(job.id, cmd.scheduled_at_ms)
    code, why = _outcome_problem(run, cmd)
    opened = tx.get_attempt(job.id, cmd.scheduled_at_ms, cmd.attempt, trigger=True)
    if code is not ResultCode.OK or run is None or opened is None:
        return _reject(code, K.RECORD_OUTCOME, job, why or "no such attempt")
    closed = closed_attempt(opened, cmd)
    tx.put_attempt(closed)
    after: Trigger | None = None
    if cmd.retry_at_ms is not None:
        after = replace(run, claim_open=False, fire_at_ms=cmd.retry_at_ms)
        tx.put_trigger(run, after)
    else:
        tx.delete_trigger(run)
    notices = after_outcome(tx, job, closed, final=after is None)
    return CommandResult(
        ResultCode.OK,
        K.RECORD_OUTCOME,
        job.id,
        job,
        attempt=closed,
        trigger=after,
        notices=notices,
    )
