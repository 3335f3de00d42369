"""Changing jobs in place and creating many: ``PATCH /jobs/{id}``, pause, resume and
``POST /jobs/batch``; and two reads a scheduler's user asks for: a job's upcoming
runs and the attempts of every job, newest first.

Every write goes through Raft like a create, with the values decided here, on
the node that took the request (the leader: followers forward writes): the
merged spec, its next run, the run a resume moves to.

An update is a JSON merge patch (RFC 7396) of the job's *request* form: the
stored spec is turned back into the body that would create it, the patch is
merged into that, and the result is validated as a create's body at this instant
(so a patched one-time ``timestamp`` must be in the future, as on create).  The
command carries the version the merge started from: a change committed in
between makes the state machine refuse it, and the merge is done again on the
newer job (or answered 412 when the client named the version with ``If-Match``).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web

from actors.api import params
from actors.api.body import no_fields, read_json_object
from actors.api.responses import json_response
from actors.api.views import (
    attempt_view,
    callback_view,
    duration_seconds,
    headers_view,
    instant,
    job_view,
)
from actors.runtime import tracing
from actors.webhook.guard import spec_urls
from scheduled_db.errors import (
    JobConflict,
    JobFinished,
    JobInProgress,
    JobNotFound,
    RequestError,
    UpdateConflict,
    ValidationError,
    VersionMismatch,
)
from scheduled_db.firing.decisions import on_resume
from scheduled_db.jobs.model import Job, JobSpec, JobStatus, SkipReason
from scheduled_db.jobs.schedule import first_fire, next_run
from scheduled_db.jobs.timestamps import format_rfc3339, parse_timestamp
from scheduled_db.jobs.validation import job_id_problem, parse_limit, validate_status_filter
from scheduled_db.state.commands import CreateJob, PauseJob, ResumeJob, Skip, UpdateJob
from scheduled_db.state.reads import GetJob, RecentAttempts
from scheduled_db.state.results import CommandResult, ResultCode

if TYPE_CHECKING:
    from actors.api.jobs import JobRoutes

MAX_BATCH = 1000
MAX_UPCOMING = 100
DEFAULT_UPCOMING = 5
# How often an update is merged again when another change to the job committed
# between the read and the write (without If-Match, last writer wins per field).
UPDATE_TRIES = 5
_IF_MATCH = re.compile(r'\s*(?:W/)?"?([0-9]{1,18})"?\s*', re.ASCII)


class JobControl:
    """The handlers; they share the helpers of :class:`~actors.api.jobs.JobRoutes`."""

    def __init__(self, jobs: JobRoutes) -> None:
        self.jobs = jobs

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/jobs/batch", self.batch),
            web.patch("/jobs/{id}", self.update),
            web.post("/jobs/{id}/pause", self.pause),
            web.post("/jobs/{id}/resume", self.resume),
            web.get("/jobs/{id}/upcoming", self.upcoming),
            web.get("/executions", self.executions),
        ]

    # --- update -----------------------------------------------------------------------

    async def update(self, request: web.Request) -> web.Response:
        jobs = self.jobs
        job_id = jobs.path_id(request)
        patch = await read_json_object(request, jobs.max_body, required=True)
        expected = _if_match(request.headers.get("If-Match"))
        # The merge, the If-Match check and the refusals read this node's state: on a
        # follower it may lag the write the client just made.  Catch up first
        # (ReadIndex; with no leader here it is refused, and the request forwarded).
        await jobs.backend.read_index(timeout=jobs.write_timeout)
        for _ in range(UPDATE_TRIES):
            job = await jobs.job_or_404(job_id)
            if expected is not None and job.version != expected:
                raise VersionMismatch(job_id, expected, job.version)
            _check_changeable(job, "update")
            spec = _patched(job, patch, jobs, now := jobs.clock())
            if spec == job.spec:
                return json_response(job_view(job))  # nothing to change: no write
            await jobs.guard.check_spec(spec, job.spec)
            next_ms = first_fire(spec, now)
            if next_ms is None:
                raise ValidationError("cron_expression", "never fires after now")
            result = await jobs.propose(UpdateJob(spec, next_ms, job.version))
            if result.code is ResultCode.STALE and expected is None:
                continue  # changed meanwhile: merge into the newer job
            return json_response(job_view(_changed(result, job_id, "update", expected)))
        raise UpdateConflict(job_id)

    # --- pause and resume -------------------------------------------------------------

    async def pause(self, request: web.Request) -> web.Response:
        job_id = self.jobs.path_id(request)
        no_fields(await read_json_object(request, self.jobs.max_body, required=False))
        result = await self.jobs.propose(PauseJob(job_id))
        return json_response(job_view(_changed(result, job_id, "pause")))

    async def resume(self, request: web.Request) -> web.Response:
        """Resume; the job's misfire policy decides the runs missed while paused
        (:func:`scheduled_db.firing.decisions.on_resume`), which are recorded as
        skipped."""
        jobs = self.jobs
        job_id = jobs.path_id(request)
        no_fields(await read_json_object(request, jobs.max_body, required=False))
        await jobs.backend.read_index(timeout=jobs.write_timeout)  # the misfire reads (see update)
        job: Job | None = await jobs.read_state(GetJob(job_id))  # none: Raft says 404
        now = jobs.clock()
        next_ms: int | None = None
        skips: tuple[Skip, ...] = ()
        if job and job.paused and job.status is JobStatus.PENDING and job.next_run_at_ms:
            next_ms, skips = on_resume(job.spec, job.next_run_at_ms, now)
        result = await jobs.propose(ResumeJob(job_id, next_ms, skips, now if skips else 0))
        for entry in result.skips:
            jobs.on_skipped(SkipReason.PAUSED.value, entry.skipped_runs)
        return json_response(job_view(_changed(result, job_id, "resume")))

    # --- batch ------------------------------------------------------------------------

    async def batch(self, request: web.Request) -> web.Response:
        """Create up to :data:`MAX_BATCH` jobs in one Raft entry.  Each item is
        answered as its own ``POST /jobs`` would be (200 with the job, or its error);
        items that fail validation do not stop the others.

        An item whose id exists is answered by the state machine, in log order (200
        with the stored job for the same spec, 409 otherwise), without a read first;
        only an item that fails validation is looked up, since it may be a retry that
        was valid when it created the job (a one-time job whose time has passed)."""
        jobs = self.jobs
        body = await read_json_object(request, jobs.max_body, required=True)
        items = _batch_items(body)
        now = jobs.clock()
        prepared = [self._parse(i, item, now) for i, item in enumerate(items)]
        await self._guard(prepared)
        await self._retries(items, prepared)
        answers: list[dict[str, Any]] = []
        commands: list[CreateJob] = []
        positions: list[int] = []
        seen: dict[str, int] = {}
        for i, outcome in enumerate(prepared):
            if isinstance(outcome, CreateJob):
                first = seen.setdefault(outcome.spec.id, i)
                if first != i:
                    outcome = _item_error(i, ValidationError("id", f"repeats item {first}'s id"))
                else:
                    commands.append(outcome)
                    positions.append(i)
                    answers.append({})  # filled in once committed
                    continue
            answers.append(outcome)
        if commands:
            await jobs.admit(*commands, body_bytes=request.content_length)
            results = await jobs.backend.propose_batch(commands, timeout=jobs.write_timeout)
            for i, result in zip(positions, results, strict=True):
                answers[i] = _created(i, result)
        return json_response({"results": answers})

    def _parse(self, i: int, item: object, now: int) -> CreateJob | dict[str, Any]:
        """The create an item asks for, or its error (its URLs not checked yet)."""
        jobs = self.jobs
        try:
            if not isinstance(item, dict):
                raise ValidationError("jobs", f"item {i} must be a JSON object")
            generated = "" if isinstance(item.get("id"), str) else jobs.new_id()
            spec = jobs.parse_spec(item, now, generated)
            next_ms = first_fire(spec, now)
            if next_ms is None:
                raise ValidationError("cron_expression", "never fires after the start time")
        except (ValidationError, RequestError) as exc:
            return _item_error(i, exc)
        return CreateJob(spec, now, next_ms, tracing.current_traceparent())

    async def _guard(self, prepared: list[CreateJob | dict[str, Any]]) -> None:
        """The SSRF guard on the URLs of the items that parsed, all at once (a host
        name is resolved); an item it refuses becomes its error.  An item with no URL
        costs no task: most of a large batch's."""
        check = self.jobs.guard.check_spec
        urled = [
            (i, p) for i, p in enumerate(prepared)
            if isinstance(p, CreateJob) and _has_url(p.spec)
        ]  # fmt: skip
        refusals = await asyncio.gather(
            *(check(p.spec) for _, p in urled), return_exceptions=True
        )  # fmt: skip
        for (i, _), refusal in zip(urled, refusals, strict=True):
            if isinstance(refusal, ValidationError | RequestError):
                prepared[i] = _item_error(i, refusal)
            elif refusal is not None:
                raise refusal

    async def _retries(
        self, items: list[object], prepared: list[CreateJob | dict[str, Any]]
    ) -> None:
        """Answer 200 in place of a validation error for an item that created a stored
        job with the same spec (as of its creation), 409 for one whose id is taken."""
        jobs = self.jobs
        refused = [
            (i, item) for i, (item, p) in enumerate(zip(items, prepared, strict=True))
            if isinstance(p, dict) and isinstance(item, dict) and _valid_id(item.get("id"))
        ]  # fmt: skip
        if not refused:
            return
        found = await asyncio.gather(*(jobs.read_state(GetJob(item["id"])) for _, item in refused))
        if not any(found):
            return
        await jobs.backend.read_index(timeout=jobs.write_timeout)  # not one applied late
        found = await asyncio.gather(*(jobs.read_state(GetJob(item["id"])) for _, item in refused))
        for (i, item), old in zip(refused, found, strict=True):
            if old is not None:
                same = jobs.same_spec(item, old)
                prepared[i] = (
                    {"index": i, "status": 200, "job": job_view(old)}
                    if same
                    else _item_error(i, JobConflict(old.id))
                )

    # --- reads ------------------------------------------------------------------------

    async def upcoming(self, request: web.Request) -> web.Response:
        """The job's next ``n`` runs: none while it is paused or finished; a one-time
        job's one; a recurring job's from its next run on, to its ``last_date``."""
        jobs = self.jobs
        job_id = jobs.path_id(request)
        params.refuse_unknown(request.query, {"n", "consistent"})
        n = _count(request.query.get("n"))
        await jobs.linearize(request)
        job = await jobs.job_or_404(job_id)
        runs = [] if job.paused else _runs(job, n, jobs.clock())
        zone = ZoneInfo(job.spec.timezone)
        return json_response(
            {
                "job_id": job.id,
                "timezone": job.spec.timezone,
                "paused": job.paused,
                "runs": [{**instant("at", ms), "iso": _iso(ms, zone)} for ms in runs],
            }
        )

    async def executions(self, request: web.Request) -> web.Response:
        """``GET /executions``: attempts of every job, newest first."""
        jobs = self.jobs
        query = request.query
        params.refuse_unknown(query, {"status", "since", "job_id", "limit", "cursor", "consistent"})
        status = (
            validate_status_filter(query["status"], executions=True) if "status" in query else None
        )
        since = parse_timestamp(query["since"], "since") if "since" in query else None
        job_id = query.get("job_id")
        if job_id is not None and (problem := job_id_problem(job_id)) is not None:
            raise ValidationError("job_id", problem)
        cursor = params.cursor(query.get("cursor"))
        limit = parse_limit(query.get("limit"))
        await jobs.linearize(request)
        read = RecentAttempts(status, since, job_id, cursor, limit)
        try:
            page = await jobs.read_state(read)
        except ValueError:
            raise ValidationError("cursor", "Invalid cursor") from None
        return json_response(
            {
                "executions": [{"job_id": a.job_id, **attempt_view(a)} for a in page.attempts],
                "next_cursor": page.next_cursor,
            }
        )


# --- helpers -----------------------------------------------------------------------------


def _if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` header names (``3``, ``"3"``); None without one."""
    if value is None:
        return None
    m = _IF_MATCH.fullmatch(value)
    if m is None:
        raise ValidationError("If-Match", "must be the job's version, e.g. If-Match: 3")
    return int(m.group(1))


def _check_changeable(job: Job, action: str) -> None:
    if job.completed_at_ms is not None:
        raise JobFinished(job.id, action, job.status)
    if job.status is JobStatus.IN_PROGRESS:
        raise JobInProgress(job.id, action, job.status)


def request_body(spec: JobSpec) -> dict[str, Any]:
    """The ``POST /jobs`` body that creates ``spec`` (what a merge patch applies to)."""
    body: dict[str, Any] = {
        "id": spec.id,
        "type": spec.type.value,
        "timestamp": None if spec.timestamp_ms is None else format_rfc3339(spec.timestamp_ms),
        "cron_expression": spec.cron_expression,
        "timezone": spec.timezone,
        "last_date": None if spec.last_date_ms is None else format_rfc3339(spec.last_date_ms),
        "webhook_url": spec.webhook_url,
        "payload": spec.payload,
        "misfire_policy": spec.misfire_policy.value,
        "max_attempts": spec.max_attempts,
        "timeout": duration_seconds(spec.timeout_ms),
        "signing_secret_ref": spec.signing_secret_ref,
        "labels": spec.label_map or None,
        "jitter": duration_seconds(spec.jitter_ms),
        "method": spec.method,
        "headers": headers_view(spec.headers) or None,
        "on_failure": callback_view(spec.on_failure),
        "on_success": callback_view(spec.on_success),
        "overlap": None if spec.overlap is None else spec.overlap.value,
    }
    return {k: v for k, v in body.items() if v is not None}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _patched(job: Job, patch: dict[str, object], jobs: JobRoutes, now: int) -> JobSpec:
    for name, current in (("id", job.id), ("type", job.spec.type.value)):
        if name in patch and patch[name] != current:
            raise ValidationError(name, "cannot change (create a new job instead)")
    body = merge_patch(request_body(job.spec), patch)
    return jobs.parse_spec(body, now, job.id)


def _changed(result: CommandResult, job_id: str, action: str, expected: int | None = None) -> Job:
    """The job after an update, pause or resume; or the error of its refusal."""
    if result.code in (ResultCode.OK, ResultCode.UNCHANGED) and result.job is not None:
        return result.job
    if result.code is ResultCode.NOT_FOUND:
        raise JobNotFound(job_id)
    job = result.job
    if result.code is ResultCode.STALE and job is not None:
        raise VersionMismatch(job_id, expected if expected is not None else 0, job.version)
    if result.code is ResultCode.ILLEGAL_TRANSITION and job is not None:
        if job.completed_at_ms is not None:
            raise JobFinished(job_id, action, job.status)
        raise JobInProgress(job_id, action, job.status)
    if result.code is ResultCode.INVALID:
        raise ValidationError("type", result.detail or "cannot change")
    raise RuntimeError(f"unexpected result {result.code.value} for {action}")


def _batch_items(body: dict[str, object]) -> list[object]:
    unknown = sorted(k for k in body if k != "jobs")
    if unknown:
        raise ValidationError(unknown[0], "unknown field (only jobs is accepted)")
    items = body.get("jobs")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ValidationError("jobs", f"must be a list of 1 to {MAX_BATCH} job bodies")
    return items


def _has_url(spec: JobSpec) -> bool:
    return any(url for _, url in spec_urls(spec))


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and job_id_problem(value) is None


def _item_error(index: int, exc: Exception) -> dict[str, Any]:
    status = getattr(exc, "http_status", 400)
    answer: dict[str, Any] = {"index": index, "status": status, "error": str(exc)}
    answer["code"] = getattr(exc, "code", "validation_error")
    if isinstance(exc, ValidationError):
        answer["field"] = exc.field
    return answer


def _created(index: int, result: CommandResult) -> dict[str, Any]:
    if result.code in (ResultCode.OK, ResultCode.EXISTS_IDENTICAL) and result.job is not None:
        return {"index": index, "status": 200, "job": job_view(result.job)}
    if result.code is ResultCode.EXISTS_DIFFERENT:
        return _item_error(index, JobConflict(result.job_id or ""))
    return _item_error(index, ValidationError("id", result.detail or "is not a valid job id"))


def _count(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_UPCOMING
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_UPCOMING):
        raise ValidationError("n", f"must be an integer between 1 and {MAX_UPCOMING}")
    return int(raw)


def _runs(job: Job, n: int, now_ms: int) -> list[int]:
    if job.completed_at_ms is not None:
        return []
    spec = job.spec
    if job.status is JobStatus.PENDING and job.next_run_at_ms is not None:
        first: int | None = job.next_run_at_ms
    elif spec.type.value == "unico":
        return []  # its one run is under way (in flight, or waiting for a retry)
    else:
        first = next_run(spec, max(now_ms, job.next_run_at_ms or 0))
    runs: list[int] = []
    at = first
    while at is not None and len(runs) < n:
        runs.append(at)
        at = next_run(spec, at)
    return runs


def _iso(ms: int, zone: ZoneInfo) -> str:
    moment = datetime.fromtimestamp(ms // 1000, zone).replace(microsecond=ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
