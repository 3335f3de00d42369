"""The per-client rate limit of the API (``api.rate_limit``, ``api.rate_burst``).

A client is its token's name when tokens are configured (set by the auth
middleware, which runs first), else its address.  Behind a load balancer every
client has the balancer's address: use tokens, or limit at the balancer.

Health probes, preflights and writes a follower forwards to the leader are not
counted: a forwarded write was counted where the client sent it, and counting it
again would make every follower one client of the leader.  A follower proves it
forwarded with :data:`FORWARD_PROOF_HEADER`, an HMAC of its node id under the
cluster secret, so a client cannot claim to be a follower.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from actors.api.auth import CLIENT, OPEN_PATHS
from scheduled_db.errors import RequestError
from scheduled_db.policy.ratelimit import RateLimiter

FORWARDED_HEADER = "X-Scheduled-DB-Forwarded-By"
FORWARD_PROOF_HEADER = "X-Scheduled-DB-Forward-Proof"


def forward_proof(secret: str, node_id: str) -> str:
    """What a node sends in :data:`FORWARD_PROOF_HEADER` with the writes it forwards."""
    return hmac.new(
        secret.encode(), b"forwarded-by:" + node_id.encode(), hashlib.sha256
    ).hexdigest()


def is_forwarded(request: web.Request, secret: str | None) -> bool:
    """Whether a member of this cluster forwarded ``request`` (checked, not trusted)."""
    node_id = request.headers.get(FORWARDED_HEADER)
    proof = request.headers.get(FORWARD_PROOF_HEADER)
    if not secret or node_id is None or proof is None:
        return False
    return hmac.compare_digest(proof.encode(), forward_proof(secret, node_id).encode())


def client_of(request: web.Request) -> str:
    name = request.get(CLIENT)
    return f"token:{name}" if name is not None else f"address:{request.remote}"


def rate_limit_middleware(
    limiter: RateLimiter, secret: str | None, clock: Callable[[], float] = time.monotonic
) -> object:
    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        exempt = request.method == "OPTIONS" or request.path in OPEN_PATHS
        if not exempt and not is_forwarded(request, secret):
            wait = limiter.admit(client_of(request), clock())
            if wait is not None:
                retry = limiter.retry_after_s(wait)
                message = (
                    f"Too many requests: at most {limiter.rate:g} per second; retry in {retry} s"
                )
                raise RequestError(
                    429, "rate_limited", message, headers={"Retry-After": str(retry)}
                )
        return await handler(request)

    return limit
