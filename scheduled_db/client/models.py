"""The typed answers about jobs: frozen dataclasses read from the JSON views.

Each keeps the whole decoded object as ``raw``, so a field the server adds after
this client was written is not lost (``job.raw["new_field"]``).  Instants are
kept as the milliseconds the server sends (``created_at_ms``), with a
``datetime`` property where that is what a user wants.  A field an older server
does not send reads as its empty value (``labels`` ``{}``, ``version``
``None``); a field every version sends and that is missing, or of the wrong
type, is an :class:`~scheduled_db.client.errors.UnexpectedAnswer`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from scheduled_db.client._decode import Raw, items, obj, opt, req, utc
from scheduled_db.client.errors import UnexpectedAnswer

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the server shows it (``GET /jobs/{id}``, a list item, a create).

    ``version`` counts the changes made to the job (1 at creation; ``None`` from
    a server that does not count them); give it as ``if_match`` to
    :meth:`~scheduled_db.client.Client.update_job` to refuse a stale update.
    """

    id: str
    type: str
    status: str
    paused: bool
    version: int | None
    labels: Mapping[str, str]
    timestamp_ms: int | None
    cron_expression: str | None
    timezone: str | None
    last_date_ms: int | None
    webhook_url: str | None
    payload: Any
    misfire_policy: str | None
    max_attempts: int | None
    timeout_ms: int | None
    signing_secret_ref: str | None
    created_at_ms: int | None
    next_run_at_ms: int | None
    raw: Raw = dataclasses.field(repr=False)
    method: str = "POST"  # of its deliveries (absent from older servers' answers)
    jitter_ms: int | None = None
    headers: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # a secret's: a ref
    # Where notices of its runs' outcomes go ({"url", "headers"[, "every_attempt"]}),
    # and a recurring job's overlap policy; None from older servers.
    on_failure: Mapping[str, Any] | None = None
    on_success: Mapping[str, Any] | None = None
    overlap: str | None = None

    @classmethod
    def from_raw(cls, value: object) -> Job:
        raw = obj(value, "a job")
        labels = raw.get("labels") or {}
        return cls(
            id=req(raw, "id", str, "a job"),
            type=req(raw, "type", str, "a job"),
            status=req(raw, "status", str, "a job"),
            paused=bool(raw.get("paused", False)),
            version=opt(raw, "version", int),
            labels=dict(labels) if isinstance(labels, dict) else {},
            timestamp_ms=opt(raw, "timestamp_ms", int),
            cron_expression=opt(raw, "cron_expression", str),
            timezone=opt(raw, "timezone", str),
            last_date_ms=opt(raw, "last_date_ms", int),
            webhook_url=opt(raw, "webhook_url", str),
            payload=raw.get("payload"),
            misfire_policy=opt(raw, "misfire_policy", str),
            max_attempts=opt(raw, "max_attempts", int),
            timeout_ms=opt(raw, "timeout_ms", int),
            signing_secret_ref=opt(raw, "signing_secret_ref", str),
            created_at_ms=opt(raw, "created_at_ms", int),
            next_run_at_ms=opt(raw, "next_run_at_ms", int),
            raw=raw,
            method=opt(raw, "method", str) or "POST",
            jitter_ms=opt(raw, "jitter_ms", int),
            headers=dict(headers) if isinstance(headers := raw.get("headers"), dict) else {},
            on_failure=_callback(raw.get("on_failure")),
            on_success=_callback(raw.get("on_success")),
            overlap=opt(raw, "overlap", str),
        )

    @property
    def next_run_at(self) -> datetime | None:
        return utc(self.next_run_at_ms)

    @property
    def created_at(self) -> datetime | None:
        return utc(self.created_at_ms)


def _callback(value: object) -> Mapping[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Execution:
    """One delivery attempt (``GET /jobs/{id}/executions``, ``GET /executions``).

    ``job_id`` is set in the cross-job listing; ``trigger`` marks an attempt of a
    manual run (:meth:`~scheduled_db.client.Client.trigger_job`).  An entry of runs
    that were not fired has ``status`` ``"skipped"``, ``attempt_num`` 0, and says
    why (``skip_reason``) and how many (``skipped_runs``).
    """

    job_id: str | None
    attempt_num: int | None
    status: str
    scheduled_at_ms: int | None
    start_time_ms: int | None
    end_time_ms: int | None
    node_id: str | None
    http_status: int | None
    response_time_ms: int | None
    error_message: str | None
    error_type: str | None
    trigger: bool
    raw: Raw = dataclasses.field(repr=False)
    skip_reason: str | None = None
    skipped_runs: int | None = None

    @classmethod
    def from_raw(cls, value: object) -> Execution:
        raw = obj(value, "an execution")
        return cls(
            job_id=opt(raw, "job_id", str),
            attempt_num=opt(raw, "attempt_num", int),
            status=req(raw, "status", str, "an execution"),
            scheduled_at_ms=opt(raw, "scheduled_at_ms", int),
            start_time_ms=opt(raw, "start_time_ms", int),
            end_time_ms=opt(raw, "end_time_ms", int),
            node_id=opt(raw, "node_id", str),
            http_status=opt(raw, "http_status", int),
            response_time_ms=opt(raw, "response_time_ms", int),
            error_message=opt(raw, "error_message", str),
            error_type=opt(raw, "error_type", str),
            trigger=raw.get("trigger") is True,
            raw=raw,
            skip_reason=opt(raw, "skip_reason", str),
            skipped_runs=opt(raw, "skipped_runs", int),
        )

    @property
    def start_time(self) -> datetime | None:
        return utc(self.start_time_ms)


@dataclass(frozen=True, slots=True)
class JobState:
    """``GET /jobs/{id}/status``: where a job's current run stands."""

    job_id: str
    status: str
    attempt_count: int
    next_run_at_ms: int | None
    last_attempt_at_ms: int | None
    completed_at_ms: int | None
    cancelled_at_ms: int | None
    cancellation_reason: str | None
    executing_node_id: str | None
    attempts: tuple[Execution, ...]
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object) -> JobState:
        raw = obj(value, "a job's status")
        return cls(
            job_id=req(raw, "job_id", str, "a job's status"),
            status=req(raw, "status", str, "a job's status"),
            attempt_count=opt(raw, "attempt_count", int, 0),
            next_run_at_ms=opt(raw, "next_run_at_ms", int),
            last_attempt_at_ms=opt(raw, "last_attempt_at_ms", int),
            completed_at_ms=opt(raw, "completed_at_ms", int),
            cancelled_at_ms=opt(raw, "cancelled_at_ms", int),
            cancellation_reason=opt(raw, "cancellation_reason", str),
            executing_node_id=opt(raw, "executing_node_id", str),
            attempts=items(raw, "attempts", Execution.from_raw, "a job's status"),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Cancelled:
    """``POST /jobs/{id}/cancel``: the job, its status, when it was first cancelled
    and the reason kept with it (a second cancel keeps the first one's)."""

    job_id: str
    status: str
    cancelled_at_ms: int | None
    reason: str | None
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object) -> Cancelled:
        raw = obj(value, "a cancellation")
        return cls(
            job_id=req(raw, "job_id", str, "a cancellation"),
            status=req(raw, "status", str, "a cancellation"),
            cancelled_at_ms=opt(raw, "cancelled_at_ms", int),
            reason=opt(raw, "reason", str),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: its ``items``, the ``next_cursor`` to ask for the
    next page with (``None`` on the last), and ``total`` where the server counts."""

    items: tuple[T, ...]
    next_cursor: str | None
    total: int | None
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object, key: str, item: Callable[[object], T]) -> Page[T]:
        raw = obj(value, "a page")
        if not isinstance(raw.get(key), list):
            raise UnexpectedAnswer(f'unexpected answer: a page has no "{key}" list', raw)
        cursor = raw.get("next_cursor")
        return cls(
            items=items(raw, key, item, "a page"),
            next_cursor=cursor if isinstance(cursor, str) and cursor else None,
            total=opt(raw, "total", int),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Trigger:
    """``POST /jobs/{id}/trigger``: the manual run that was queued, and the
    ``Idempotency-Key`` its deliveries carry."""

    job_id: str
    occurrence_ms: int | None
    idempotency_key: str
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object) -> Trigger:
        raw = obj(value, "a trigger")
        return cls(
            job_id=req(raw, "job_id", str, "a trigger"),
            occurrence_ms=opt(raw, "occurrence_ms", int),
            idempotency_key=req(raw, "idempotency_key", str, "a trigger"),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class BatchItem:
    """The outcome of one job of a batch create, at ``index`` in the request:
    ``job`` when created (or already there, identical), else the error's
    ``status``, ``code``, ``message`` and ``field``."""

    index: int
    status: int
    job: Job | None
    code: str | None
    message: str | None
    field: str | None
    raw: Raw = dataclasses.field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @classmethod
    def from_raw(cls, value: object) -> BatchItem:
        raw = obj(value, "a batch result")
        status = req(raw, "status", int, "a batch result")
        job = raw.get("job")
        return cls(
            index=req(raw, "index", int, "a batch result"),
            status=status,
            job=Job.from_raw(job) if 200 <= status < 300 else None,
            code=opt(raw, "code", str),
            message=opt(raw, "error", str),
            field=opt(raw, "field", str),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """``POST /jobs/batch``: one :class:`BatchItem` per job sent, in request order."""

    results: tuple[BatchItem, ...]
    raw: Raw = dataclasses.field(repr=False)

    @property
    def jobs(self) -> tuple[Job, ...]:
        """The jobs created (or found already there, identical)."""
        return tuple(r.job for r in self.results if r.job is not None)

    @property
    def errors(self) -> tuple[BatchItem, ...]:
        """The items refused, each with its index, status, code and field."""
        return tuple(r for r in self.results if not r.ok)

    @classmethod
    def from_raw(cls, value: object) -> BatchResult:
        raw = obj(value, "a batch answer")
        if not isinstance(raw.get("results"), list):
            raise UnexpectedAnswer('unexpected answer: a batch answer has no "results" list', raw)
        return cls(items(raw, "results", BatchItem.from_raw, "a batch answer"), raw)


@dataclass(frozen=True, slots=True)
class Run:
    """A coming fire time: epoch seconds, milliseconds, and ISO 8601 in the job's zone."""

    at: int
    at_ms: int
    iso: str

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.iso)

    @classmethod
    def from_raw(cls, value: object) -> Run:
        raw = obj(value, "a run")
        return cls(
            at=req(raw, "at", int, "a run"),
            at_ms=req(raw, "at_ms", int, "a run"),
            iso=req(raw, "iso", str, "a run"),
        )


@dataclass(frozen=True, slots=True)
class Upcoming:
    """``GET /jobs/{id}/upcoming``: the job's next fire times (none while paused)."""

    job_id: str
    timezone: str | None
    paused: bool
    runs: tuple[Run, ...]
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object) -> Upcoming:
        raw = obj(value, "upcoming runs")
        return cls(
            job_id=req(raw, "job_id", str, "upcoming runs"),
            timezone=opt(raw, "timezone", str),
            paused=raw.get("paused") is True,
            runs=items(raw, "runs", Run.from_raw, "upcoming runs"),
            raw=raw,
        )


def pages(fetch: Callable[..., Page[T]], **filters: Any) -> Iterator[Page[T]]:
    """Every page of a listing: ``fetch(**filters, cursor=...)`` from the first page
    (or ``filters["cursor"]``) until one has no ``next_cursor``.  A cursor the server
    gives twice is an :class:`UnexpectedAnswer` (a server bug must not loop forever)."""
    cursor = filters.pop("cursor", None)
    seen: set[str] = set()
    while True:
        page = fetch(**filters, cursor=cursor)
        yield page
        cursor = page.next_cursor
        if cursor is None:
            return
        if cursor in seen:
            raise UnexpectedAnswer(f"the server repeated the cursor {cursor!r}", page.raw)
        seen.add(cursor)
