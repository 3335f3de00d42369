"""``GET /openapi.json``: the API's OpenAPI description, as JSON.

The one source is ``actors/api/openapi.yaml``, shipped inside this package as package
data (``docs/openapi.yaml`` is a link to it), so an installed node and a Docker
image carry it.  It is parsed once per process, when the first app is built: a
broken file stops start-up instead of failing requests later.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from actors.api.responses import CONTENT_TYPE, json_bytes

SPEC_RESOURCE = "openapi.yaml"
PATH = "/openapi.json"


@functools.cache
def openapi_json() -> bytes:
    """The description as compact JSON bytes, read and converted once."""
    text = resources.files("actors.api").joinpath(SPEC_RESOURCE).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster
    document = yaml.load(text, Loader=loader)  # a safe loader either way
    if not isinstance(document, dict) or "openapi" not in document:
        raise ValueError(f"{SPEC_RESOURCE} is not an OpenAPI document")
    return json_bytes(document)  # strict JSON (no NaN), as every answer


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the description (callers may change it freely)."""
    document: dict[str, Any] = json.loads(openapi_json())
    return document


async def serve_openapi(request: web.Request) -> web.Response:
    return web.Response(body=openapi_json(), content_type=CONTENT_TYPE, charset="utf-8")
