"""The ``/jobs`` routes: create, read, list, cancel and delete jobs.

Writes return once the command is committed and applied (``Backend.propose``).
This node decides every value a command carries (the id when the client gives
none, ``created_at``, the first run), per the rule that the leader decides.

A new job's ``webhook_url`` must point where webhooks may go (the SSRF guard,
:mod:`actors.webhook.guard`): 400 otherwise.

Idempotent create: ``POST /jobs`` with the ``id`` of an existing job answers 200
with the stored job when the body is the one that created it, and 409 otherwise.
"The same body" is judged by validating the body *as of the job's creation
time*: a retry of a one-time job whose ``timestamp`` has passed since is still
recognised as the same request, instead of failing "must be in the future".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from actors.api import params, trigger
from actors.api.backend import Backend
from actors.api.body import no_fields, read_json_object
from actors.api.control import JobControl
from actors.api.ids import IdSource
from actors.api.responses import json_response
from actors.api.views import (
    Limits,
    attempt_view,
    cancel_view,
    job_view,
    list_item_view,
    status_view,
)
from actors.runtime import tracing
from actors.webhook.guard import WebhookGuard
from scheduled_db.errors import (
    CapacityExceeded,
    InvalidTransition,
    JobConflict,
    JobNotFound,
    RequestError,
    ValidationError,
)
from scheduled_db.jobs.model import Attempt, Job, JobSpec, JobStatus, JobType
from scheduled_db.jobs.schedule import first_fire
from scheduled_db.jobs.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    job_id_problem,
    parse_job_spec,
    parse_label_selector,
    parse_limit,
    validate_status_filter,
)
from scheduled_db.state.commands import CancelJob, Command, CreateJob, DeleteJob
from scheduled_db.state.queries import JobFilter
from scheduled_db.state.reads import (
    GetCounters,
    GetCurrentAttempts,
    GetExecutions,
    GetJob,
    ListJobs,
)
from scheduled_db.state.records import Counters, new_job_bytes
from scheduled_db.state.results import CommandResult, ResultCode

WRITE_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
# Admission without a read (JobRoutes.admit): for this long after one, while what it
# read plus what was admitted since stays under this share of each limit.
COUNTERS_FRESH_S = 0.1
FAR_FROM_LIMIT = 0.9
MAX_REASON_CHARS = 1000
LIST_PARAMS = frozenset(
    {"status", "limit", "cursor", "consistent", "label", "type", "paused", "id_prefix"}
)


class UnexpectedResult(RuntimeError):
    """The state machine answered a command with a code this route never expects."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(f"unexpected result {result.code.value} for {result.kind}")


class JobRoutes:
    """Handlers of the ``/jobs`` routes over a :class:`Backend`."""

    def __init__(
        self,
        backend: Backend,
        limits: Limits,
        max_body_bytes: int,
        clock: Callable[[], int],
        guard: WebhookGuard,
        on_rejection: Callable[[str], None] = lambda kind: None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        secret_names: Collection[str] = (),
        header_secret_names: Collection[str] = (),
        on_skipped: Callable[[str, int], None] = lambda reason, runs: None,
    ) -> None:
        self._on_rejection = on_rejection
        self.on_skipped = on_skipped  # runs a resume passed over: (reason, how many)
        self._max_payload = max_payload_bytes
        self._secret_names = frozenset(secret_names)
        self._header_secret_names = frozenset(header_secret_names)
        self.guard = guard
        self.backend = backend
        self._limits = limits
        self._seen: _SeenCounters | None = None  # the counters admission last read
        self.max_body = max_body_bytes
        self.clock = clock
        self.new_id = IdSource()  # ids for creates that bring none
        self.write_timeout = WRITE_TIMEOUT_S

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/jobs", self.create),
            web.get("/jobs", self.list),
            web.get("/jobs/{id}", self.get),
            web.delete("/jobs/{id}", self.delete),
            web.get("/jobs/{id}/status", self.status),
            web.get("/jobs/{id}/executions", self.executions),
            web.post("/jobs/{id}/cancel", self.cancel),
            web.post("/jobs/{id}/trigger", self.trigger),
            *JobControl(self).routes(),
        ]

    # --- helpers ----------------------------------------------------------------------

    async def read_state(self, query: Any) -> Any:
        return await self.backend.read(query, timeout=READ_TIMEOUT_S)

    async def propose(self, command: Command) -> CommandResult:
        return await self.backend.propose(command, timeout=WRITE_TIMEOUT_S)

    async def job_or_404(self, job_id: str) -> Job:
        job: Job | None = await self.read_state(GetJob(job_id))
        if job is None:
            raise JobNotFound(job_id)
        return job

    def parse_spec(self, body: dict[str, object], now: int, generated_id: str) -> JobSpec:
        return parse_job_spec(
            body,
            now,
            generated_id=generated_id,
            max_payload_bytes=self._max_payload,
            secret_names=self._secret_names,
            header_secret_names=self._header_secret_names,
        )

    @staticmethod
    def path_id(request: web.Request) -> str:
        """The job id of the path, percent-decoded (``/jobs/tarea-a%C3%B1o``).  One
        that no job can have (validation refuses it on create) names no job: 404
        without a read or a Raft round trip."""
        job_id = request.match_info["id"]
        if job_id_problem(job_id) is not None:
            # Not echoed: it is no job id, only whatever the client put in the path.
            raise RequestError(404, "job_not_found", "Job not found")
        return job_id

    # --- create -----------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        """Create a job.  A retry of a create (same id, same body) is answered 200 with
        the stored job and another body under a taken id 409: for a body that passes
        validation by the state machine, in log order, with no read first (as a batch
        item is); only a body refused here is looked up, since it may be a retry that
        was valid when it created the job (a one-time job whose time has passed), or
        one the queue limits would now refuse."""
        body = await read_json_object(request, self.max_body, required=True)
        now = self.clock()
        try:
            generated = "" if isinstance(body.get("id"), str) else self.new_id()
            spec = self.parse_spec(body, now, generated)
            await self.guard.check_spec(spec)  # the SSRF guard (may resolve the host)
            next_run = first_fire(spec, now)
            if next_run is None:  # validation checked this at the same instant
                raise ValidationError("cron_expression", "never fires after the start time")
            command = CreateJob(spec, now, next_run, tracing.current_traceparent())
            await self.admit(command, body_bytes=request.content_length)
        except (ValidationError, CapacityExceeded):
            existing = await self.existing(body)
            if existing is not None:
                return json_response(job_view(existing))
            raise
        result = await self.propose(command)
        if result.code in (ResultCode.OK, ResultCode.EXISTS_IDENTICAL) and result.job:
            return json_response(job_view(result.job))
        if result.code is ResultCode.EXISTS_DIFFERENT:
            raise JobConflict(spec.id)
        if result.code is ResultCode.INVALID:
            raise ValidationError("id", result.detail or "is not a valid job id")
        raise UnexpectedResult(result)

    async def existing(self, body: dict[str, object]) -> Job | None:
        """The stored job a create with this body is a retry of; 409 if the id is taken."""
        job_id = body.get("id")
        if not isinstance(job_id, str) or job_id_problem(job_id) is not None:
            return None  # validation refuses it below
        job: Job | None = await self.read_state(GetJob(job_id))
        if job is None:
            return None  # Raft decides: the create answers EXISTS_* if it is there
        # Found here, but this node may be behind (a delete it has not applied yet):
        # look again once it has applied all the leader has committed (ReadIndex).
        await self.backend.read_index(timeout=READ_TIMEOUT_S)
        job = await self.read_state(GetJob(job_id))
        if job is None:
            return None
        if not self.same_spec(body, job):
            raise JobConflict(job_id)
        return job

    def same_spec(self, body: dict[str, object], job: Job) -> bool:
        """Whether ``body`` is the one that created ``job`` (validated as of then)."""
        try:
            return self.parse_spec(body, job.created_at_ms, job.id) == job.spec
        except ValidationError:
            return False

    async def admit(self, *commands: CreateJob, body_bytes: int | None = None) -> None:
        """Refuse jobs past the queue limits (507).  Best effort: creates racing on
        other connections may overshoot a limit by the number in flight.

        ``body_bytes``, the JSON they came in, allows a bound instead of encoding
        every job (:func:`stored_bound`) when the queue is far from its limit; and
        then the counters read for an earlier create stand in for a fresh read for
        :data:`COUNTERS_FRESH_S`, with what this node admitted since added on (a
        read is a hop to the storage thread and back: most of a create's
        admission).  Near a limit every admission reads them."""
        limits = self._limits
        n = len(commands)
        bound = None if body_bytes is None else stored_bound(body_bytes, commands)
        seen = self._seen
        if bound is not None and seen is not None and seen.fresh(time.monotonic()):
            jobs, size = seen.counters.jobs + seen.jobs + n, seen.counters.bytes + seen.bytes
            if jobs <= FAR_FROM_LIMIT * limits.job_limit and (
                size + bound <= FAR_FROM_LIMIT * limits.memory_limit_bytes
            ):
                seen.add(n, bound)
                return
        counters: Counters = await self.read_state(GetCounters())
        seen = self._seen = _SeenCounters(time.monotonic(), counters)
        if counters.jobs + n > limits.job_limit:
            self._on_rejection("job_count")
            raise CapacityExceeded("job_count", counters.jobs, limits.job_limit, n)
        if bound is not None and counters.bytes + bound <= limits.memory_limit_bytes:
            seen.add(n, bound)
            return
        size = sum(new_job_bytes(created_job(c)) for c in commands)
        if counters.bytes + size > limits.memory_limit_bytes:
            self._on_rejection("memory")
            raise CapacityExceeded("memory", counters.bytes, limits.memory_limit_bytes, size)
        seen.add(n, size)

    # --- reads ------------------------------------------------------------------------
    #
    # A read answers from this node's applied state.  With ?consistent=true it first
    # waits for a ReadIndex (the leader confirms with a majority that it still
    # leads, and this node applies up to its commit index): the read then sees
    # every write acknowledged before it began, on any node.

    async def linearize(self, request: web.Request) -> None:
        raw = request.query.get("consistent")
        if raw is None or raw == "false":
            return
        if raw != "true":
            raise ValidationError("consistent", "must be true or false")
        await self.backend.read_index(timeout=READ_TIMEOUT_S)

    async def get(self, request: web.Request) -> web.Response:
        job_id = self.path_id(request)
        await self.linearize(request)
        return json_response(job_view(await self.job_or_404(job_id)))

    async def status(self, request: web.Request) -> web.Response:
        job_id = self.path_id(request)
        await self.linearize(request)
        job = await self.job_or_404(job_id)
        attempts = await self.current_attempts([job])
        return json_response(status_view(job, attempts[job.id]))

    async def current_attempts(self, jobs: Sequence[Job]) -> dict[str, tuple[Attempt, ...]]:
        if not jobs:
            return {}
        found: dict[str, tuple[Attempt, ...]] = await self.read_state(
            GetCurrentAttempts(tuple(j.id for j in jobs))
        )
        return found

    async def executions(self, request: web.Request) -> web.Response:
        job_id = self.path_id(request)
        await self.linearize(request)
        job = await self.job_or_404(job_id)
        raw_limit = request.query.get("limit")
        limit = None if raw_limit is None else parse_limit(raw_limit)
        attempts = await self.read_state(GetExecutions(job.id, limit))
        views = [attempt_view(a) for a in attempts]
        return json_response({"job_id": job.id, "attempts": views})

    async def list(self, request: web.Request) -> web.Response:
        """``GET /jobs``: every filter given must hold (``label`` may repeat).  With
        filters beyond ``status``, ``total`` is null (counting them would read every
        match) and a page may hold fewer than ``limit`` jobs with a ``next_cursor``."""
        query = request.query
        params.refuse_unknown(query, LIST_PARAMS)
        status = validate_status_filter(query["status"]) if "status" in query else None
        limit = parse_limit(query.get("limit"))
        cursor = params.cursor(query.get("cursor"))
        where = JobFilter(
            job_type=_type_filter(query.get("type")),
            labels=tuple(sorted({parse_label_selector(v) for v in query.getall("label", [])})),
            paused=_bool_param("paused", query.get("paused")),
            id_prefix=_id_prefix(query.get("id_prefix")),
        )
        await self.linearize(request)
        try:
            page = await self.read_state(ListJobs(status, cursor, limit, where))
        except ValueError:
            if cursor is None:
                raise
            raise ValidationError("cursor", "Invalid cursor") from None
        attempts = await self.current_attempts(page.jobs)
        counters: Counters = await self.read_state(GetCounters())
        total: int | None = counters.jobs if status is None else counters.count(status)
        if where.id_prefix or not where.only_status:
            total = None
        return json_response(
            {
                "jobs": [list_item_view(j, attempts.get(j.id, ())) for j in page.jobs],
                "total": total,
                "next_cursor": page.next_cursor,
            }
        )

    # --- writes on a job --------------------------------------------------------------

    async def delete(self, request: web.Request) -> web.Response:
        job_id = self.path_id(request)
        result = await self.propose(DeleteJob(job_id))
        if result.code is ResultCode.OK:
            return web.Response(status=204)
        if result.code is ResultCode.NOT_FOUND:
            raise JobNotFound(job_id)
        raise UnexpectedResult(result)

    async def cancel(self, request: web.Request) -> web.Response:
        job_id = self.path_id(request)
        body = await read_json_object(request, self.max_body, required=False)
        reason = _cancel_reason(body)
        result = await self.propose(CancelJob(job_id, self.clock(), reason))
        if result.code in (ResultCode.OK, ResultCode.UNCHANGED) and result.job:
            # The stored reason: a second cancel keeps the first one's time and reason.
            job = result.job
            return json_response(cancel_view(job, job.cancellation_reason))
        if result.code is ResultCode.NOT_FOUND:
            raise JobNotFound(job_id)
        if result.code is ResultCode.ILLEGAL_TRANSITION and result.job:
            raise InvalidTransition(job_id, "cancel", _status_word(result.job.status))
        raise UnexpectedResult(result)

    async def trigger(self, request: web.Request) -> web.Response:
        """``POST /jobs/{id}/trigger``: see :mod:`actors.api.trigger`."""
        job_id = self.path_id(request)
        no_fields(await read_json_object(request, self.max_body, required=False))
        return await trigger.trigger(job_id, self.clock(), self.propose)


def created_job(command: CreateJob) -> Job:
    """The job a create stores (what admission counts it as)."""
    return Job(
        command.spec,
        command.created_at_ms,
        command.next_run_at_ms,
        traceparent=command.traceparent,
    )


@dataclass(slots=True)
class _SeenCounters:
    """The counters as last read, and what this node admitted since (see admit)."""

    at: float  # time.monotonic() of the read
    counters: Counters
    jobs: int = 0
    bytes: int = 0

    def fresh(self, now: float) -> bool:
        return now - self.at < COUNTERS_FRESH_S

    def add(self, jobs: int, size: int) -> None:
        self.jobs += jobs
        self.bytes += size


def stored_bound(body_bytes: int, commands: Sequence[CreateJob]) -> int:
    """More than the state bytes these creates add, from the JSON they came in: a
    value's msgpack form is at most 4.5 times its JSON (a float: 2 bytes of JSON at
    least, 9 of msgpack), the record's own fields are under 400 bytes, and the id is
    repeated in at most 7 keys plus one per label; a traced create's traceparent
    adds its own length and a key (under 16 bytes)."""
    ids = sum((7 + len(c.spec.labels)) * len(c.spec.id.encode()) for c in commands)
    traces = sum(16 + len(c.traceparent) for c in commands if c.traceparent is not None)
    return 5 * body_bytes + 400 * len(commands) + ids + traces


def _id_prefix(value: str | None) -> str:
    """The ``id_prefix`` parameter: the start of a job id (anything an id may hold)."""
    if value is None:
        return ""
    problem = job_id_problem(value) if value not in (".", "..") else None
    if problem is not None:
        raise ValidationError("id_prefix", f"must be the start of a job id: {problem}")
    return value


def _type_filter(value: str | None) -> JobType | None:
    if value is None:
        return None
    if value not in ("unico", "recurrente"):
        raise ValidationError("type", "must be unico or recurrente")
    return JobType(value)


def _bool_param(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise ValidationError(name, "must be true or false")
    return value == "true"


def _cancel_reason(body: dict[str, object]) -> str | None:
    """The reason to keep with the job, as the client wrote it (like a payload's
    text; JSON escapes what needs escaping on the way out); None when absent or
    empty."""
    unknown = sorted(k for k in body if k != "reason")
    if unknown:
        raise ValidationError(unknown[0], "unknown field (only reason is accepted)")
    reason = body.get("reason")
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise ValidationError("reason", f"must be a string of at most {MAX_REASON_CHARS} chars")
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\ud800": a lone surrogate has no UTF-8 form
        raise ValidationError("reason", "must be Unicode text (no lone surrogates)") from None
    return reason


def _status_word(status: JobStatus) -> str:
    return status.value.replace("_", " ")
