"""Notices of outcomes: what a job's ``on_failure`` and ``on_success`` call for.

When an attempt's outcome is applied, the job's spec decides whether it calls for
a notice: ``on_failure`` after the last failed attempt of an occurrence (one that
will not be retried: its attempts ran out, or the failure is not one to retry),
or after every failed attempt with ``every_attempt``; ``on_success`` after a
completed attempt.  A triggered run's outcomes count as a scheduled occurrence's.

The notice is a record (:class:`~scheduled_db.state.records.Notice`, an ``n/``
key) written in the same transaction as the outcome, so it is replicated with
it: a leader that fails before sending it leaves it to the next one, which sends
it again under the same idempotency key (at least once).  Everything the request
needs is in the record, its body too, fixed here from the occurrence's attempts,
so a deleted job's notice still goes, and every send of it carries the same body.

The leader's scheduler sends it and settles it (:class:`~scheduled_db.state.commands.SettleNotice`):
deleted once sent or given up on, or kept with the time of its next try.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from scheduled_db.jobs.model import Attempt, Callback, Job, JobStatus, idempotency_key
from scheduled_db.state import commands as c
from scheduled_db.state.records import Notice, notice_key
from scheduled_db.state.results import CommandResult, ResultCode
from scheduled_db.state.txn import Txn

FAILURE = "failure"
SUCCESS = "success"
EVENTS = (FAILURE, SUCCESS)


def after_outcome(tx: Txn, job: Job, closed: Attempt, final: bool) -> tuple[Notice, ...]:
    """Write the notice the outcome ``closed`` calls for, if any (``final``: no
    further attempt of its occurrence follows)."""
    spec = job.spec
    callback: Callback | None
    if closed.status is JobStatus.COMPLETED:
        callback, event = spec.on_success, SUCCESS
    else:
        callback, event = spec.on_failure, FAILURE
        if callback is not None and not (final or callback.every_attempt):
            callback = None
    if callback is None:
        return ()
    notice = Notice(
        job.id,
        closed.scheduled_at_ms,
        closed.attempt_num,
        closed.trigger,
        event,
        callback.url,
        callback.headers,
        spec.signing_secret_ref,
        _body(tx, job, closed, event, final),
        next_at_ms=closed.end_time_ms or 0,
    )
    tx.put_notice(notice)
    return (notice,)


def _body(tx: Txn, job: Job, closed: Attempt, event: str, final: bool) -> dict[str, Any]:
    """The JSON a notice sends (docs/webhooks.md, "Callbacks")."""
    found = (
        tx.get_attempt(job.id, closed.scheduled_at_ms, n, closed.trigger)
        for n in range(1, closed.attempt_num + 1)
    )
    occurrence_ms = closed.scheduled_at_ms
    return {
        "event": event,
        "job_id": job.id,
        "type": job.spec.type.value,
        "scheduled_at": occurrence_ms // 1000,
        "scheduled_at_ms": occurrence_ms,
        "idempotency_key": idempotency_key(job.id, occurrence_ms, closed.manual),
        "trigger": closed.manual,
        "status": closed.status.value,
        "final": final,
        "attempts": [_attempt(a) for a in found if a is not None],
        "labels": job.spec.label_map,
    }


def _attempt(a: Attempt) -> dict[str, Any]:
    return {
        "attempt_num": a.attempt_num,
        "status": a.status.value,
        "http_status": a.http_status,
        "error_type": a.error_type.value if a.error_type else None,
        "error_message": a.error_message,
        "start_time_ms": a.start_time_ms,
        "end_time_ms": a.end_time_ms,
    }


def settle(tx: Txn, cmd: c.SettleNotice) -> CommandResult:
    key = notice_key(cmd.job_id, cmd.occurrence_ms, cmd.attempt, cmd.trigger, cmd.event)
    notice = tx.get_notice(key)
    kind = c.CommandKind.SETTLE_NOTICE
    if notice is None:
        return CommandResult(ResultCode.STALE, kind, cmd.job_id, detail="no such notice")
    if cmd.retry_at_ms is None:
        tx.delete_notice(notice)
        return CommandResult(ResultCode.OK, kind, cmd.job_id)
    kept = replace(notice, tries=notice.tries + 1, next_at_ms=cmd.retry_at_ms)
    tx.put_notice(kept)
    return CommandResult(ResultCode.OK, kind, cmd.job_id, notices=(kept,))
