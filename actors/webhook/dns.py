"""Name resolution for webhooks: the system resolver, behind a small answer cache.

Both users of it, the delivery client (:mod:`actors.webhook.client`) and the check of
a new job's URL (:mod:`actors.webhook.guard`), take a :data:`Resolver`, so tests
hand them a resolver of their own (one that answers differently the second time,
to play DNS rebinding) instead of the system's.

The cache holds answers, never verdicts: whoever dials an address checks that
address against the SSRF policy at that moment (see :mod:`scheduled_db.policy.ssrf`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``resolve(host, port)``: the host's addresses as text, in the resolver's order;
raises ``socket.gaierror`` (an ``OSError``) when the name does not resolve."""

MAX_ENTRIES = 4096  # bounded: a stream of one-off hosts cannot grow the cache


async def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer (``getaddrinfo``, in the loop's executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CachedResolver:
    """Answers of ``resolve`` kept for ``ttl_s`` (0: not kept); failures are not kept.

    Use it on one event loop."""

    def __init__(self, resolve: Resolver = system_resolve, ttl_s: float = 30.0) -> None:
        self._resolve = resolve
        self._ttl_s = ttl_s
        self._answers: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        key = (host, port)
        now = time.monotonic()
        hit = self._answers.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        addresses = await self._resolve(host, port)
        if self._ttl_s > 0:
            if len(self._answers) >= MAX_ENTRIES:
                self._answers.clear()
            self._answers[key] = (now + self._ttl_s, addresses)
        return addresses
