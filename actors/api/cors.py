"""Cross-origin requests: which browser origins may read, and which may write.

``http.cors_origins`` lists the origins allowed; ``*`` allows any origin, but for
reads (GET, HEAD) only.  Writes from a browser page of another origin are
allowed only for origins listed by name: the API has no authentication yet, and
an empty-bodied ``POST /jobs/{id}/cancel`` is a "simple" request a browser sends
without a preflight, so any web page could otherwise cancel jobs on a reachable
node.  Such writes are refused with 403 before they reach a handler.

Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered
here with 204; a plain ``OPTIONS`` on a known route answers 204 with ``Allow``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from actors.api.errors import error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PREFLIGHT_MAX_AGE_S = "600"
ALLOWED_HEADERS = "Content-Type"
EXPOSED_HEADERS = "Retry-After"


class CorsPolicy:
    """Answers "may ``origin`` make a cross-origin ``method`` request?"."""

    def __init__(self, origins: Iterable[str]) -> None:
        listed = tuple(origins)
        self.any_reader = "*" in listed
        self.named = frozenset(o.rstrip("/").lower() for o in listed if o != "*")

    def allow_origin(self, origin: str, method: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value to send, or None to refuse."""
        if origin.rstrip("/").lower() in self.named:
            return origin
        if self.any_reader and method in SAFE_METHODS:
            return "*"
        return None

    def allowed_methods(self, origin: str, methods: Iterable[str]) -> list[str]:
        return sorted(m for m in methods if self.allow_origin(origin, m) is not None)


def _same_origin(request: web.Request, origin: str) -> bool:
    _, sep, authority = origin.partition("://")
    return bool(sep) and authority.rstrip("/").lower() == request.host.lower()


def _foreign_write(request: web.Request, policy: CorsPolicy, origin: str) -> bool:
    """A write from a page of another origin that the policy does not let write."""
    if request.method in SAFE_METHODS or _same_origin(request, origin):
        return False
    return policy.allow_origin(origin, request.method) is None


def _route_methods(request: web.Request) -> set[str] | None:
    """The methods the matched path allows, or None for an unknown path.  A fixed
    path is answered for itself (``/jobs/batch``: POST), as OpenAPI reads paths, not
    with the methods of a template it also fits (``/jobs/{id}``: the job "batch")."""
    fixed = {
        route.method
        for resource in request.app.router.resources()
        if isinstance(resource, web.PlainResource) and resource.canonical == request.path
        for route in resource
    }
    if fixed:
        return fixed - {"*"}
    exc = request.match_info.http_exception
    if exc is None:
        return {request.method}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return set(exc.allowed_methods)
    return None


def _options_response(request: web.Request, policy: CorsPolicy) -> web.StreamResponse | None:
    methods = _route_methods(request)
    if methods is None:
        return None  # unknown route: the 404 path answers it
    methods |= {"OPTIONS"}
    origin = request.headers.get("Origin")
    wanted = request.headers.get("Access-Control-Request-Method")
    headers = {"Allow": ", ".join(sorted(methods))}
    if origin and wanted:
        if wanted.upper() not in methods or policy.allow_origin(origin, wanted.upper()) is None:
            return error_response(403, "cors_refused", "Cross-origin request not allowed")
        allow = policy.allow_origin(origin, wanted.upper())
        assert allow is not None
        headers.update(
            {
                "Access-Control-Allow-Origin": allow,
                "Access-Control-Allow-Methods": ", ".join(policy.allowed_methods(origin, methods)),
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_S,
                "Vary": "Origin",
            }
        )
    return web.Response(status=204, headers=headers)


def cors_middleware(policy: CorsPolicy) -> Any:
    """Middleware placed outside the error renderer, so error bodies get CORS headers
    too; its own refusals are therefore rendered here, not raised."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            preflight = _options_response(request, policy)
            if preflight is not None:
                return preflight
        elif origin and _foreign_write(request, policy, origin):
            return error_response(403, "cors_refused", "Cross-origin writes are not allowed")
        response = await handler(request)
        if origin:
            allow = policy.allow_origin(origin, request.method)
            if allow is not None:
                response.headers["Access-Control-Allow-Origin"] = allow
                response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                response.headers.add("Vary", "Origin")
        return response

    return cors
