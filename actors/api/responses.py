"""How every JSON answer of the API is written: the one encoder.

Compact (no space after ``:`` or ``,``), UTF-8 as is (not ``\\uXXXX``), one
trailing newline, ``Content-Type: application/json; charset=utf-8``.  Compact
because the original's clients read our answers too: its shell scripts find
fields with ``grep -o '"role":"[^"]*"'``, which a space after the colon defeats.
The trailing newline is what the original's encoder writes, so ``curl`` output
ends a line in a terminal.

Nothing in ``actors/`` calls ``web.json_response`` or ``json.dumps`` for an
answer: tests/actors/api/test_json_responses.py holds the code to that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/json"


def json_bytes(value: Any) -> bytes:
    """``value`` as the API writes it: compact JSON, UTF-8, a newline at the end."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An answer whose body is ``value`` in the API's JSON (see :func:`json_bytes`)."""
    return web.Response(
        body=json_bytes(value),
        status=status,
        headers=headers,
        content_type=CONTENT_TYPE,
        charset="utf-8",
    )


def compact(body: bytes) -> bytes:
    """A JSON body (another node's answer) rewritten in the API's form; a body that is
    not JSON is returned unchanged."""
    try:
        return json_bytes(json.loads(body))
    except (ValueError, RecursionError):  # not JSON (or not JSON we would write)
        return body
