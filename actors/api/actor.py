"""The HttpActor: the node's aiohttp servers, on an event loop of their own.

The actor owns a thread running an asyncio loop; the REST API (and, when
enabled, the metrics listener) run there.  The actor thread only waits on that
loop for a bounded start and stop handshake: it never blocks on it otherwise,
and the handlers never block the loop on an actor (the :class:`Backend` bridges
with ``loop.call_soon_threadsafe``).

Ports: ``http.port`` 0 binds an ephemeral port; ``metrics.port`` 0 disables the
metrics listener unless ``metrics_enabled=True`` asks for it, in which case port
0 binds an ephemeral port too.  :meth:`HttpActor.ports` tells the bound ports
(``GetBoundPorts`` is answered once ``on_start`` has bound them).
A bind failure raises in ``on_start``, which stops the actor (let it crash).
With ``tls`` (:class:`~actors.runtime.tls.ApiTls`) both listeners serve HTTPS only, and
writes forwarded to the leader go over HTTPS.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

import pykka
from aiohttp import web

from actors.api.app import build_app, build_metrics_app
from actors.api.backend import Backend
from actors.api.messages import GetBoundPorts
from actors.api.protocol import ApiRunner
from actors.api.workers import LISTEN_BACKLOG, IngressWorkers, shared_port_socket
from actors.runtime.clock import now_ms
from actors.runtime.loop_thread import LoopThread
from actors.runtime.metrics import ApiMetrics
from actors.runtime.replies import answer
from actors.runtime.tls import ApiTls
from scheduled_db.config.loading import NodeConfig

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# In-flight requests get this long to finish at shutdown; less than the stop
# handshake, so cleanup ends before the actor gives up waiting for it.
SHUTDOWN_GRACE_S = 2.0


class BoundPorts(NamedTuple):
    """The ports the listeners bound; ``metrics`` is 0 when that listener is off (as
    in the config).  A tuple, so ``http_port, metrics_port = ports`` unpacks it."""

    http: int
    metrics: int


class HttpActor(pykka.ThreadingActor):
    """Serves a node's REST API, and its Prometheus metrics, over HTTP."""

    def __init__(
        self,
        backend: Backend,
        config: NodeConfig,
        metrics: ApiMetrics | None = None,
        clock: Callable[[], int] = now_ms,
        *,
        metrics_enabled: bool | None = None,
        tls: ApiTls | None = None,
        workers: int = 0,
    ) -> None:
        super().__init__()
        self._workers = workers
        self._backend = backend
        self._config = config
        self._tls = tls
        self._metrics = metrics if metrics is not None else ApiMetrics()
        self._clock = clock
        enabled = config.metrics.enabled if metrics_enabled is None else metrics_enabled
        self._metrics_enabled = enabled
        self._lt: LoopThread | None = None
        self._runners: list[web.AppRunner] = []
        self._ports: BoundPorts | None = None
        self._ingress: IngressWorkers | None = None

    # --- queries (ask through the ref) ----------------------------------------------------

    def ports(self) -> BoundPorts:
        assert self._ports is not None, "on_start binds the ports before any message"
        return self._ports

    def bound_port(self) -> int:
        return self.ports().http

    def metrics_port(self) -> int:
        return self.ports().metrics

    def on_receive(self, message: Any) -> None:
        if isinstance(message, GetBoundPorts):
            answer(message.reply, self.ports())
        else:
            log.warning("http: ignoring unexpected message %r", type(message).__name__)

    # --- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        if self._workers:
            self._ingress = IngressWorkers(self._config, self._workers, self._metrics)
            self._ingress.spawn(_reserve(self._config.http.host, self._config.http.port))
        self._lt = LoopThread(f"http-{self._config.node.id}")
        self._ports = self._lt.start(self._start_servers(), START_TIMEOUT_S, self._stop_servers)
        log.info("http: serving on port %d (metrics: %s)", self._ports.http, self._ports.metrics)

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, *exc_info: object) -> None:
        self._shutdown()

    async def _start_servers(self) -> BoundPorts:
        http = self._config.http
        forward_tls = None if self._tls is None else self._tls.client
        render = None
        if self._ingress is not None:  # the workers serve the API; this loop answers them
            await self._ingress.serve(self._backend, self._lost_a_worker)
            port, render = self._ingress.port, self._ingress.render_metrics
        else:
            app = build_app(
                self._backend, self._config, self._metrics, self._clock, forward_tls=forward_tls
            )
            port = await self._serve(app, http.host, http.port)
        metrics_port = 0
        if self._metrics_enabled:
            metrics_app = build_metrics_app(self._backend, self._config, self._metrics, render)
            metrics_port = await self._serve(metrics_app, http.host, self._config.metrics.port)
        return BoundPorts(port, metrics_port)

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = ApiRunner(
            app, self._config.http, shutdown_timeout=SHUTDOWN_GRACE_S, handle_signals=False
        )
        await runner.setup()
        self._runners.append(runner)
        tls = None if self._tls is None else self._tls.server
        site = web.TCPSite(runner, host, port, ssl_context=tls, backlog=LISTEN_BACKLOG)
        await site.start()
        return int(runner.addresses[0][1])

    def _lost_a_worker(self) -> None:
        self.actor_ref.stop(block=False)

    async def _stop_servers(self) -> None:
        if self._ingress is not None:
            await self._ingress.stop()
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _shutdown(self) -> None:
        """Stop the servers and the loop, waiting a bounded time for each; idempotent."""
        if self._lt is not None:
            self._lt.stop(self._stop_servers, STOP_TIMEOUT_S)
        if self._ingress is not None:
            self._ingress.join()  # at once if they exited; else killed after a while


def _reserve(host: str, port: int) -> socket.socket:
    """The API's address, bound (port 0 picks one) but not listening, with
    SO_REUSEPORT: each API worker listens on it with a socket of its own, and the
    kernel shares new connections out between them (raises OSError: the port in
    use, say)."""
    family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0]
    return shared_port_socket(family, address)
