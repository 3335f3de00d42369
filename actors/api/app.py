"""The REST API of a node as an aiohttp application, over a :class:`Backend`.

:func:`build_app` wires the routes (jobs in :mod:`actors.api.jobs`, the node's
own routes here) and the middlewares, outermost first:

0. with tracing on (:mod:`actors.runtime.tracing`), a server span per request,
   named by its route (``POST /jobs``), the child of the client's ``traceparent``;
1. request metrics (sees the final status of every request, errors included);
2. CORS (:mod:`actors.api.cors`; error bodies get CORS headers too);
3. the error renderer (:mod:`actors.api.errors`): every failure becomes a JSON
   ``{"error": ...}`` body, an unexpected one a bare 500;
4. authentication (:mod:`actors.api.auth`), then the optional per-client rate
   limit (:mod:`actors.api.limits`);
5. admission control (:mod:`actors.api.admission`): past the bound on requests in
   flight, 503 ``overloaded`` at once;
6. in a node with peers, forwarding (:mod:`actors.api.forward`): a write refused
   because this node is not the leader goes to the leader, or waits out an election.

:func:`build_metrics_app` is the separate metrics listener: ``GET /metrics`` only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from actors.api.admin import AdminRoutes
from actors.api.admission import NodeWide, admission_middleware, admissions
from actors.api.auth import CLIENT, ROLE, auth_middleware, require_secret
from actors.api.backend import Backend
from actors.api.body import BODY_TIMEOUT_S, read_json_object
from actors.api.cors import CorsPolicy, cors_middleware
from actors.api.errors import error_middleware
from actors.api.forward import Forwarder
from actors.api.jobs import READ_TIMEOUT_S, JobRoutes
from actors.api.limits import rate_limit_middleware
from actors.api.openapi import openapi_json, serve_openapi
from actors.api.protocol import render_json_errors
from actors.api.responses import json_response
from actors.api.ui import console_routes
from actors.api.views import Limits, cluster_view, health_view, ready_view
from actors.runtime import tracing
from actors.runtime.metrics import ApiMetrics
from actors.webhook.guard import WebhookGuard
from scheduled_db.config.kinds import NODE_ID, parse_address
from scheduled_db.config.loading import NodeConfig
from scheduled_db.errors import RequestError, ValidationError
from scheduled_db.policy.auth import Role
from scheduled_db.policy.ratelimit import RateLimiter
from scheduled_db.state.reads import GetCounters, GetDigest
from scheduled_db.state.records import Counters

log = logging.getLogger(__name__)

# Makes the body of GET /metrics (the Prometheus text format).
RenderMetrics = Callable[[], Awaitable[bytes]]
SCRAPE_TIMEOUT_S = 2.0  # a scrape answers with the last values rather than hang
_JOIN_FIELDS = ("node_id", "address", "http_address")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def system_memory_bytes() -> int:
    """Physical memory of the host (0 when the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def node_limits(config: NodeConfig) -> Limits:
    """The limits in force, measured once (``queue.memory_percent`` is of host memory)."""
    return Limits(
        job_limit=config.queue.job_limit,
        memory_limit_bytes=config.queue.memory_budget_bytes(system_memory_bytes()),
        failure_threshold=config.health.failure_threshold,
    )


def _route_label(request: web.Request) -> str:
    # The route template, never the raw path: one series per job id would not end.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def tracing_middleware() -> Any:
    """A server span around each request (install only while tracing is on)."""

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route_label(request)
        method = request.method if request.method in _METHODS else "OTHER"
        name = method if route == "unmatched" else f"{method} {route}"
        attributes = {"http.request.method": method, "url.path": request.path}
        if route != "unmatched":
            attributes["http.route"] = route
        raised: web.HTTPException | None = None  # a redirect: not an error of the span
        with tracing.server_span(name, request.headers, attributes) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # the error renderer answers every 4xx/5xx
                raised = exc
            if span is not None:
                status = raised.status if raised is not None else response.status
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    tracing.set_error(span, f"HTTP {status}")
        if raised is not None:
            raise raised
        return response

    return traced


def metrics_middleware(metrics: ApiMetrics) -> Any:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            method = request.method if request.method in _METHODS else "OTHER"
            elapsed = time.perf_counter() - started
            metrics.observe_request(_route_label(request), method, status, elapsed)

    return observe


class NodeRoutes:
    """Handlers of the node's own routes: health, liveness, readiness, cluster view,
    join, metrics, and the API's description (``/openapi.json``)."""

    def __init__(
        self,
        backend: Backend,
        metrics: ApiMetrics,
        limits: Limits,
        max_body_bytes: int,
        membership: tuple[str, ...] = (),
        render: RenderMetrics | None = None,
    ) -> None:
        self._backend = backend
        self._metrics = metrics
        self._limits = limits
        self._max_body = max_body_bytes
        self._membership = membership
        self._render = render if render is not None else self.render_metrics

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/health", self.health),
            web.get("/livez", self.livez),
            web.get("/ready", self.ready),
            web.get("/debug/cluster", self.cluster),
            web.get("/debug/digest", self.digest),
            web.get("/auth/whoami", self.whoami),
            web.post("/join", self.join),
            web.post("/leave", self.leave),
            web.delete("/cluster/members/{id}", self.remove_member),
            web.get("/metrics", self.metrics),
            web.get("/openapi.json", serve_openapi),
        ]

    def _authorize_membership(self, request: web.Request) -> None:
        """Membership changes need ``Authorization: Bearer <cluster secret>`` (or the
        join token, the original's ``AUTH_TOKEN``), or an admin token (checked by
        :mod:`actors.api.auth`)."""
        if request.get(ROLE) is Role.ADMIN:
            return
        if not self._membership:
            raise RequestError(
                403, "forbidden", "Membership changes need cluster.secret or cluster.join_token set"
            )
        needs = "Membership changes need Authorization: Bearer <cluster secret or join token>"
        require_secret(request, self._membership, needs)

    async def _counters(self, timeout: float = READ_TIMEOUT_S) -> Counters:
        counters: Counters = await self._backend.read(GetCounters(), timeout=timeout)
        return counters

    async def health(self, request: web.Request) -> web.Response:
        # 503 when unhealthy (no leader known, or the original's failure rule), as the
        # original: monitors and load balancers act on it.  A liveness probe must not
        # (restarting a node does not bring back a quorum): that is /livez.
        status = await self._backend.status()
        counters = await self._counters()
        view = health_view(status, counters, self._limits, counters.last_executed_ms)
        return json_response(view, status=503 if view["status"] == "unhealthy" else 200)

    async def livez(self, request: web.Request) -> web.Response:
        """For liveness probes: 200 while this process serves HTTP.  It asks no actor:
        a node without a quorum, or busy, is alive, and restarting it helps nothing."""
        return json_response({"status": "ok", "node_id": self._backend.node_id})

    async def ready(self, request: web.Request) -> web.Response:
        # For a readiness probe: 503 keeps a node out of a load balancer until it
        # has joined and caught up, without restarting it (that is /livez's job).
        ok, body = ready_view(await self._backend.status())
        return json_response(body, status=200 if ok else 503)

    async def cluster(self, request: web.Request) -> web.Response:
        status = await self._backend.status()
        return json_response(cluster_view(status, await self._counters()))

    async def whoami(self, request: web.Request) -> web.Response:
        """The role (and token name) this request was authenticated with, so that a
        client (the web console) can offer what its token may do: with no tokens
        configured, every request is ``admin`` and ``tokens`` is false."""
        role = request.get(ROLE)
        return json_response(
            {
                "tokens": role is not None,
                "role": (role or Role.ADMIN).label,
                "name": request.get(CLIENT),
            }
        )

    async def digest(self, request: web.Request) -> web.Response:
        """A hash of this node's whole applied state (it includes the applied index):
        two replicas with equal digests hold equal state.  Reads every key."""
        value = await self._backend.read(GetDigest(), timeout=READ_TIMEOUT_S)
        return json_response({"node_id": self._backend.node_id, "digest": value})

    async def join(self, request: web.Request) -> web.Response:
        self._authorize_membership(request)
        body = await read_json_object(request, self._max_body, required=True)
        unknown = sorted(k for k in body if k not in _JOIN_FIELDS)
        if unknown:
            raise ValidationError(unknown[0], "unknown field")
        node_id = _join_value(body, "node_id", NODE_ID.parse)
        raft_address = str(_join_value(body, "address", parse_address))
        http = body.get("http_address")
        http_address = "" if http is None else str(_join_value(body, "http_address", parse_address))
        await self._backend.add_learner(node_id, raft_address, http_address)
        return json_response(
            {
                "node_id": node_id,
                "address": raft_address,
                "http_address": http_address or None,
                "suffrage": "learner",
            }
        )

    async def leave(self, request: web.Request) -> web.Response:
        """Remove ``node_id`` (default: this node) from the cluster."""
        self._authorize_membership(request)
        body = await read_json_object(request, self._max_body, required=False)
        unknown = sorted(k for k in body if k != "node_id")
        if unknown:
            raise ValidationError(unknown[0], "unknown field")
        node_id = self._backend.node_id
        if body.get("node_id") is not None:
            node_id = _join_value(body, "node_id", NODE_ID.parse)
        return await self._remove(node_id)

    async def remove_member(self, request: web.Request) -> web.Response:
        self._authorize_membership(request)
        try:
            node_id = str(NODE_ID.parse(request.match_info["id"]))
        except ValueError as exc:
            raise ValidationError("id", str(exc)) from None
        return await self._remove(node_id)

    async def _remove(self, node_id: str) -> web.Response:
        await self._backend.remove_member(node_id)
        return json_response({"node_id": node_id, "removed": True})

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self._render()
        return web.Response(body=body, headers={"Content-Type": self._metrics.content_type})

    async def render_metrics(self) -> bytes:
        """This process's metrics, the node's gauges refreshed first."""
        await self.refresh_metrics()
        return self._metrics.render()

    async def refresh_metrics(self) -> None:
        """Update the state gauges from the node; on a timeout keep the last values."""
        try:
            status = await asyncio.wait_for(self._backend.status(), SCRAPE_TIMEOUT_S)
            counters = await self._counters(SCRAPE_TIMEOUT_S)
        except TimeoutError:
            log.warning("metrics: the node did not answer within %.1fs", SCRAPE_TIMEOUT_S)
            return
        self._metrics.update_raft(status)
        limits = self._limits
        self._metrics.update_state(counters, limits.job_limit, limits.memory_limit_bytes)


def _join_value(body: dict[str, object], name: str, parse: Callable[[object], Any]) -> Any:
    value = body.get(name)
    if value is None:
        raise ValidationError(name, "is required")
    try:
        return parse(value)
    except ValueError as exc:
        raise ValidationError(name, str(exc)) from None


def build_app(
    backend: Backend,
    config: NodeConfig,
    metrics: ApiMetrics,
    clock: Callable[[], int],
    *,
    forward_tls: ssl.SSLContext | None = None,
    guard: WebhookGuard | None = None,
    render_metrics: RenderMetrics | None = None,
    node_wide: NodeWide | None = None,
) -> web.Application:
    """The REST API of one node.  ``clock`` gives epoch milliseconds (the leader's
    "now" for the times a write decides); ``forward_tls``, if set, is how writes
    forwarded to the leader are sent (HTTPS, checked with this context); ``guard``
    checks new webhook URLs (by default against ``webhooks.*`` with the system
    resolver); ``render_metrics`` makes ``/metrics``'s body (by default ``metrics``
    rendered, the node's gauges refreshed first: an API worker asks its node);
    ``node_wide``, in an API worker, the bounds all the workers share."""
    if guard is None:
        guard = WebhookGuard(config.webhooks.address_policy)
    limits = node_limits(config)
    max_body = config.http.max_body_bytes
    openapi_json()  # parsed once per process, here: a broken description stops start-up
    middlewares = [] if not tracing.enabled() else [tracing_middleware()]
    middlewares += [
        metrics_middleware(metrics),
        cors_middleware(CorsPolicy(config.http.cors_origins)),
        error_middleware(max_body),
        auth_middleware(config.api.tokens, config.api.open_health, config.cluster.secrets),
    ]
    if config.api.rate_limit > 0:
        limiter = RateLimiter(config.api.rate_limit, config.api.rate_burst)
        middlewares.append(rate_limit_middleware(limiter, config.cluster.secret))
    gates = admissions(config.api, time.monotonic())
    middlewares.append(admission_middleware(gates, metrics, node_wide=node_wide))
    app = web.Application(client_max_size=max_body, middlewares=middlewares)
    app[BODY_TIMEOUT_S] = config.http.body_timeout_ms / 1000
    app.on_response_prepare.append(render_json_errors)
    if config.cluster.has_peers(config.node.id):
        wait_s = max(2.0, 3 * config.raft.election_timeout_ms / 1000)
        Forwarder(backend, wait_s, config.cluster.secret, forward_tls).install(app)
    rejected, skipped = metrics.job_rejections, metrics.occurrences_skipped

    def on_rejection(kind: str) -> None:
        rejected.labels(reason=kind).inc()

    def on_skipped(reason: str, runs: int) -> None:
        skipped.labels(reason=reason).inc(runs)

    jobs = JobRoutes(
        backend,
        limits,
        max_body,
        clock,
        guard,
        on_rejection,
        config.http.max_payload_bytes,
        config.webhooks.signing_secrets.keys(),
        config.webhooks.header_secrets.keys(),
        on_skipped=on_skipped,
    )
    app.router.add_routes(jobs.routes())
    node_routes = NodeRoutes(
        backend, metrics, limits, max_body, config.cluster.secrets, render_metrics
    )
    app.router.add_routes(node_routes.routes())
    app.router.add_routes(AdminRoutes(backend, config.cluster.secrets).routes())
    app.router.add_routes(console_routes())  # the web console: static files, not the API
    return app


def build_metrics_app(
    backend: Backend,
    config: NodeConfig,
    metrics: ApiMetrics,
    render_metrics: RenderMetrics | None = None,
) -> web.Application:
    """The metrics listener: ``GET /metrics`` and nothing else (JSON 404/405 otherwise);
    ``render_metrics`` as for :func:`build_app`."""
    max_body = config.http.max_body_bytes
    app = web.Application(
        client_max_size=max_body,
        middlewares=[
            error_middleware(max_body),
            auth_middleware(config.api.tokens, config.api.open_health, config.cluster.secrets),
        ],
    )
    app.on_response_prepare.append(render_json_errors)
    routes = NodeRoutes(backend, metrics, node_limits(config), max_body, render=render_metrics)
    app.router.add_get("/metrics", routes.metrics)
    return app
