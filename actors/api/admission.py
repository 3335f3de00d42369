"""Admission control of the API: past its bound, a request is refused on arrival.

Writes and reads are counted apart, each from the moment the middleware sees
the request to the moment its answer is ready (:mod:`scheduled_db.policy.admission`
holds the policy):

- **writes** (POST, PUT, PATCH, DELETE on the jobs routes) are held to
  ``api.max_in_flight``, and below that to the limit that keeps their mean
  latency near ``api.write_latency_target``.  A write a follower forwards to the
  leader counts on both: on the follower for as long as it waits for the
  leader's answer, on the leader as any write.  A follower passes the leader's
  503 ``overloaded`` back as it is (:mod:`actors.api.forward` retries only
  refusals that say no leader took the write);
- **reads** (GET, HEAD) are held to ``api.max_reads_in_flight`` alone: a read is
  one hop to the local store, with no fsync and no quorum behind it (but for
  ``consistent=true``), so a count bounds the memory and the queue it can build;
- never counted: the probes and scrapes (``/health``, ``/livez``, ``/ready``,
  ``/metrics``, ``/openapi.json``: an overloaded node must still say how it is), CORS
  preflights, and membership changes (rare, made by an operator, one at a time
  by Raft's own rule; an operator removing a sick node must not be shed).

A refused request is answered 503 ``overloaded`` with ``Retry-After`` before its
body is read and before anything is proposed through Raft: refused means not
made.  The middleware runs after authentication and the per-client rate limit
(a client over its own rate hears 429, the more useful answer) and before
forwarding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from actors.api.auth import ADMIN_PATHS, OPEN_PATHS
from actors.runtime.metrics import ApiMetrics
from scheduled_db.config.model import ApiConfig
from scheduled_db.errors import Overloaded
from scheduled_db.policy.admission import Admission

_READS = frozenset({"GET", "HEAD"})


class Traffic(Enum):
    """The kinds of request counted apart."""

    READ = "read"
    WRITE = "write"


def traffic_of(request: web.Request) -> Traffic | None:
    """What ``request`` counts as; None when it is never refused for load."""
    if request.method == "OPTIONS" or request.path in OPEN_PATHS:
        return None
    if request.path.startswith(ADMIN_PATHS):  # an operator's: never shed
        return None
    return Traffic.READ if request.method in _READS else Traffic.WRITE


class SharedCount(Protocol):
    """A count several processes share (``multiprocessing.Value``)."""

    value: int

    def get_lock(self) -> Any: ...


@dataclass(frozen=True)
class NodeWide:
    """The bounds of a node whose API is served by several worker processes: each
    worker's gates adapt on their own, and these counts, in shared memory, hold the
    sum of all the workers' requests in flight to ``api.max_in_flight`` and
    ``api.max_reads_in_flight`` (new connections are not shared out evenly, so an
    even split of the bound would refuse requests a single process would take)."""

    counts: dict[Traffic, SharedCount]
    caps: dict[Traffic, int]
    workers: int

    def take(self, traffic: Traffic) -> bool:
        count = self.counts[traffic]
        with count.get_lock():
            if count.value >= self.caps[traffic]:
                return False
            count.value += 1
            return True

    def give_back(self, traffic: Traffic) -> None:
        count = self.counts[traffic]
        with count.get_lock():
            count.value -= 1


def admissions(api: ApiConfig, now: float) -> dict[Traffic, Admission]:
    """The admission state of one node, from its ``api`` section."""
    return {
        Traffic.WRITE: Admission(api.max_in_flight, api.write_latency_target_ms / 1000, now),
        Traffic.READ: Admission(api.max_reads_in_flight, None, now),
    }


def admission_middleware(
    gates: dict[Traffic, Admission],
    metrics: ApiMetrics,
    clock: Callable[[], float] = time.monotonic,
    node_wide: NodeWide | None = None,
) -> object:
    """The middleware over ``gates`` (see :func:`admissions`), and in an API worker
    over ``node_wide`` too; it keeps the shed, in-flight and limit metrics of each
    kind (a worker's limit gauge is its share, so the workers' gauges sum to the
    node's limit)."""
    shed = {t: metrics.requests_shed.labels(t.value) for t in gates}
    in_flight = {t: metrics.requests_in_flight.labels(t.value) for t in gates}
    limits = {t: metrics.admission_limit.labels(t.value) for t in gates}
    share = 1 if node_wide is None else node_wide.workers

    def limit_of(traffic: Traffic) -> int:
        if node_wide is None:
            return gates[traffic].limit
        return min(gates[traffic].limit, node_wide.caps[traffic])

    for traffic in gates:
        limits[traffic].set(limit_of(traffic) / share)

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        traffic = traffic_of(request)
        if traffic is None:
            return await handler(request)
        gate = gates[traffic]
        started = clock()
        if not gate.admit(started):
            shed[traffic].inc()
            raise Overloaded(traffic.value, limit_of(traffic))
        if node_wide is not None and not node_wide.take(traffic):
            gate.withdraw()
            shed[traffic].inc()
            raise Overloaded(traffic.value, limit_of(traffic))
        in_flight[traffic].set(gate.in_flight)
        try:
            return await handler(request)
        finally:
            if node_wide is not None:
                node_wide.give_back(traffic)
            now = clock()
            gate.release(now - started, now)
            in_flight[traffic].set(gate.in_flight)
            limits[traffic].set(limit_of(traffic) / share)

    return admit
