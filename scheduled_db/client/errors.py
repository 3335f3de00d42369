"""What the client raises: one tree under :class:`ClientError`.

- :class:`ApiError`: the server answered with an error status.  It carries the
  status, the stable ``code`` of the JSON error body (``job_not_found``,
  ``version_mismatch``, ...), its message and, for a refused field, ``field``.
  Common statuses have a subclass (:class:`NotFound`, :class:`Conflict`,
  :class:`PreconditionFailed`, ...), so ``except NotFound`` reads as intended;
  :func:`api_error` picks the class from the status.
- :class:`Unreachable`: no HTTP answer at all (refused, timed out, a TLS
  certificate that did not verify).
- :class:`UnexpectedAnswer`: a 2xx whose body is not what the endpoint answers
  (a proxy's page, a server of another kind).
- :class:`BadCaFile`: the CA file given to the client cannot be used.

Each also subclasses the nearest builtin where one fits (``LookupError`` for
:class:`NotFound`, ``ConnectionError`` for :class:`Unreachable`, ``ValueError``
for :class:`BadRequest`), so code that does not know this module still catches
them sensibly.
"""

from __future__ import annotations

from collections.abc import Mapping


class ClientError(Exception):
    """Base of everything :class:`~scheduled_db.client.Client` raises on purpose."""


class Unreachable(ClientError, ConnectionError):
    """No HTTP answer came from ``url``; ``problem`` says why in a few words.

    ``refused`` is true when the connection was refused: the request never left,
    so sending it again is safe whatever it was; ``dropped`` when the connection
    broke after the request was sent: it may have been carried out.
    """

    def __init__(
        self, url: str, problem: str, *, refused: bool = False, dropped: bool = False
    ) -> None:
        self.url = url
        self.problem = problem
        self.refused = refused
        self.dropped = dropped
        super().__init__(f"cannot reach {url}: {problem}")


class BadCaFile(ClientError, ValueError):
    """The CA file given for https:// nodes cannot be read as PEM certificates."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot use {path}: {problem}")


class UnexpectedAnswer(ClientError):
    """A success status whose body is not the shape the endpoint answers with."""

    def __init__(self, what: str, body: object) -> None:
        self.body = body
        super().__init__(what)


class ApiError(ClientError):
    """The server answered ``status`` (4xx or 5xx).

    ``code`` is the stable name in the JSON error body (``""`` when the body had
    none, e.g. a proxy's HTML page), ``message`` its one-line text, ``field`` the
    request field it names (validation errors) or ``None``.  ``body`` is the
    decoded JSON body (or ``None``), ``text`` the body as it came, ``reason`` the
    HTTP reason phrase, ``retry_after`` the seconds of a ``Retry-After`` header.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        reason: str = "",
        body: object | None = None,
        text: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.reason = reason
        self.body = body
        self.text = text
        self.retry_after = retry_after
        super().__init__(f"HTTP {status} {code or reason}: {message}".rstrip(": "))


class BadRequest(ApiError, ValueError):
    """400: the request was refused as invalid; ``field`` names what is wrong."""


class Unauthorized(ApiError):
    """401: no token, or one the node does not know."""


class Forbidden(ApiError):
    """403: the token's role may not do this (a read token writing, say)."""


class NotFound(ApiError, LookupError):
    """404: no such job (``job_not_found``) or no such route."""


class Conflict(ApiError):
    """409: the id is taken by a different job (``job_conflict``), the job is
    finished or cancelled (``job_finished``, ``job_cancelled``), or an attempt is
    in flight (``job_in_progress``: try again shortly)."""


class PreconditionFailed(ApiError):
    """412 ``version_mismatch``: the job changed since the version given as
    ``if_match``; read it again and decide."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the node's limit."""


class RateLimited(ApiError):
    """429: this client sent more than the node's rate limit allows."""


class ServerError(ApiError):
    """500: a bug in the server (its log says more)."""


class Unavailable(ApiError):
    """503: no leader (an election), the node overloaded, or the outcome of a write
    unknown (``unknown_outcome``: leadership changed before it was confirmed)."""


class InsufficientStorage(ApiError):
    """507: the cluster's job or memory limit is reached, or the leader's disk is full."""


_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    429: RateLimited,
    500: ServerError,
    503: Unavailable,
    507: InsufficientStorage,
}


def api_error(
    status: int, reason: str, body: object | None, text: str, retry_after: float | None
) -> ApiError:
    """The error for an answer of ``status``: its class by status, its fields from a
    JSON error body ``{"error": message, "code": ..., "field": ...}``."""
    info = body if isinstance(body, dict) else {}
    code = info.get("code")
    message = info.get("error", info.get("message"))
    field = info.get("field")
    if not isinstance(message, str):
        message = " ".join(text.split())[:200]
    kind = _BY_STATUS.get(status, ApiError)
    return kind(
        status,
        code if isinstance(code, str) else "",
        message,
        field if isinstance(field, str) else None,
        reason=reason,
        body=body,
        text=text,
        retry_after=retry_after,
    )
