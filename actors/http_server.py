"""The API's listener: aiohttp's server with our limits and JSON protocol errors.

aiohttp answers a request it cannot parse (too many headers, a header or request
line too long, not HTTP at all) before any middleware runs, with a text/plain body,
and logs each one with a traceback at ERROR: a stranger could fill the log.  Here
those answers are JSON errors like every other (431 for oversized headers, 400 for
the rest) and the log gets one INFO line.

aiohttp exposes no hook for this; :class:`ApiRunner` swaps the class of the server
it builds for one whose protocol objects render errors our way.  The swap touches
aiohttp internals (``Server._loop``/``_kwargs``), so tests/actors/test_http_limits.py
checks the answers a real server gives: an aiohttp upgrade that changes them fails
there, not in production.

Slow clients: ``keepalive_timeout`` (``http.idle_timeout``) also bounds the time a
new connection may take to send its headers (aiohttp starts that timer at
connection and no byte resets it); the body's time is bounded by ``read_json``
(``http.body_timeout``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from scheduled_db.config_model import HttpConfig

log = logging.getLogger(__name__)

_TOO_MANY_HEADERS = "Too many headers"  # how aiohttp words it (BadHttpMessage)


def protocol_error(status: int, exc: BaseException | None, max_line: int) -> tuple[int, str, str]:
    """(status, code, message) for a request aiohttp could not take."""
    if isinstance(exc, LineTooLong):
        return 431, "headers_too_large", f"A request line or header is over {max_line} bytes"
    if isinstance(exc, BadHttpMessage) and _TOO_MANY_HEADERS in str(exc):
        return 431, "headers_too_large", "Too many request headers"
    if status >= 500:
        return 500, "internal_error", "Internal server error"
    return 400, "bad_request", "Malformed HTTP request"


class _JsonErrorsHandler(web.RequestHandler):
    max_line = 0  # set by the server that makes it

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the answer has begun: all we can do is close
            raise ConnectionError("response already started; cannot send an error")
        status, code, text = protocol_error(status, exc, self.max_line)
        if status >= 500:
            log.error("http: error handling a request from %s", request.remote, exc_info=exc)
        else:
            log.info("http: refused a request from %s: %s", request.remote, text)
        body = json.dumps({"error": text, "code": code})
        response = web.Response(status=status, text=body, content_type="application/json")
        response.force_close()
        return response


class _JsonErrorsServer(web.Server):
    max_line = 0  # set by ApiRunner

    def __call__(self) -> web.RequestHandler:
        handler = _JsonErrorsHandler(self, loop=self._loop, **self._kwargs)
        handler.max_line = self.max_line
        return handler


class ApiRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` with ``http``'s limits and JSON protocol errors."""

    def __init__(self, app: web.Application, http: HttpConfig, **kwargs: Any) -> None:
        super().__init__(
            app,
            keepalive_timeout=http.idle_timeout_ms / 1000,
            max_line_size=http.max_header_size_bytes,
            max_field_size=http.max_header_size_bytes,
            max_headers=http.max_headers,
            **kwargs,
        )
        self._max_line = http.max_header_size_bytes

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorsServer
        assert isinstance(server, _JsonErrorsServer)
        server.max_line = self._max_line
        return server
