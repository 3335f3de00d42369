"""Reads of the job state for the API and the scheduler, over any StateView.

Every query is a bounded key-range scan (never a scan of all jobs unless the
caller pages through them), so reading is cheap however many jobs are stored.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from itertools import islice

from scheduled_db.jobs.model import Attempt, Job, JobStatus
from scheduled_db.raft.messages import ConfState
from scheduled_db.state import records as r
from scheduled_db.state.stateview import StateView
from scheduled_db.state.txn import load_counters

MAX_PAGE = 1000


class InvalidCursorError(ValueError):
    """A list cursor that this store did not hand out."""

    def __init__(self, cursor: str) -> None:
        super().__init__(f"invalid cursor {cursor!r}")


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing; pass ``next_cursor`` back for the next (None: the end)."""

    jobs: tuple[Job, ...]
    next_cursor: str | None


def encode_cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        job_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursorError(cursor) from None
    if not job_id:
        raise InvalidCursorError(cursor)
    return job_id


def get_job(view: StateView, job_id: str) -> Job | None:
    raw = view.get(r.job_key(job_id))
    return None if raw is None else r.decode_job(raw)


def get_execution(view: StateView, job_id: str) -> r.Execution | None:
    raw = view.get(r.exec_key(job_id))
    return None if raw is None else r.decode_execution(raw)


def _require(job: Job | None, job_id: str) -> Job:
    if job is None:
        raise r.RecordError(f"index names job {job_id!r} but it has no record")
    return job


def list_jobs(
    view: StateView, status: JobStatus | None = None, cursor: str | None = None, limit: int = 100
) -> JobPage:
    """Jobs in id order (of one status if given), from after ``cursor``."""
    limit = max(1, min(limit, MAX_PAGE))
    prefix = r.JOB if status is None else r.status_prefix(status)
    lo = prefix if cursor is None else prefix + decode_cursor(cursor).encode() + b"\0"
    pairs = list(islice(view.iter_range(lo, r.prefix_end(prefix)), limit + 1))
    ids = [k[len(prefix) :].decode() for k, _ in pairs[:limit]]
    if status is None:
        jobs = [r.decode_job(v) for _, v in pairs[:limit]]
    else:
        jobs = [_require(get_job(view, i), i) for i in ids]
    more = len(pairs) > limit
    return JobPage(tuple(jobs), encode_cursor(ids[-1]) if more else None)


def executions(view: StateView, job_id: str, limit: int | None = None) -> tuple[Attempt, ...]:
    """Attempts of a job in (occurrence, attempt) order."""
    prefix = r.history_prefix(job_id)
    pairs = islice(view.iter_range(prefix, r.prefix_end(prefix)), limit)
    return tuple(r.decode_attempt(v) for _, v in pairs)


def current_attempts(view: StateView, job_id: str) -> tuple[Attempt, ...]:
    """Attempts of the job's current occurrence (the one its execution record names:
    the run in flight or last made, or, once a recurring job moved on, the next run,
    which has none yet), in attempt order."""
    ex = get_execution(view, job_id)
    if ex is None or ex.occurrence_ms is None:
        return ()
    lo = r.history_key(job_id, ex.occurrence_ms, 0)
    hi = r.history_key(job_id, ex.occurrence_ms + 1, 0)
    found = (r.decode_attempt(v) for _, v in view.iter_range(lo, hi))
    return tuple(a for a in found if not a.trigger)  # a run triggered in that very ms


def due_before(view: StateView, before_ms: int, limit: int = MAX_PAGE) -> tuple[Job, ...]:
    """Jobs due to fire (or retry) strictly before ``before_ms``, earliest first."""
    hi = r.DUE + r.u64(before_ms)
    out = []
    for key, _ in islice(view.iter_range(r.DUE, hi), limit):
        _, job_id = r.parse_due_key(key)
        out.append(_require(get_job(view, job_id), job_id))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Due:
    """A job due to fire: the occurrence it is due for and the attempts made on it.

    ``fire_at_ms`` is the job's next run: the occurrence itself for a first
    attempt, or the retry time after a failed one (the occurrence stays the same,
    and so does the idempotency key).  For a triggered run (``trigger``) the
    occurrence is when it was asked for, and the job's own next run plays no part.
    """

    job: Job
    occurrence_ms: int
    attempts: int
    fire_at_ms: int
    trigger: bool = False


def due_occurrences(view: StateView, before_ms: int, limit: int = MAX_PAGE) -> tuple[Due, ...]:
    """:func:`due_before` with each job's current occurrence and attempt count, and
    the triggered runs due before ``before_ms``: the first ``limit`` of both, by
    fire time."""
    out = []
    for job in due_before(view, before_ms, limit):
        assert job.next_run_at_ms is not None  # the due index holds only jobs with one
        ex = get_execution(view, job.id)
        occurrence = ex.occurrence_ms if ex is not None and ex.occurrence_ms is not None else None
        attempts = ex.attempt if ex is not None else 0
        out.append(Due(job, occurrence or job.next_run_at_ms, attempts, job.next_run_at_ms))
    triggered = due_triggers(view, before_ms, limit)
    if not triggered:
        return tuple(out)
    return tuple(sorted(out + triggered, key=lambda d: d.fire_at_ms)[:limit])


def due_triggers(view: StateView, before_ms: int, limit: int = MAX_PAGE) -> list[Due]:
    """Triggered runs whose next attempt is due before ``before_ms``, earliest first."""
    hi = r.TRIGGER_DUE + r.u64(before_ms)
    out = []
    for key, _ in islice(view.iter_range(r.TRIGGER_DUE, hi), limit):
        fire_ms, job_id, asked_ms = r.parse_trigger_due_key(key)
        run = get_trigger(view, job_id, asked_ms)
        if run is None:
            raise r.RecordError(f"trigger index names a run of {job_id!r} that has no record")
        job = _require(get_job(view, job_id), job_id)
        out.append(Due(job, asked_ms, run.attempt, fire_ms, trigger=True))
    return out


def get_trigger(view: StateView, job_id: str, asked_ms: int) -> r.Trigger | None:
    key = r.trigger_key(job_id, asked_ms)
    raw = view.get(key)
    return None if raw is None else r.decode_trigger(key, raw)


def triggers(view: StateView, limit: int | None = None) -> tuple[r.Trigger, ...]:
    """Triggered runs not finished yet, of every job (few: each lives for one run)."""
    pairs = islice(view.iter_range(r.TRIGGER, r.prefix_end(r.TRIGGER)), limit)
    return tuple(r.decode_trigger(k, v) for k, v in pairs)


def open_claims(view: StateView, limit: int | None = None) -> tuple[Attempt, ...]:
    """Attempts claimed but without an outcome: in flight, or lost with a leader;
    those of scheduled occurrences, then those of triggered runs."""
    out = []
    for key, _ in islice(view.iter_range(r.CLAIM, r.prefix_end(r.CLAIM)), limit):
        job_id = key[len(r.CLAIM) :].decode()
        ex = get_execution(view, job_id)
        if ex is None or ex.occurrence_ms is None:
            raise r.RecordError(f"claim of job {job_id!r} has no execution record")
        raw = view.get(r.history_key(job_id, ex.occurrence_ms, ex.attempt))
        if raw is not None:
            out.append(r.decode_attempt(raw))
    for run in triggers(view):
        if limit is not None and len(out) >= limit:
            break
        if run.claim_open:
            raw = view.get(r.history_key(run.job_id, run.asked_ms, run.attempt, trigger=True))
            if raw is not None:
                out.append(r.decode_attempt(raw))
    return tuple(out)


def counters(view: StateView) -> r.Counters:
    return load_counters(view)


def conf_state(view: StateView) -> ConfState:
    raw = view.get(r.CONF)
    return ConfState() if raw is None else r.decode_conf(raw)


def members(view: StateView) -> dict[str, tuple[str, str]]:
    """Node id -> (raft address, http address) of every member whose address is known."""
    out = {}
    for key, raw in view.iter_range(r.MEMBER, r.prefix_end(r.MEMBER)):
        out[key[len(r.MEMBER) :].decode()] = r.decode_member(raw)
    return out
