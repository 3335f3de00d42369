"""Reading a request's JSON body: size, content type, encoding and syntax.

Every problem is an :class:`~scheduled_db.errors.RequestError` with a 4xx status and
a message that names what is wrong, never the parser's internals.  JSON is
UTF-8 (RFC 8259); numbers the rest of the system cannot carry (NaN, infinities,
integers of hundreds of digits) are refused here, before validation sees them.
"""

from __future__ import annotations

import asyncio
import json
import math

from aiohttp import web

from scheduled_db.errors import RequestError, ValidationError

# Seconds a client has to send a request's body; set on the application by build_app.
BODY_TIMEOUT_S = web.AppKey("body_timeout_s", float)
DEFAULT_BODY_TIMEOUT_S = 30.0
MAX_INT_DIGITS = 40  # far beyond 64 bits; keeps int() off the slow path for huge literals
_UTF8 = frozenset({"utf-8", "utf8"})


class _NumberError(ValueError):
    """A JSON number the system cannot represent."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _NumberError("an integer is too large")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberError("a number is out of range")
    return value


def _reject_constant(name: str) -> float:
    raise _NumberError(f"{name} is not valid JSON")


def _is_json(content_type: str) -> bool:
    main, _, sub = content_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _check_content_type(request: web.Request) -> None:
    charset = request.charset
    if not _is_json(request.content_type) or (charset and charset.lower() not in _UTF8):
        raise RequestError(
            415,
            "unsupported_media_type",
            "Unsupported Content-Type: the body must be JSON encoded as UTF-8",
        )


def _bad_body(message: str) -> RequestError:
    return RequestError(400, "invalid_body", f"body: {message}", {"field": "body"})


def parse_json(data: bytes) -> object:
    """Decode a UTF-8 JSON document, raising a 400 :class:`RequestError` for anything else."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_body("is not valid UTF-8") from None
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise _bad_body(f"malformed JSON at line {exc.lineno} column {exc.colno}") from None
    except _NumberError as exc:
        raise _bad_body(str(exc)) from None
    except RecursionError:
        raise _bad_body("JSON is nested too deeply") from None


async def read_body(request: web.Request) -> bytes:
    """The request's body as sent, decoded from its ``Content-Encoding``.

    408 when it takes longer than the application's :data:`BODY_TIMEOUT_S` to
    arrive; 400 when the client broke its encoding or the chunked framing (aiohttp
    raises it mid-read), or went away before sending all of it (the answer then
    reaches no one, but the node logs no error for a client's disconnection).
    """
    timeout_s = request.config_dict.get(BODY_TIMEOUT_S, DEFAULT_BODY_TIMEOUT_S)
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        message = f"body: not received within {timeout_s:g} s"
        raise RequestError(408, "request_timeout", message, {"field": "body"}) from None
    except web.RequestPayloadError:
        raise _bad_body("could not be read: bad Content-Encoding or chunked framing") from None
    except ConnectionResetError:
        raise _bad_body("the connection closed before the body was complete") from None


async def _read_raw(request: web.Request, max_bytes: int, *, required: bool) -> bytes:
    """The raw body; b"" when there is none and it is not ``required``.

    Raises 413 past ``max_bytes`` (the application's ``client_max_size`` enforces
    the same limit on chunked bodies, whose length is not known in advance), 415
    for a body that is not JSON, 400 for a missing one, and what
    :func:`read_body` raises.
    """
    length = request.content_length
    if length is not None and length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=length)
    if request.body_exists:
        _check_content_type(request)
    data = await read_body(request)
    if not data and required:
        raise _bad_body("a JSON object is required")
    return data


async def read_json(request: web.Request, max_bytes: int, *, required: bool) -> object | None:
    """The request's JSON body, or None when it is empty and not ``required`` (a JSON
    ``null`` is None too: use :func:`read_json_object` where the two differ)."""
    data = await _read_raw(request, max_bytes, required=required)
    return parse_json(data) if data else None


async def read_json_object(
    request: web.Request, max_bytes: int, *, required: bool
) -> dict[str, object]:
    """Like :func:`read_json`, but the body must be a JSON object ({} when absent).

    Absent means no body at all: a JSON ``null`` is a body, and not an object
    (schemathesis found ``-d null`` cancelling a job as if no body had been sent).
    """
    data = await _read_raw(request, max_bytes, required=required)
    if not data:
        return {}
    value = parse_json(data)
    if not isinstance(value, dict):
        raise _bad_body("must be a JSON object")
    return value


def no_fields(body: dict[str, object]) -> None:
    """For a request that takes no fields (pause, resume, trigger): ``{}`` or no body
    at all; any field is refused by name."""
    if body:
        raise ValidationError(sorted(body)[0], "unknown field (this request takes none)")
