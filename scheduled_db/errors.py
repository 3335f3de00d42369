"""The named errors of scheduled-db, and the HTTP status each one maps to.

Every error the API can render subclasses :class:`SchedulerError`.  Each carries
the data its JSON body needs (:meth:`SchedulerError.details`) and a one-line,
client-safe ``str()``; the HTTP status lives on the class (``http_status``), so
the mapping from error to status is in this one module and nowhere else.

Errors also subclass the nearest builtin (``ValueError``, ``LookupError``) so
code that does not know this module still catches them sensibly.
"""

from __future__ import annotations

import unicodedata
from enum import Enum
from typing import ClassVar, Literal

_MAX_TEXT = 200  # client text echoed back in messages is cut to this many characters


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
    """Base of the errors the API renders as a JSON error body."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"  # stable, machine-readable error name
    retry_after_s: ClassVar[int | None] = None  # if set, the answer says when to retry

    def details(self) -> dict[str, object]:
        """The structured fields of the JSON error body (besides code and message)."""
        return {}

    def to_json(self) -> dict[str, object]:
        """The JSON error body: ``{"error": code, "message": str(self), **details}``."""
        return {"error": self.code, "message": str(self), **self.details()}


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


class NotLeaderError(SchedulerError):
    """This node is not the leader; ``leader_id``/``leader_address`` hint at who is."""

    http_status = 503
    code = "not_leader"

    def __init__(self, leader_id: str | None = None, leader_address: str | None = None) -> None:
        self.leader_id = leader_id
        self.leader_address = leader_address
        super().__init__(self._message())

    def _message(self) -> str:
        if self.leader_id is None:
            return "This node is not the leader"
        return f"This node is not the leader; the leader is {safe_text(self.leader_id)}"

    def details(self) -> dict[str, object]:
        return {"leader_id": self.leader_id, "leader_address": self.leader_address}


class NoLeader(NotLeaderError):
    """No leader is known (an election is in progress or quorum is lost)."""

    code = "no_leader"

    def __init__(self) -> None:
        super().__init__(None, None)

    def _message(self) -> str:
        return "No leader is currently elected; retry shortly"


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
    """The job's current status does not allow the requested action."""

    http_status = 409
    code = "invalid_transition"

    def __init__(self, job_id: str, action: str, status: str) -> None:
        self.job_id = job_id
        self.action = action
        # A str-valued Enum (JobStatus) formats as "JobStatus.X"; keep its value.
        self.status = str(status.value) if isinstance(status, Enum) else status
        super().__init__(f"Cannot {safe_text(action, 40)} {safe_text(self.status, 40)} job")

    def details(self) -> dict[str, object]:
        return {"job_id": self.job_id, "action": self.action, "status": self.status}


class MembershipConflict(SchedulerError):
    """A membership change that contradicts the membership (adding a member twice,
    removing a node that is not one, removing the last voter)."""

    http_status = 409
    code = "membership_conflict"

    def __init__(self, message: str) -> None:
        super().__init__(safe_text(message, 200))
