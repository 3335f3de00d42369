"""How every JSON answer of the API is written: the one encoder.

Compact (no space after ``:`` or ``,``), UTF-8 as is (not ``\\uXXXX``), one
trailing newline, ``Content-Type: application/json; charset=utf-8``.  Compact
because the original's clients read our answers too: its shell scripts find
fields with ``grep -o '"role":"[^"]*"'``, which a space after the colon defeats.
The trailing newline is what the original's encoder writes, so ``curl`` output
ends a line in a terminal.

Written by orjson, about ten times as fast as the standard library's encoder: 3 ms
of the GIL less for a batch answer of 1,000 jobs (docs/benchmarks-history.md,
issue 20).  For what the API answers (str keys, finite floats: the body parser
refuses NaN and the infinities, integers within 64 bits) it writes the same bytes,
except that a float's exponent has no ``+`` or leading zero (``1e16``, ``1e-7``
for ``1e+16``, ``1e-07``): the same number to any JSON reader.  Anything orjson
refuses (an integer of more than 64 bits in a payload) is
written by the standard library, so what an answer can hold does not change.

Nothing in ``actors/`` calls ``web.json_response`` or ``json.dumps`` for an
answer: tests/actors/api/test_json_responses.py holds the code to that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

CONTENT_TYPE = "application/json"


def json_bytes(value: Any) -> bytes:
    """``value`` as the API writes it: compact JSON, UTF-8, a newline at the end."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError: a value orjson does not write
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
