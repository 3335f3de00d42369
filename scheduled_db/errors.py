"""The named errors of scheduled-db: the one tree, with the HTTP status of each.

Every error the API can render subclasses :class:`SchedulerError`.  Each carries
its HTTP status (``http_status``), its stable ``code``, the data its JSON body
needs (:meth:`SchedulerError.details`) and a one-line, client-safe ``str()``: the
mapping from error to status is in this one module and nowhere else.  The body
itself is built in one place, :mod:`actors.api.errors`.

The Raft core raises :class:`ProposalDropped` and :class:`NotLeader` from here
too, so a refusal keeps one type from the core to the client.

Errors also subclass the nearest builtin (``ValueError``, ``LookupError``) so
code that does not know this module still catches them sensibly.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from enum import Enum
from typing import Literal

_MAX_TEXT = 200  # client text echoed back in messages is cut to this many characters
NO_LEADER = "No leader available"  # what a client is told of a write refused unmade


def safe_text(value: object, limit: int = _MAX_TEXT) -> str:
    """Render client-supplied ``value`` for a one-line message.

    Control, format and surrogate characters are escaped (a message must stay on
    one line and be encodable as UTF-8) and long text is cut with an ellipsis.
    """
    text = value if isinstance(value, str) else repr(value)
    out: list[str] = []
    for ch in text[: limit + 1]:
        if unicodedata.category(ch)[0] in "CZ" and ch != " ":
            out.append(f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    rendered = "".join(out)
    return rendered[:limit] + "..." if len(text) > limit else rendered


class SchedulerError(Exception):
    """Base of the named errors; the API renders each one as a JSON error body
    (in :mod:`actors.api.errors`, the one renderer)."""

    http_status: int = 500
    code: str = "internal_error"  # stable, machine-readable error name
    retry_after_s: int | None = None  # if set, the answer says when to retry

    def details(self) -> dict[str, object]:
        """The structured fields of the JSON error body (besides code and message)."""
        return {}

    def headers(self) -> dict[str, str]:
        """The response headers the answer needs (``Retry-After``, a challenge)."""
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class RequestError(SchedulerError):
    """A problem of the HTTP exchange itself, not of a job: its body, content type,
    credentials or rate.  Each carries its own status and code (``invalid_body``
    400, ``unauthorized`` 401, ``forbidden`` 403, ``request_timeout`` 408,
    ``unsupported_media_type`` 415, ``rate_limited`` 429, ...), a client-safe
    message, body fields and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        extra: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = code
        self._extra = dict(extra or {})
        self._headers = dict(headers or {})

    def details(self) -> dict[str, object]:
        return dict(self._extra)

    def headers(self) -> dict[str, str]:
        return dict(self._headers)


class ValidationError(SchedulerError, ValueError):
    """A client value was rejected.  ``str()`` is ``"<field>: <message>"``."""

    http_status = 400
    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        self.field = safe_text(field, 100)
        self.message = safe_text(message, 300)
        super().__init__(f"{self.field}: {self.message}")

    def details(self) -> dict[str, object]:
        return {"field": self.field}


class JobNotFound(SchedulerError, LookupError):
    """No job with this id exists."""

    http_status = 404
    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Job not found: {safe_text(job_id)}")

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id}


class JobConflict(SchedulerError):
    """A job with this id exists with a different body (a retried create with the
    same body is not a conflict: the caller answers it with the existing job)."""

    http_status = 409
    code = "job_conflict"

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Job {safe_text(job_id)} already exists with a different body")

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id}


class JobCancelled(SchedulerError):
    """The job was cancelled: nothing runs it any more, a trigger included."""

    http_status = 409
    code = "job_cancelled"

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Job {safe_text(job_id)} is cancelled")

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id}


CapacityKind = Literal["job_count", "memory"]


class CapacityExceeded(SchedulerError):
    """Accepting the request would take the cluster past a configured limit."""

    http_status = 507
    code = "capacity_exceeded"

    def __init__(self, kind: CapacityKind, current: int, limit: int, requested: int) -> None:
        self.kind: CapacityKind = kind
        self.current = current
        self.limit = limit
        self.requested = requested
        super().__init__(
            f"Capacity exceeded ({kind}): current {current} + requested {requested} > limit {limit}"
        )

    def details(self) -> dict[str, object]:
        return {
            "type": self.kind,
            "current": self.current,
            "limit": self.limit,
            "requested": self.requested,
        }


class ProposalDropped(SchedulerError):
    """A write was refused before it was proposed, so it was not made and may be
    sent again (here once a leader is known, or to the leader).

    ``why`` says what stopped it (a leadership transfer, a removed node); a client
    is told only that no leader could take it.
    """

    http_status = 503
    code = "no_leader"
    retry_after_s = 1

    def __init__(self, why: str = "") -> None:
        self.why = why
        super().__init__(self._message())

    def _message(self) -> str:
        return NO_LEADER


class NotLeader(ProposalDropped):
    """Only the leader takes writes; ``leader`` is the leader's node id, or '' if
    none is known (an election is in progress, or quorum is lost)."""

    code = "not_leader"

    def __init__(self, leader: str = "") -> None:
        self.leader = leader
        if not leader:
            self.code = ProposalDropped.code  # with no one to name, it reads as dropped
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")

    def _message(self) -> str:
        if not self.leader:
            return super()._message()
        return f"This node is not the leader; the leader is {safe_text(self.leader, 64)}"

    def details(self) -> dict[str, object]:
        return {"leader": safe_text(self.leader, 64)} if self.leader else {}


class UnknownOutcome(SchedulerError):
    """A write was proposed, but whether it was applied is not known: leadership
    changed (or the disk filled up) before it was confirmed.  ``detail`` is for
    the log; an idempotent retry is safe."""

    http_status = 503
    code = "unknown_outcome"
    retry_after_s = 1

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(
            "The outcome of the write is unknown: leadership changed before it was "
            "confirmed, so it may or may not have been applied; an idempotent retry is safe"
        )


class DiskFull(SchedulerError):
    """The leader's disk is full: it refuses writes (before proposing them) until
    space is freed; reads still work."""

    http_status = 507
    code = "disk_full"
    retry_after_s = 5

    def __init__(self) -> None:
        super().__init__(
            "The disk of the leader is full: writes are refused until space is freed; "
            "reads still work"
        )


class BackupUnavailable(SchedulerError):
    """This node cannot take a backup now (no room for its checkpoint); nothing was
    changed, and another member may."""

    http_status = 503
    code = "backup_unavailable"
    retry_after_s = 5

    def __init__(self, why: str) -> None:
        super().__init__(f"No backup can be taken on this node now: {why}")


class Overloaded(SchedulerError):
    """This node already works on as many requests of this kind as it admits.

    Raised on arrival, before anything is read or proposed: the request was not
    made, so sending it again later, or to another node, is safe.
    """

    http_status = 503
    code = "overloaded"
    retry_after_s = 1

    def __init__(self, kind: str, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        super().__init__(
            f"This node is at its limit of {limit} {kind}s in flight; retry in "
            f"{self.retry_after_s} s, or on another node"
        )

    def details(self) -> dict[str, object]:
        return {"limit": self.limit}


class InvalidTransition(SchedulerError):
    """The job's current status does not allow the requested action.  A 400, not
    a 409: the API of the issue answers "Cannot cancel completed job" so."""

    http_status = 400
    code = "invalid_transition"

    def __init__(self, job_id: str, action: str, status: str) -> None:
        self.job_id = job_id
        self.action = action
        # A str-valued Enum (JobStatus) formats as "JobStatus.X"; keep its value.
        self.status = str(status.value) if isinstance(status, Enum) else status
        super().__init__(f"Cannot {safe_text(action, 40)} {safe_text(self.status, 40)} job")

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id, "action": self.action, "status": self.status}


class JobStateConflict(SchedulerError):
    """The job's state does not allow a change now (409); see the two kinds below."""

    http_status = 409
    why = ""

    def __init__(self, job_id: str, action: str, status: str) -> None:
        self.job_id = job_id
        self.action = action
        self.status = str(status.value) if isinstance(status, Enum) else status
        super().__init__(
            f"Cannot {safe_text(action, 40)} a {safe_text(self.status, 40)} job: {self.why}"
        )

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id, "action": self.action, "status": self.status}


class JobFinished(JobStateConflict):
    """It completed, failed for good or was cancelled: nothing but delete changes it."""

    code = "job_finished"
    why = "the job is finished"


class JobInProgress(JobStateConflict):
    """An attempt is in flight: the change may be made once it ends."""

    code = "job_in_progress"
    why = "an attempt is in flight; try again when it ends"


class UpdateConflict(SchedulerError):
    """Other changes to the job kept committing between an update's read and its write."""

    http_status = 409
    code = "update_conflict"

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__("The job kept changing during the update; try again")

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id}


class VersionMismatch(SchedulerError):
    """``If-Match`` named a version the job is no longer at (412)."""

    http_status = 412
    code = "version_mismatch"

    def __init__(self, job_id: str, expected: int, current: int) -> None:
        self.job_id = job_id
        self.expected = expected
        self.current = current
        super().__init__(f"The job is at version {current}, not {expected}")

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id, "expected_version": self.expected, "version": self.current}


class MembershipConflict(SchedulerError):
    """A membership change that contradicts the membership (adding a member twice,
    removing a node that is not one, removing the last voter)."""

    http_status = 409
    code = "membership_conflict"

    def __init__(self, message: str) -> None:
        super().__init__(safe_text(message, 200))
