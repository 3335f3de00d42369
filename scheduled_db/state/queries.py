"""Reads of the job state for the API and the scheduler, over any StateView.

Every query is a bounded key-range scan (never a scan of all jobs unless the
caller pages through them), so reading is cheap however many jobs are stored.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from itertools import islice

from scheduled_db.jobs.model import Attempt, Job, JobStatus, JobType
from scheduled_db.jobs.schedule import attempt_fire_ms
from scheduled_db.raft.messages import ConfState
from scheduled_db.state import records as r
from scheduled_db.state.stateview import ReverseStateView, StateView
from scheduled_db.state.txn import load_counters

MAX_PAGE = 1000
# A filtered listing examines at most this many index entries for one page: a page
# may then hold fewer items than asked (even none) with a next_cursor to go on from.
MAX_EXAMINED = 10_000
# Attempts are indexed by claim time, which comes before the start by at most the
# scheduler's claim-ahead (milliseconds): a listing "since" a time looks back this
# much further among the claims, and keeps those that started since.
CLAIM_LEAD_MS = 60_000


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


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a listing keeps: every condition given must hold (AND)."""

    status: JobStatus | None = None
    job_type: JobType | None = None
    labels: tuple[tuple[str, str], ...] = ()
    paused: bool | None = None
    id_prefix: str = ""  # narrows the scan of any index: each holds ids in order

    def matches(self, job: Job) -> bool:
        if not job.id.startswith(self.id_prefix):
            return False
        if self.status is not None and job.status is not self.status:
            return False
        if self.job_type is not None and job.spec.type is not self.job_type:
            return False
        if self.paused is not None and job.paused is not self.paused:
            return False
        mine = job.spec.labels
        return all(pair in mine for pair in self.labels)

    @property
    def only_status(self) -> bool:
        """Whether the status index (or the jobs, without a status) alone answers it:
        an id prefix narrows the range scanned, so it keeps the index exact."""
        return not (self.job_type or self.labels or self.paused is not None)


def _index_for(view: StateView, f: JobFilter) -> bytes:
    """The index a listing scans: the narrowest one its filter names (a label, the
    type, paused, the status), else the jobs themselves.  Each holds ids in order."""
    if f.labels:
        return r.label_prefix(*f.labels[0])
    indexed = view.get(r.INDEXES) is not None  # else: written before these indexes
    if f.job_type is not None and indexed:
        return r.type_prefix(f.job_type)
    if f.paused is True and indexed:
        return r.PAUSED
    if f.status is not None:
        return r.status_prefix(f.status)
    return r.JOB


def list_jobs(
    view: StateView,
    status: JobStatus | None = None,
    cursor: str | None = None,
    limit: int = 100,
    where: JobFilter | None = None,
) -> JobPage:
    """Jobs in id order that pass ``where`` (and have ``status`` if given), from
    after ``cursor``.  A page examines at most :data:`MAX_EXAMINED` index entries."""
    limit = max(1, min(limit, MAX_PAGE))
    f = where or JobFilter()
    if status is not None:
        f = replace(f, status=status)
    prefix = _index_for(view, f)
    # The ids after the cursor that begin with the id prefix: one key range.
    start = prefix + f.id_prefix.encode()
    end = r.prefix_end(start)
    lo = start if cursor is None else max(start, prefix + decode_cursor(cursor).encode() + b"\0")
    if f.only_status:
        # The index is exact: every entry is a match (the common, unfiltered case).
        pairs = list(islice(view.iter_range(lo, end), limit + 1))
        ids = [k[len(prefix) :].decode() for k, _ in pairs[:limit]]
        if prefix == r.JOB:
            jobs = [r.decode_job(v) for _, v in pairs[:limit]]
        else:
            jobs = [_require(get_job(view, i), i) for i in ids]
        more = len(pairs) > limit
        return JobPage(tuple(jobs), encode_cursor(ids[-1]) if more else None)
    found: list[Job] = []
    last = ""
    for examined, (key, value) in enumerate(view.iter_range(lo, end)):
        job_id = key[len(prefix) :].decode()
        if len(found) == limit or examined == MAX_EXAMINED:
            return JobPage(tuple(found), encode_cursor(last))
        last = job_id
        job = r.decode_job(value) if prefix == r.JOB else _require(get_job(view, job_id), job_id)
        if f.matches(job):
            found.append(job)
    return JobPage(tuple(found), None)


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    """Attempts across all jobs, newest claim first; ``next_cursor`` goes on (older)."""

    attempts: tuple[Attempt, ...]
    next_cursor: str | None


def recent_attempts(
    view: ReverseStateView,
    *,
    status: JobStatus | None = None,
    since_ms: int | None = None,
    job_id: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> ExecutionPage:
    """Attempts of every job (or of ``job_id``), newest first, that started at or
    after ``since_ms`` and have ``status``.  Scans the by-claim-time index backwards
    from ``cursor`` (a position it handed out), examining at most MAX_EXAMINED."""
    limit = max(1, min(limit, MAX_PAGE))
    if job_id is not None:
        # One job's history, by (occurrence, attempt): newest first backwards too.
        prefix = r.history_prefix(job_id)
        lo = prefix
    else:
        prefix = r.BY_START
        lo = prefix if since_ms is None else prefix + r.u64(max(0, since_ms - CLAIM_LEAD_MS))
    hi = r.prefix_end(prefix) if cursor is None else prefix + _decode_bytes(cursor)
    found: list[Attempt] = []
    examined = 0
    for key, value in view.iter_range_reverse(lo, hi):
        if len(found) == limit or examined == MAX_EXAMINED:
            # Go on from this entry: the next page's range ends just after it.
            return ExecutionPage(tuple(found), _encode_bytes(key[len(prefix) :] + b"\0"))
        examined += 1
        if job_id is None:
            raw = view.get(r.history_key(*r.parse_by_start_key(key)))
            if raw is None:
                continue
            value = raw
        a = r.decode_attempt(value)
        if status is not None and a.status is not status:
            continue
        if since_ms is not None and a.start_time_ms < since_ms:
            continue
        found.append(a)
    return ExecutionPage(tuple(found), None)


def _encode_bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_bytes(cursor: str) -> bytes:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCursorError(cursor) from None
    if not raw:
        raise InvalidCursorError(cursor)
    return raw


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
    attempt (moved by the job's jitter, if it has one), or the retry time after a
    failed one (the occurrence stays the same, and so does the idempotency key).
    For a run record (``trigger``) the occurrence is when it was asked for (or, with
    ``scheduled``, the scheduled time of an ``overlap: allow`` job's occurrence that
    was started beside the schedule), and the job's own next run plays no part.
    """

    job: Job
    occurrence_ms: int
    attempts: int
    fire_at_ms: int
    trigger: bool = False
    scheduled: bool = False  # a run record of an ``overlap: allow`` job's occurrence


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
        occurrence = occurrence or job.next_run_at_ms
        fire_at = attempt_fire_ms(job.spec, occurrence, job.next_run_at_ms, False)
        out.append(Due(job, occurrence, attempts, fire_at))
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
        if run.scheduled and job.paused:
            continue  # an allow job's started run waits for its resume
        out.append(Due(job, asked_ms, run.attempt, fire_ms, trigger=True, scheduled=run.scheduled))
    return out


def notices(view: StateView, limit: int) -> tuple[r.Notice, ...]:
    """The notices waiting to be sent (the first ``limit``, by job id)."""
    pairs = islice(view.iter_range(r.NOTICE, r.prefix_end(r.NOTICE)), limit)
    return tuple(r.decode_notice(v) for _, v in pairs)


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
