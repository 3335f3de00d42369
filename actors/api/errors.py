"""How every failure of a request becomes a JSON error body: the one renderer.

Bodies are ``{"error":"<one-line message>","code":"<stable name>",...}``
(compact, as every answer: :mod:`actors.api.responses`).  The
middleware here turns the framework's own exceptions (404 unknown route, 405,
413), the named errors of :mod:`scheduled_db.errors` (refused writes among them;
their status and code are theirs, :func:`render_error` only lays them out) and
timeouts into that shape; anything else is a bug and becomes a generic 500
whose body says nothing about it (the traceback goes to the log only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from actors.api.responses import json_response
from scheduled_db.errors import NotLeader, SchedulerError, safe_text

log = logging.getLogger(__name__)

_FRAMEWORK_MESSAGES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("body_too_large", "Request body too large"),
}
# Headers of a framework exception that describe its text body, not the error.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def error_response(
    status: int,
    code: str,
    message: str,
    extra: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The JSON error body every failure is rendered as."""
    body: dict[str, Any] = {"error": message, "code": code, **(extra or {})}
    return json_response(body, status=status, headers=headers)


def render_error(exc: SchedulerError) -> web.Response:
    """The JSON error body of a named error: its status, code, message and details."""
    extra = {k: safe_text(v) if isinstance(v, str) else v for k, v in exc.details().items()}
    return error_response(exc.http_status, exc.code, str(exc), extra, exc.headers() or None)


def _framework_error(exc: web.HTTPException, max_body_bytes: int) -> web.Response:
    code, message = _FRAMEWORK_MESSAGES.get(exc.status, ("http_error", exc.reason))
    if exc.status == 413:
        message = f"Request body too large: the limit is {max_body_bytes} bytes"
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    return error_response(exc.status, code, message, headers=headers)


def error_middleware(max_body_bytes: int) -> Any:
    """The middleware that renders every error as JSON (innermost, next to handlers)."""

    @web.middleware
    async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # a redirect or an empty success raised by a handler
            return _framework_error(exc, max_body_bytes)
        except SchedulerError as exc:
            return render_error(exc)
        except TimeoutError:
            return render_error(NotLeader())  # no answer in time: as if no leader
        except Exception:
            # The body must not say what failed: exception text may hold paths,
            # addresses or data; the log gets all of it.
            log.exception("internal error answering %s %s", request.method, safe_text(request.path))
            return error_response(500, "internal_error", "internal error")

    return render_errors
