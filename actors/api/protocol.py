"""The errors aiohttp answers by itself, outside the API's middlewares, made JSON.

Some requests never reach the error renderer of :mod:`actors.api.errors`:

- a request aiohttp's parser refuses (a malformed request line, a header past
  8 KiB, conflicting ``Content-Length`` and ``Transfer-Encoding``, an unsupported
  ``Content-Encoding``) is answered by the connection handler itself, with a
  text/plain body quoting the parser, and logged at ERROR with a traceback;
- a body that breaks its ``Content-Encoding`` or chunked framing half-way is
  refused by :mod:`actors.api.body`, and then aiohttp, draining the rest of it,
  logs the same error again as an "Unhandled exception" with a traceback;
- an ``Expect`` header other than ``100-continue`` is refused (417) before the
  middlewares run, again with a text/plain body.

A client's malformed request is not the node's error, and every error body of the
API is JSON, so :class:`ApiRequestHandler` answers the first with the JSON error
shape and logs one INFO line for it and for the second (a traceback is kept for
real failures), and :func:`render_json_errors` turns any error response that is
about to leave without a JSON body into one.  Without this, any client could fill
the node's log with tracebacks.

Too many headers, or a request line or header longer than ``http.max_header_size``,
is a 431 (``headers_too_large``) rather than a plain 400.

aiohttp has no public switch for the connection handler's class: :class:`ApiRunner`
swaps it in when the server is made, and checks that the server is the plain
``web.Server`` whose construction it knows (tests/actors/api/test_http_protocol.py and
test_http_limits.py hold it to the behaviour above, so an aiohttp upgrade that moves
these hooks fails there).

Slow clients: aiohttp's keep-alive timer (``http.idle_timeout``) starts when a
connection opens and no byte resets it, so it also bounds a client that trickles
its headers; the body's time is bounded by :func:`actors.api.body.read_body`
(``http.body_timeout``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from actors.api.errors import error_response
from actors.api.responses import json_bytes
from scheduled_db.config.model import HttpConfig
from scheduled_db.errors import safe_text

log = logging.getLogger(__name__)

BAD_REQUEST = "Malformed HTTP request"
_JSON = "application/json"
_TOO_MANY_HEADERS = "Too many headers"  # how aiohttp words it (a BadHttpMessage)


def headers_too_large(exc: BaseException | None, max_line: int) -> str | None:
    """The 431 message when ``exc`` is aiohttp refusing the size of the headers."""
    if isinstance(exc, LineTooLong):
        return f"A request line or header is over {max_line} bytes"
    if isinstance(exc, BadHttpMessage) and _TOO_MANY_HEADERS in str(exc):
        return "Too many request headers"
    return None


def client_fault(exc: BaseException | None) -> str | None:
    """A one-line reason when ``exc`` is a request the client got wrong, else None."""
    if isinstance(exc, web.RequestPayloadError) and isinstance(exc.__cause__, HttpProcessingError):
        exc = exc.__cause__  # the parser's own error, without the "400, message:" prefix
    if isinstance(exc, HttpProcessingError):
        text = str(exc.message)
    elif isinstance(exc, web.RequestPayloadError):
        text = str(exc)
    else:
        return None
    words = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return safe_text(words, 120) or type(exc).__name__


class ApiRequestHandler(web.RequestHandler):
    """aiohttp's HTTP/1.1 connection handler, with JSON error bodies and one-line logs
    for requests it refuses before the application sees them."""

    max_line = 0  # http.max_header_size, set by the server that makes it

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        reason = client_fault(exc)
        too_large = headers_too_large(exc, self.max_line)
        if too_large is not None:
            log.info("http: refused a malformed request from %s: %s", request.remote, too_large)
            status, code, text = 431, "headers_too_large", too_large
        elif status < 500 and reason is not None:
            log.info("http: refused a malformed request from %s: %s", request.remote, reason)
            code, text = "bad_request", BAD_REQUEST
        elif status < 500:
            code, text = "bad_request", HTTPStatus(status).phrase
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            code, text = "internal_error", "internal error"
        if request.writer.output_size > 0:  # as aiohttp does: too late for another answer
            raise ConnectionError("the response has started; cannot send an error instead")
        response = error_response(status, code, text)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        reason = client_fault(kw.get("exc_info"))
        if reason is None:
            super().log_exception(*args, **kw)
        else:  # a body the client broke, met again while draining it after the answer
            log.info("http: dropped the rest of a malformed request body: %s", reason)


class _ApiServer(web.Server):
    """``web.Server`` making :class:`ApiRequestHandler` connections."""

    max_line = 0  # set by ApiRunner

    def __call__(self) -> web.RequestHandler:
        handler = ApiRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.max_line = self.max_line
        return handler


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` with ``http``'s limits, whose connections are
    :class:`ApiRequestHandler` ones."""

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
        if type(server) is not web.Server:
            raise RuntimeError(f"unexpected aiohttp server class {type(server).__name__}")
        server.__class__ = _ApiServer  # the same object: only how it makes connections changes
        assert isinstance(server, _ApiServer)
        server.max_line = self._max_line
        return server


async def render_json_errors(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: an error response about to leave without a JSON body
    (aiohttp's own, from outside the middlewares) gets the API's JSON error body."""
    if response.status < 400 or not isinstance(response, web.Response):
        return
    if response.content_type == _JSON:
        return
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Error"
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    body = json_bytes({"error": phrase, "code": code})
    response.body = body
    response.content_type = _JSON
    response.charset = "utf-8"
    if "Content-Length" in response.headers:  # set from the old body, before this hook ran
        response.headers["Content-Length"] = str(len(body))
