"""The Python client of a scheduled-db cluster's REST API (see docs/client.md).

::

    from scheduled_db.client import Client, NotFound

    client = Client("http://localhost:8080", token=None)
    job = client.create_job({"id": "nightly", "type": "recurrente",
                             "cron_expression": "0 3 * * *", "webhook_url": "https://..."})
    client.pause_job("nightly")
    for failed in client.iter_executions(status="failed", since=timedelta(hours=12)):
        print(failed.job_id, failed.error_message)

Every method sends one request (the ``iter_*`` ones, one per page), waits up to
``timeout`` seconds for its answer and returns a typed result, or raises an
:class:`~scheduled_db.client.errors.ApiError` subclass for an error status and
:class:`~scheduled_db.client.errors.Unreachable` when no answer came.  Requests
are retried as :mod:`scheduled_db.client.retry` decides (only when sending twice
is safe).  Only the standard library is used; a ``Client`` holds no connection
and may be shared between threads.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from scheduled_db.client.errors import ApiError, ClientError, Unreachable, api_error
from scheduled_db.client.models import (
    BatchResult,
    Cancelled,
    Execution,
    Job,
    JobState,
    Page,
    Trigger,
    Upcoming,
    pages,
)
from scheduled_db.client.node_info import Cluster, Health, Readiness
from scheduled_db.client.query import (
    Labels,
    Since,
    job_path,
    labels,
    pairs,
    since_param,
)
from scheduled_db.client.query import consistent as consistent_query
from scheduled_db.client.retry import (
    NO_RETRY,
    UNMADE_CODES,
    Failure,
    RetryPolicy,
    Safety,
    parse_retry_after,
    retry_delay,
)
from scheduled_db.client.transport import (
    Progress,
    Query,
    Response,
    check_base_url,
    exchange,
    opener,
)

_MERGE_PATCH = "application/merge-patch+json"


class Client:
    """A client of one cluster.

    ``url`` is a node's REST API (``http://host:8080``), or a list of several
    nodes' of the same cluster: a refused connection moves on to the next.
    ``token`` is an API token (sent as a bearer token); ``ca`` a PEM file an
    ``https://`` node's certificate must chain to (default: the system's CAs);
    ``timeout`` the seconds to wait for each answer; ``retry`` how hard to try
    (:class:`~scheduled_db.client.retry.RetryPolicy`; ``NO_RETRY`` never retries).
    Raises ``ValueError`` for a URL that is not http(s) and
    :class:`~scheduled_db.client.errors.BadCaFile` for a CA file it cannot use.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        token: str | None = None,
        ca: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        user_agent: str = "scheduled-db-client",
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("give at least one URL")
        self.urls = tuple(check_base_url(u) for u in urls)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._opener = opener(ca)
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._next = 0  # the node to ask first; moves on when one refuses connections

    def with_retry(self, retry: RetryPolicy) -> Client:
        """This client (the same nodes, token, CA and timeout) with another retry policy."""
        other = copy.copy(self)
        other.retry = retry
        return other

    @property
    def url(self) -> str:
        """The node the next request goes to first."""
        return self.urls[self._next % len(self.urls)]

    # --- jobs -------------------------------------------------------------------------

    def create_job(self, job: Mapping[str, Any]) -> Job:
        """Create a job from the body of ``POST /jobs`` (docs/api-reference.md).

        With an ``id``, creating is idempotent (the same body again answers the
        stored job; a different one :class:`Conflict` ``job_conflict``), so it is
        retried after a doubt; without one, the server picks the id and a retry
        could make a second job, so it is not (give ids to make creates safe).
        """
        safety = Safety.IDEMPOTENT if job.get("id") is not None else Safety.UNMADE_ONLY
        return Job.from_raw(self._json("POST", "/jobs", body=job, safety=safety))

    def get_job(self, job_id: str, *, consistent: bool = False) -> Job:
        """The job; :class:`NotFound` if there is none.  ``consistent``: a
        linearizable read (it sees every write acknowledged before it began)."""
        return Job.from_raw(self._json("GET", job_path(job_id), query=consistent_query(consistent)))

    def list_jobs(
        self,
        *,
        label: Labels | None = None,
        type: str | None = None,
        status: str | None = None,
        paused: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        consistent: bool = False,
    ) -> Page[Job]:
        """One page of jobs matching every filter given (they combine with AND).

        ``label``: ``{"team": "billing"}`` or ``["team=billing", ...]``; ``type``
        ``unico``/``recurrente``; ``status`` a job status; ``paused`` true/false;
        ``limit`` the page size; ``cursor`` a page's ``next_cursor``.
        """
        query = [*labels(label), *pairs(type=type, status=status, paused=paused)]
        query += [*pairs(limit=limit, cursor=cursor), *consistent_query(consistent)]
        return Page.from_raw(self._json("GET", "/jobs", query=query), "jobs", Job.from_raw)

    def iter_jobs(self, **filters: Any) -> Iterator[Job]:
        """Every job matching the filters of :meth:`list_jobs`, following the cursors
        page by page (``limit`` is the page size)."""
        for page in pages(self.list_jobs, **filters):
            yield from page.items

    def update_job(self, job_id: str, patch: Mapping[str, Any], if_match: int | None = None) -> Job:
        """Change a job with a JSON merge patch of its fields (RFC 7396: a field set to
        ``None`` is removed, an object is merged): the updated job.

        ``if_match``: the ``version`` the job must still have, else
        :class:`PreconditionFailed` (``version_mismatch``).  :class:`Conflict` with
        ``job_finished`` for a finished or cancelled job, ``job_in_progress`` while
        an attempt is in flight (try again shortly).
        """
        headers = {} if if_match is None else {"If-Match": str(if_match)}
        safety = Safety.IDEMPOTENT if if_match is None else Safety.UNMADE_ONLY
        body = self._json(
            "PATCH",
            job_path(job_id),
            body=patch,
            safety=safety,
            headers=headers,
            content_type=_MERGE_PATCH,
        )
        return Job.from_raw(body)

    def pause_job(self, job_id: str) -> Job:
        """Pause a job: it fires no more until resumed (pausing twice is a no-op)."""
        return Job.from_raw(self._json("POST", job_path(job_id, "/pause"), body={}))

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job; runs missed while paused follow its ``misfire_policy``."""
        return Job.from_raw(self._json("POST", job_path(job_id, "/resume"), body={}))

    def trigger_job(self, job_id: str) -> Trigger:
        """Deliver the job once now, outside its schedule (which is untouched), with an
        idempotency key of its own.  Works on paused and finished jobs; not retried
        after a doubt (a second trigger is a second delivery)."""
        path = job_path(job_id, "/trigger")
        return Trigger.from_raw(self._json("POST", path, body={}, safety=Safety.UNMADE_ONLY))

    def cancel_job(self, job_id: str, reason: str | None = None) -> Cancelled:
        """Cancel a job: it fires no more, its record stays, with ``reason``."""
        body = {} if reason is None else {"reason": reason}
        return Cancelled.from_raw(self._json("POST", job_path(job_id, "/cancel"), body=body))

    def delete_job(self, job_id: str) -> None:
        """Delete a job and its record.  :class:`NotFound` if there was none, except
        when this call's own earlier try may have deleted it (an answer lost to a
        dropped connection or an ``unknown_outcome``): then the job is gone, as asked."""
        try:
            self._call("DELETE", job_path(job_id), safety=Safety.IDEMPOTENT)
        except _RetriedNotFound:
            return

    def job_status(self, job_id: str) -> JobState:
        """Where the job's current run stands: status, attempts, next run."""
        return JobState.from_raw(self._json("GET", job_path(job_id, "/status")))

    def job_executions(self, job_id: str, limit: int | None = None) -> tuple[Execution, ...]:
        """The job's delivery attempts (the most recent ``limit`` if given)."""
        raw = self._json("GET", job_path(job_id, "/executions"), query=pairs(limit=limit))
        return Page.from_raw(raw, "attempts", Execution.from_raw).items

    def upcoming(self, job_id: str, n: int = 5) -> Upcoming:
        """The job's next ``n`` fire times (1 to 100), honouring its ``last_date``, its
        time zone's daylight-saving rules, and pause (none while paused)."""
        raw = self._json("GET", job_path(job_id, "/upcoming"), query=pairs(n=n))
        return Upcoming.from_raw(raw)

    def batch_create(self, jobs: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Create up to 1,000 jobs in one request (and one Raft entry): one result per
        job, in order, each created or refused on its own.  Retried after a doubt
        only when every job has an id (then each is an idempotent create)."""
        jobs = list(jobs)
        with_ids = all(j.get("id") is not None for j in jobs)
        safety = Safety.IDEMPOTENT if with_ids else Safety.UNMADE_ONLY
        raw = self._json("POST", "/jobs/batch", body={"jobs": jobs}, safety=safety)
        return BatchResult.from_raw(raw)

    # --- executions -------------------------------------------------------------------

    def list_executions(
        self,
        *,
        status: str | None = None,
        since: Since | None = None,
        job_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """One page of delivery attempts across all jobs, newest first.

        ``since``: an aware ``datetime``, epoch seconds, an RFC 3339 string, or a
        ``timedelta`` meaning that long ago.
        """
        when = None if since is None else since_param(since, time.time())
        query = pairs(status=status, since=when, job_id=job_id, limit=limit, cursor=cursor)
        raw = self._json("GET", "/executions", query=query)
        return Page.from_raw(raw, "executions", Execution.from_raw)

    def iter_executions(self, **filters: Any) -> Iterator[Execution]:
        """Every attempt matching the filters of :meth:`list_executions`, page by page."""
        for page in pages(self.list_executions, **filters):
            yield from page.items

    # --- the node ---------------------------------------------------------------------

    def health(self) -> Health:
        """The node's health report; an unhealthy node (503) is a report too, not an
        error: see :attr:`Health.healthy`.  Tried once, as every probe."""
        return Health.from_raw(self._report("/health"))

    def livez(self) -> Mapping[str, Any]:
        """200 while the node's process serves HTTP (for liveness probes); tried once."""
        raw = self.with_retry(NO_RETRY)._json("GET", "/livez")
        return raw if isinstance(raw, dict) else {}

    def ready(self) -> Readiness:
        """Whether the node can serve (a 503 "not ready" is a report, not an error);
        tried once."""
        return Readiness.from_raw(self._report("/ready"))

    def cluster(self) -> Cluster:
        """The Raft group as this node sees it: role, term, leader, members."""
        return Cluster.from_raw(self._json("GET", "/debug/cluster"))

    def whoami(self) -> Mapping[str, Any]:
        """``{"tokens", "role", "name"}``: the role this client's token has (``admin``
        and ``tokens`` false when the node asks for none)."""
        raw = self._json("GET", "/auth/whoami")
        return raw if isinstance(raw, dict) else {}

    def backup(self, sink: BinaryIO, progress: Progress | None = None) -> Mapping[str, str]:
        """Stream a backup file (``GET /admin/snapshot``) into ``sink``; the answer's
        headers (``x-snapshot-index``, ``-term``, ``-digest``, ``-bytes``).  Retried
        only while nothing was written; a transfer cut off raises :class:`Unreachable`
        and leaves a partial file, which ``scheduled-db restore`` refuses."""
        headers = {**self._headers, "Accept": "application/vnd.scheduled-db.backup"}
        answer = self._call(
            "GET", "/admin/snapshot", safety=Safety.UNMADE_ONLY, headers=headers,
            sink=sink, progress=progress,
        )  # fmt: skip
        return answer.headers

    # --- the one way requests go ------------------------------------------------------

    def _report(self, path: str) -> object:
        """A probe's body, whether it answered 200 or 503 with a report.  Tried once:
        a probe asks how the node is now, and a retry would only answer later."""
        probe = self.with_retry(NO_RETRY)
        answer = probe._call("GET", path, safety=Safety.IDEMPOTENT, accept=(503,))
        if answer.status == 503 and not isinstance(answer.body, dict):
            raise _error(answer)
        return answer.body

    def _json(self, method: str, path: str, **how: Any) -> object:
        how.setdefault("safety", Safety.IDEMPOTENT)
        return self._call(method, path, **how).body

    def _call(
        self,
        method: str,
        path: str,
        *,
        safety: Safety,
        query: Query = (),
        body: object = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        accept: tuple[int, ...] = (),
        sink: BinaryIO | None = None,
        progress: Progress | None = None,
    ) -> Response:
        """Send until an answer that is not retried; return it if it is 2xx (or in
        ``accept``), else raise its :class:`ApiError` (or :class:`Unreachable`)."""
        all_headers = {**self._headers, **(headers or {})}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            all_headers["Content-Type"] = content_type
        tries, waited, doubted = 0, 0.0, False
        while True:
            tries += 1
            base = self.url
            error: ClientError
            try:
                answer = exchange(
                    self._opener, base, method, path,
                    timeout=self.timeout, headers=all_headers, query=query, data=data,
                    sink=sink, progress=progress,
                )  # fmt: skip
            except Unreachable as exc:
                error, failure = exc, Failure(refused=exc.refused, dropped=exc.dropped)
            else:
                if answer.ok or answer.status in accept:
                    return answer
                error = _error(answer)
                if doubted and answer.status == 404 and method == "DELETE":
                    raise _RetriedNotFound() from error
                failure = Failure(answer.status, error.code, error.retry_after)
            delay = self._wait_before_retry(base, safety, failure, tries, waited)
            if delay is None:
                raise error
            doubted = doubted or not (failure.refused or failure.code in UNMADE_CODES)
            time.sleep(delay)
            waited += delay

    def _wait_before_retry(
        self, base: str, safety: Safety, failure: Failure, tries: int, waited: float
    ) -> float | None:
        """The policy's wait before the next try, or none; none at all for a refused
        connection when another node is there to ask."""
        moved = failure.refused and self._move_on(base)  # the next call starts there too
        delay = retry_delay(self.retry, safety, failure, tries, waited)
        if delay is not None and moved and tries < len(self.urls):
            return 0.0  # another node may well be up: ask it at once
        return delay

    def _move_on(self, base: str) -> bool:
        """Ask the next node from now on, if there is one; whether there was."""
        if len(self.urls) == 1:
            return False
        if self.url == base:
            self._next = (self._next + 1) % len(self.urls)
        return True


class _RetriedNotFound(Exception):
    """A retried DELETE found nothing: its own earlier try may have deleted it."""


def _error(answer: Response) -> ApiError:
    retry_after = parse_retry_after(answer.headers.get("retry-after"))
    return api_error(answer.status, answer.reason, answer.body, answer.text, retry_after)
