"""API authentication: bearer tokens with a role each (see :mod:`scheduled_db.policy.auth`).

With no token configured the API is open, as a single node on a laptop expects.
With tokens, every request needs ``Authorization: Bearer <token>``:

- reads (GET, HEAD) need ``read``; other writes need ``write``;
- membership changes (``/join``, ``/leave``, ``/cluster/members/...``) need
  ``admin``, or the cluster secret itself (what nodes and operators of the
  cluster already hold), or ``cluster.join_token`` (the original's ``AUTH_TOKEN``);
- ``/health``, ``/livez``, ``/ready``, ``/metrics`` and ``/openapi.json`` stay open unless
  ``api.open_health`` is false (probes, scrapers and API tools rarely carry tokens;
  the description holds nothing the source does not, and false means "nothing
  answers without a token", the description included); CORS preflights are open;
- the web console's files (``/ui/``, :mod:`actors.api.ui`) are always open: they hold no
  data, and a browser cannot send a bearer token with a page navigation.  The console
  asks for a token and sends it with each API request it makes.

401 without a valid token (with ``WWW-Authenticate: Bearer``), 403 with one whose
role is too low; both as JSON errors, never echoing the token.  The token is never
logged: the access log has no headers.  A write forwarded to the leader carries
the client's ``Authorization`` on, so the leader checks it again.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from actors.api.ui import is_console_path
from scheduled_db.errors import RequestError
from scheduled_db.policy.auth import ApiToken, Role, find_token

ROLE = web.RequestKey("role", Role)  # where the authenticated role is kept on a request
CLIENT = web.RequestKey("client", str)  # and the name of the token that authenticated it
OPEN_PATHS = frozenset({"/health", "/livez", "/ready", "/metrics", "/openapi.json"})
ADMIN_PATHS = ("/join", "/leave", "/cluster/members/", "/admin/")
_READS = frozenset({"GET", "HEAD"})
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def needed_role(request: web.Request) -> Role:
    if request.path.startswith(ADMIN_PATHS):
        return Role.ADMIN
    return Role.READ if request.method in _READS else Role.WRITE


def bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def auth_middleware(
    tokens: Sequence[ApiToken], open_health: bool, membership: Sequence[str]
) -> Any:
    """``membership`` are the bearer values that may change the membership besides an
    admin token: the cluster secret and the join token, those that are set."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not tokens or request.method == "OPTIONS" or is_console_path(request.path):
            return await handler(request)
        if open_health and request.path in OPEN_PATHS:
            return await handler(request)
        needed = needed_role(request)
        presented = bearer(request)
        if presented is None:
            raise RequestError(
                401, "unauthorized", "A bearer token is required", headers=_CHALLENGE
            )
        if needed is Role.ADMIN and is_membership_secret(presented, membership):
            request[ROLE] = Role.ADMIN
            request[CLIENT] = "cluster-secret"
            return await handler(request)
        token = find_token(tokens, presented)
        if token is None:
            raise RequestError(401, "unauthorized", "The token is not valid", headers=_CHALLENGE)
        if token.role < needed:
            message = f"Token {token.name} has role {token.role.label}; this needs {needed.label}"
            raise RequestError(403, "forbidden", message)
        request[ROLE] = token.role
        request[CLIENT] = token.name
        return await handler(request)

    return authenticate


def require_secret(request: web.Request, secrets: Sequence[str], needs: str) -> None:
    """Refuse (401) a request whose bearer token is none of ``secrets``; ``needs``
    says what the request needs, in the error's message."""
    presented = bearer(request)
    if presented is None or not is_membership_secret(presented, secrets):
        raise RequestError(401, "unauthorized", needs, headers=_CHALLENGE)


def is_membership_secret(presented: str, membership: Sequence[str]) -> bool:
    """Whether ``presented`` is one of ``membership`` (each compared in constant time,
    all of them every time)."""
    matches = [hmac.compare_digest(presented.encode(), value.encode()) for value in membership]
    return any(matches)
