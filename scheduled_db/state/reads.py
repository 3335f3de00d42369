"""The reads of the applied state, as records, and :func:`answer`: the one dispatch.

The StorageActor (over RocksDB) and the in-memory twin the API tests use both
answer a query with :func:`answer`, so the two cannot disagree on which queries
exist or what each returns.  A query is a frozen record, like a command; the
actors pass them inside :class:`actors.storage.messages.Read`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Never, NoReturn

from scheduled_db.jobs.model import JobStatus
from scheduled_db.state import fsm, queries
from scheduled_db.state.stateview import ReverseStateView, state_digest


@dataclass(frozen=True, slots=True)
class GetJob:
    """The job (``None`` if there is none)."""

    job_id: str


@dataclass(frozen=True, slots=True)
class ListJobs:
    """One :class:`~scheduled_db.state.queries.JobPage`; raises InvalidCursorError."""

    status: JobStatus | None = None
    cursor: str | None = None
    limit: int = 100
    where: queries.JobFilter | None = None


@dataclass(frozen=True, slots=True)
class RecentAttempts:
    """One :class:`~scheduled_db.state.queries.ExecutionPage`: attempts across jobs,
    newest first; raises InvalidCursorError."""

    status: JobStatus | None = None
    since_ms: int | None = None
    job_id: str | None = None
    cursor: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class GetExecutions:
    """The job's attempts, oldest first."""

    job_id: str
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class GetCurrentAttempts:
    """Job id -> the attempts of its current occurrence, for each of ``job_ids`` (an
    empty tuple for a job without any); one read for a whole page of jobs."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DueBefore:
    """Jobs due before ``before_ms``."""

    before_ms: int
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class DueOccurrences:
    """Like DueBefore, with each job's occurrence and attempts (queries.Due)."""

    before_ms: int
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class GetCounters:
    """The job counters."""


@dataclass(frozen=True, slots=True)
class GetOpenClaims:
    """Attempts claimed and not yet recorded."""

    limit: int | None = None


@dataclass(frozen=True, slots=True)
class GetNotices:
    """The notices of outcomes waiting to be sent (at most ``limit``)."""

    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class GetMembers:
    """Node id -> (raft address, http address) of the members the state records."""


@dataclass(frozen=True, slots=True)
class GetApplied:
    """``(index, term)`` of the last applied entry."""


@dataclass(frozen=True, slots=True)
class GetDigest:
    """A digest of the whole state (equal on nodes that applied the same entries)."""


Query = (
    GetJob
    | ListJobs
    | GetExecutions
    | RecentAttempts
    | GetCurrentAttempts
    | DueBefore
    | DueOccurrences
    | GetCounters
    | GetOpenClaims
    | GetNotices
    | GetApplied
    | GetDigest
    | GetMembers
)


def answer(view: ReverseStateView, query: Query) -> object:  # noqa: C901 (a case per query)
    """The answer to ``query`` from ``view``.  Raises InvalidCursorError (a bad list
    cursor) and TypeError (not a query); mypy checks that every query is handled."""
    match query:
        case GetJob():
            return queries.get_job(view, query.job_id)
        case ListJobs():
            return queries.list_jobs(view, query.status, query.cursor, query.limit, query.where)
        case RecentAttempts():
            return queries.recent_attempts(
                view,
                status=query.status,
                since_ms=query.since_ms,
                job_id=query.job_id,
                cursor=query.cursor,
                limit=query.limit,
            )
        case GetExecutions():
            return queries.executions(view, query.job_id, query.limit)
        case GetCurrentAttempts():
            return {i: queries.current_attempts(view, i) for i in query.job_ids}
        case DueBefore():
            return queries.due_before(view, query.before_ms, query.limit)
        case DueOccurrences():
            return queries.due_occurrences(view, query.before_ms, query.limit)
        case GetCounters():
            return queries.counters(view)
        case GetOpenClaims():
            return queries.open_claims(view, query.limit)
        case GetNotices():
            return queries.notices(view, query.limit)
        case GetMembers():
            return queries.members(view)
        case GetApplied():
            return fsm.applied_position(view)
        case GetDigest():
            return state_digest(view)
        case _:
            _not_a_query(query)


def _not_a_query(query: Never) -> NoReturn:
    # Typed Never: mypy fails on a Query type that ``answer`` does not match.
    raise TypeError(f"not a query: {query!r}")
