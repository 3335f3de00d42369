"""Writes sent to a follower are forwarded to the leader; elections are waited out.

The middleware sits inside the error renderer, next to the handlers, and only in a
node whose cluster has other members.  A write (any method but GET, HEAD and
OPTIONS) runs its handler as usual; when Raft refuses it because this node is
not the leader:

- the leader known and reachable: the request goes to the leader's HTTP address
  (from the cluster's member list, never from the client) with the same method,
  path, query, body and content type, and the client gets the leader's status
  and body (a JSON body rewritten compact, as this node writes its own: a leader
  of an older version may have spaced it), as the original's proxy did;
- no leader known (an election), the leader unreachable, or the leader refusing
  because it is not the leader any more: it waits, polling every :data:`POLL_S`,
  up to ``wait_s``; then the refusal stands and the client gets 503 ``No leader
  available`` with ``Retry-After``.

A write is sent again only when it certainly was not made: the connection to the
leader was never established, or the leader answered 503 ``not_leader`` /
``no_leader`` (refused before proposing).  If the connection broke after the
request went out, or the leader answered ``unknown_outcome``, the write may have
been made, and sending it again could apply it twice (a DELETE would then answer
404 for its own deletion): the client gets 503 ``unknown_outcome`` and decides.
A leader's 503 ``overloaded`` (admission control, :mod:`actors.api.admission`) was
not made either, but it is passed back as it is, ``Retry-After`` included: asking
again at once would only add to the load the leader refused.
aiohttp's own silent resend of an idempotent request is switched off for that
reason.  Found by the linearizability test (tests/integration/test_cluster_linearizable.py).

A forwarded request carries :data:`FORWARDED_HEADER`; a node that gets one and is
not the leader either (leadership moved meanwhile) answers 503 rather than
forward again, so a request never travels in circles.

With ``tls`` (the API serves HTTPS: ``api.tls_cert``) the leader is reached over
HTTPS and its certificate checked with that context, host name included; a
certificate that does not pass is a connection never made (logged, then 503).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from actors.api.backend import Backend
from actors.api.body import read_body
from actors.api.errors import render_error
from actors.api.limits import FORWARD_PROOF_HEADER, FORWARDED_HEADER, forward_proof
from actors.api.responses import CONTENT_TYPE, compact
from actors.runtime import tracing
from scheduled_db.errors import ProposalDropped, UnknownOutcome, safe_text

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a write waiting for an election looks again
FORWARD_TIMEOUT_S = 15.0  # one forwarded request, start to end
CONNECT_TIMEOUT_S = 2.0  # a connection not made in this long: nothing was sent
_UNMADE_CODES = frozenset({"not_leader", "no_leader"})  # refusals before proposing
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_PASSED_ON = ("Content-Type", "Authorization")  # request headers the leader needs
_PASSED_BACK = ("Content-Type", "Retry-After", "Location")  # and response headers


class Forwarder:
    """The middleware (:meth:`middleware`) and the client session it forwards with;
    ``wait_s`` bounds the wait for a leader; ``tls`` makes it HTTPS (see the module
    docstring).  With the cluster ``secret``, forwarded writes carry a proof that a
    member sent them (the leader does not count them against the client's rate
    limit again)."""

    def __init__(
        self,
        backend: Backend,
        wait_s: float,
        secret: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.backend = backend
        self.wait_s = wait_s
        self.secret = secret
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use: it belongs to the server's loop
            session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
            # aiohttp resends an idempotent request (DELETE) once when the connection
            # drops before the answer; there is no public switch.  A forwarded write
            # must never be sent twice (see the module docstring); a test holds this.
            session._retry_connection = False
            self._session = session
        return self._session

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in _READS:
            return await handler(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while True:
            try:
                return await handler(request)
            except ProposalDropped:  # refused before proposing (NotLeader too): not made
                if request.headers.get(FORWARDED_HEADER) is None:
                    reply = await _to_leader(
                        self.backend, self._client(), request, self.secret, self.tls
                    )
                    if reply is not None:
                        return reply
                if loop.time() + POLL_S > deadline:
                    raise
            await asyncio.sleep(POLL_S)  # an election in progress: look again shortly


async def _to_leader(
    backend: Backend,
    session: aiohttp.ClientSession,
    request: web.Request,
    secret: str | None,
    tls: ssl.SSLContext | None,
) -> web.Response | None:
    """The leader's answer to ``request``; None if the write certainly was not made
    (no leader to ask, no connection to it, or it refused as no leader), so it may
    be tried again."""
    status = await backend.status()
    if not status.leader_id or status.leader_id == status.node_id:
        return None
    address = status.leader_http_address
    if not address:
        return None
    headers = {h: request.headers[h] for h in _PASSED_ON if h in request.headers}
    headers[FORWARDED_HEADER] = status.node_id
    tracing.inject(headers)  # with tracing on: the leader's span joins this request's trace
    if secret:
        headers[FORWARD_PROOF_HEADER] = forward_proof(secret, status.node_id)
    scheme = "http" if tls is None else "https"
    # path_qs is the path still percent-encoded (as the client sent it, normalised):
    # an id such as "job 1", "a%b" or "año" reaches the leader as the same segment.
    url = f"{scheme}://{address}{request.path_qs}"
    body = await read_body(request)
    who = status.leader_id
    try:
        async with session.request(
            request.method,
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            ssl=True if tls is None else tls,
        ) as resp:
            payload = await resp.read()
            passed = {h: resp.headers[h] for h in _PASSED_BACK if h in resp.headers}
            if resp.content_type == CONTENT_TYPE:  # in our form, whatever the leader's version
                payload = compact(payload)
            answer = web.Response(status=resp.status, body=payload, headers=passed)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        # A certificate that does not pass is a misconfiguration, not a passing outage.
        level = logging.WARNING if isinstance(exc, aiohttp.ClientSSLError) else logging.INFO
        where = (request.method, safe_text(request.path), who, exc)
        log.log(level, "forwarding %s %s: cannot reach %s: %s", *where)
        return None  # nothing was sent
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.info(
            "forwarding %s %s to %s broke off: %r; outcome unknown",
            request.method, safe_text(request.path), who, exc,
        )  # fmt: skip
        return render_error(UnknownOutcome(f"forwarding to {who} broke off"))
    if answer.status == 503 and _refused_unmade(payload):
        return None  # the leader is not one any more: wait for the next
    return answer


def _refused_unmade(payload: bytes) -> bool:
    """Whether a 503 body says the write was refused before it was proposed."""
    try:
        body = json.loads(payload)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") in _UNMADE_CODES
