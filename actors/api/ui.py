"""``GET /ui/...``: the web console, static files shipped in this package.

The console (``actors/api/console/``: HTML, CSS and ES modules, no build step) is a
client of the public REST API like any other: it holds no data, and every request it
makes is a documented operation, sent with the token the user typed.  The HTTP
actor serves it because every node has one, so the console works on any node and
behind the load balancer, offline, without a second process.

Decisions:

- Only the files of the folder are served, found by name in a table built once
  (no path is joined from the request, so ``..`` has nothing to reach).
- The pages are open even when API tokens are configured, as ``/openapi.json`` is: a
  browser cannot put a bearer token on a page navigation, and the files are the
  same as in the package.  The data behind them needs the token.
- A strict Content-Security-Policy on every answer: scripts, styles and requests
  from this origin only, no inline script or style, no framing.
"""

from __future__ import annotations

import functools
import mimetypes
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

PREFIX = "/ui/"
FOLDER = "console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


@functools.cache
def console_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the console by its path under ``/ui/`` (``""`` is the index):
    its bytes and media type, read once per process."""
    found: dict[str, tuple[bytes, str]] = {}
    root = resources.files("actors.api").joinpath(FOLDER)

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
            elif not entry.name.startswith("."):
                suffix = "." + entry.name.rpartition(".")[2]
                kind = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
                found[name] = (entry.read_bytes(), kind or "application/octet-stream")

    walk(root, "")
    found[""] = found["index.html"]
    return found


def is_console_path(path: str) -> bool:
    return path == PREFIX.rstrip("/") or path.startswith(PREFIX)


async def serve_console(request: web.Request) -> web.Response:
    found = console_files().get(request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    body, kind = found
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # Revalidated every time: a node upgraded in place serves its new console at once.
        "Cache-Control": "no-cache",
    }
    charset = None if kind.startswith("image/") and kind != "image/svg+xml" else "utf-8"
    return web.Response(body=body, content_type=kind, charset=charset, headers=headers)


async def redirect_to_console(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(PREFIX)


def console_routes() -> list[web.RouteDef]:
    """``/ui`` redirects to ``/ui/``; ``/ui/{path}`` serves the console's files."""
    return [
        web.get(PREFIX.rstrip("/"), redirect_to_console),
        web.get(PREFIX + "{path:.*}", serve_console),
    ]
