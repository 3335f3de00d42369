"""Writes sent to a follower are forwarded to the leader; elections are waited out.

The middleware sits inside the error renderer, next to the handlers, and only in a
node whose cluster has other members.  A write (any method but GET, HEAD and
OPTIONS) runs its handler as usual; when Raft refuses it because this node is
not the leader:

- the leader known and reachable: the request goes to the leader's HTTP address
  (from the cluster's member list, never from the client) with the same method,
  path, query, body and content type, and the client gets the leader's status
  and body, as the original's proxy did;
- no leader known (an election), or the leader unreachable: it waits, polling
  every :data:`POLL_S`, up to ``wait_s``; then the refusal stands and the client
  gets 503 ``No leader available`` with ``Retry-After``.

A forwarded request carries :data:`FORWARDED_HEADER`; a node that gets one and is
not the leader either (leadership moved meanwhile) answers 503 rather than
forward again, so a request never travels in circles.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from actors.backend import Backend, WriteRefused

log = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Scheduled-DB-Forwarded-By"
POLL_S = 0.05  # how often a write waiting for an election looks again
FORWARD_TIMEOUT_S = 15.0  # one forwarded request, start to end
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_PASSED_ON = ("Content-Type", "Authorization")  # request headers the leader needs
_PASSED_BACK = ("Content-Type", "Retry-After", "Location")  # and response headers


class Forwarder:
    """The middleware (:meth:`middleware`) and the client session it forwards with;
    ``wait_s`` bounds the wait for a leader (see the module docstring)."""

    def __init__(self, backend: Backend, wait_s: float) -> None:
        self.backend = backend
        self.wait_s = wait_s
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
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
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
            except WriteRefused as exc:
                if exc.reason not in ("not_leader", "dropped"):
                    raise
                if request.headers.get(FORWARDED_HEADER) is None:
                    reply = await _to_leader(self.backend, self._client(), request)
                    if reply is not None:
                        return reply
                if loop.time() + POLL_S > deadline:
                    raise
            await asyncio.sleep(POLL_S)  # an election in progress: look again shortly


async def _to_leader(
    backend: Backend, session: aiohttp.ClientSession, request: web.Request
) -> web.Response | None:
    """The leader's answer to ``request``, or None if there is no leader to ask."""
    status = await backend.status()
    if not status.leader_id or status.leader_id == status.node_id:
        return None
    address = status.leader_http_address
    if not address:
        return None
    headers = {h: request.headers[h] for h in _PASSED_ON if h in request.headers}
    headers[FORWARDED_HEADER] = status.node_id
    url = f"http://{address}{request.path_qs}"
    body = await request.read()
    try:
        async with session.request(
            request.method, url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            if resp.status == 503:
                return None  # the leader is not one any more: wait for the next
            payload = await resp.read()
            passed = {h: resp.headers[h] for h in _PASSED_BACK if h in resp.headers}
            return web.Response(status=resp.status, body=payload, headers=passed)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        # The leader went away mid-request, or is not reachable from here: wait for
        # the next one.  A write the old leader received may have been applied;
        # its own outcome is lost here, like any write cut short (retries are safe).
        who = status.leader_id
        log.info("forwarding %s %s to %s failed: %s", request.method, request.path, who, exc)
        return None
