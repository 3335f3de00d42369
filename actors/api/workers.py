"""The REST API in worker processes: parsing and answering HTTP off the node's GIL.

A node's process applies the Raft log, writes RocksDB, runs the scheduler and
serves HTTP, all under one GIL; of these, HTTP (aiohttp's parsing, validation,
JSON, the middlewares) is the largest share of a create's CPU and needs no state
of its own.  With ``http.workers`` >= 1 the node serves the API from that many
worker processes instead:

- The node binds the API's listening socket (so port 0 works, and a port in use
  stops start-up in the node) and every worker accepts from it; the node's own
  loop never does.  A worker runs the same application (:func:`build_app`) over a
  :class:`RemoteBackend`: each call of the :class:`~actors.api.backend.Backend`
  contract crosses a :class:`~actors.api.channel.Channel` (a Unix socket pair) to
  the node's HTTP loop, where the node's own backend answers it.  A turn of
  either loop is one write: many requests' calls cost one wake-up of the node.
- Admission (``api.max_in_flight``, ``api.max_reads_in_flight``) holds the sum
  of the workers' requests in flight, counted in shared memory
  (:class:`~actors.api.admission.NodeWide`); the per-client rate limit is shared
  out evenly between the workers.
- Metrics: the workers count their requests in registries of their own; a
  scrape (a worker's ``/metrics`` or the metrics listener, which stays in the
  node) asks every worker for those families and sums them into the node's.
- A worker that exits stops the node's HttpActor, and so the node: requests
  would hang otherwise.  A worker whose node has gone exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from actors.api.admission import NodeWide, Traffic
from actors.api.backend import BackupStream, NodeStatus
from actors.api.channel import Channel
from actors.api.coalesce import ProposalBatcher
from actors.raft.messages import ProposeOutcome, Refusal
from actors.runtime.metrics import ApiMetrics
from actors.runtime.replies import Reply
from scheduled_db.config.loading import NodeConfig
from scheduled_db.state.commands import Command
from scheduled_db.state.results import CommandResult

if TYPE_CHECKING:
    from actors.api.node_backend import NodeBackend

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0  # a spawned interpreter imports the node's modules first
STOP_TIMEOUT_S = 5.0
SCRAPE_TIMEOUT_S = 2.0
# The node's wait for an entry's outcome; the request waits its own timeout.
ENTRY_TIMEOUT_S = 10.0
# How long a worker lets its requests in flight finish when the node stops it.
SHUTDOWN_GRACE_S = 2.0
# Connections the kernel holds for the API's listener (the node's own, or each
# worker's) before it accepts them.  aiohttp's default, 128, drops the rest of a
# burst of new connections: each dropped client waits for its SYN to be sent again
# (a second or more) before the node can even refuse it.  The kernel caps this at
# net.core.somaxconn.
LISTEN_BACKLOG = 2048


def worker_config(config: NodeConfig, workers: int) -> NodeConfig:
    """``config`` as one of ``workers`` workers applies it: its share of the
    per-client rate limit (admission is node-wide: :class:`NodeWide`)."""
    api = config.api
    share = replace(
        api,
        rate_limit=api.rate_limit / workers,
        rate_burst=max(1, -(-api.rate_burst // workers)),
    )
    return replace(config, api=share)


def node_wide(config: NodeConfig, counts: dict[Traffic, Any], workers: int) -> NodeWide:
    """The admission bounds the workers share, over ``counts`` in shared memory."""
    caps = {Traffic.WRITE: config.api.max_in_flight, Traffic.READ: config.api.max_reads_in_flight}
    return NodeWide(counts, caps, workers)


# --- the worker's side ------------------------------------------------------------------


class _Carried:
    """Hands the command an entry's data encodes from the worker's ProposalBatcher
    (which remembers it, as the node's own batcher does for its storage) to the call
    that carries both to the node: the node's storage then applies it undecoded."""

    def __init__(self) -> None:
        self.commands: dict[bytes, Command] = {}

    def remember(self, data: bytes, command: Command) -> None:
        self.commands[data] = command


class RemoteBackend:
    """The :class:`~actors.api.backend.Backend` of a worker: every call goes to the node.

    Creates and other single writes are grouped as in the node's own process (a
    :class:`~actors.api.coalesce.ProposalBatcher`): the worker encodes each turn's
    writes into entries, and the node only proposes them."""

    def __init__(self, node_id: str, channel: Channel) -> None:
        self.node_id = node_id
        self._channel = channel
        self._carried = _Carried()
        self._batcher = ProposalBatcher(self._send_entry, self._carried)  # type: ignore[arg-type]

    async def propose(self, command: Command, timeout: float = 10.0) -> CommandResult:
        return await self._batcher.propose(command, timeout)

    def _send_entry(self, data: bytes, reply: Reply, traced: tuple[str, ...]) -> None:
        command = self._carried.commands.pop(data)
        call = self._channel.call("propose_entry", data, command, traced, ENTRY_TIMEOUT_S)
        asyncio.ensure_future(call).add_done_callback(lambda done: reply(_outcome(done)))

    async def propose_batch(
        self, commands: Sequence[Command], timeout: float = 10.0
    ) -> tuple[CommandResult, ...]:
        results: tuple[CommandResult, ...] = await self._channel.call(
            "propose_batch", tuple(commands), timeout
        )
        return results

    async def read(self, query: Any, timeout: float = 10.0) -> Any:
        return await self._channel.call("read", query, timeout)

    async def status(self) -> NodeStatus:
        status: NodeStatus = await self._channel.call("status")
        return status

    async def read_index(self, timeout: float = 10.0) -> None:
        await self._channel.call("read_index", timeout)

    async def open_backup(self, timeout: float = 30.0) -> BackupStream:
        from actors.storage.backup import BackupSource

        path, state_cf = await self._channel.call("backup_checkpoint", timeout)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, BackupSource, path, state_cf, self.node_id)

    async def add_learner(self, node_id: str, raft_address: str, http_address: str) -> None:
        await self._channel.call("add_learner", node_id, raft_address, http_address)

    async def remove_member(self, node_id: str) -> None:
        await self._channel.call("remove_member", node_id)

    async def metrics_text(self) -> bytes:
        """The node's metrics, every worker's requests summed in."""
        text: bytes = await self._channel.call("metrics")
        return text


def _outcome(done: asyncio.Future[Any]) -> ProposeOutcome:
    """The node's answer to a proposed entry; unknown if the node could not say."""
    if done.cancelled():
        return ProposeOutcome(error=Refusal.UNKNOWN_OUTCOME, detail="the worker is stopping")
    exc = done.exception()
    if exc is None:
        outcome: ProposeOutcome = done.result()
        return outcome
    return ProposeOutcome(error=Refusal.UNKNOWN_OUTCOME, detail=str(exc))


def run_worker(
    address: tuple[int, tuple[Any, ...]],
    link: socket.socket,
    config: NodeConfig,
    index: int,
    count: int,
    in_flight: dict[Traffic, Any],
) -> None:
    """A worker process's body: serve the API on ``address`` (a family and a socket
    address the node holds with SO_REUSEPORT) until the node says stop or goes away;
    ``in_flight`` are the node-wide counts of requests in flight."""
    # Ctrl-C in a terminal signals the whole process group: the node stops its
    # workers itself, after its requests in flight, so a worker leaves it to the node.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from actors.node import tune_interpreter
    from actors.runtime import tracing
    from actors.runtime.logs import setup_logging

    node_id = config.node.id
    setup_logging(config.log.level, config.log.json, node_id, redact=config.cluster.secrets)
    tune_interpreter()
    try:
        tracing.setup(os.environ, node_id)
    except tracing.TracingError as exc:  # the node itself checked the same variables
        log.warning("http worker %d: tracing off: %s", index, exc)
    try:
        listener = _listen(*address)
        bounds = node_wide(config, in_flight, count)
        asyncio.run(_serve_api(listener, link, worker_config(config, count), index, bounds))
    finally:
        tracing.shutdown()


def shared_port_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A TCP socket bound to ``address`` with SO_REUSEPORT: the node's, holding the
    API's port, and each worker's, listening on it (raises OSError: the port in use)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _listen(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = shared_port_socket(family, address)
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


async def _serve_api(
    listener: socket.socket, link: socket.socket, config: NodeConfig, index: int, bounds: NodeWide
) -> None:
    from actors.api.app import build_app
    from actors.api.protocol import ApiRunner
    from actors.runtime.clock import now_ms
    from actors.runtime.tls import load_node_tls

    metrics = ApiMetrics()
    stop = asyncio.get_running_loop().create_future()

    async def serve(name: str, args: tuple[Any, ...]) -> Any:
        if name == "collect":
            return metrics.http_families()
        if name == "stop":
            if not stop.done():
                stop.set_result(None)
            return None
        raise ValueError(f"unknown call {name!r}")

    channel = await Channel.open(link, serve)
    reading = asyncio.ensure_future(channel.run())
    backend = RemoteBackend(config.node.id, channel)
    tls = load_node_tls(config).api
    app = build_app(
        backend,
        config,
        metrics,
        now_ms,
        forward_tls=None if tls is None else tls.client,
        render_metrics=backend.metrics_text,
        node_wide=bounds,
    )
    runner = ApiRunner(app, config.http, shutdown_timeout=SHUTDOWN_GRACE_S, handle_signals=False)
    await runner.setup()
    await channel.call("ready", index, os.getpid())  # answered once every worker is
    site = web.SockSite(runner, listener, ssl_context=None if tls is None else tls.server)
    await site.start()
    ended = asyncio.ensure_future(channel.closed())
    await asyncio.wait({stop, ended}, return_when=asyncio.FIRST_COMPLETED)
    await runner.cleanup()  # stops accepting, lets requests in flight finish
    channel.close()
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading


# The NodeBackend methods a worker's RemoteBackend calls, by name, with its arguments.
_BACKEND_CALLS = frozenset(
    {
        "propose_entry",
        "propose_batch",
        "read",
        "status",
        "read_index",
        "backup_checkpoint",
        "add_learner",
        "remove_member",
    }
)


# --- the node's side --------------------------------------------------------------------


class IngressWorkers:
    """The node's end of its API workers: starts them, answers their calls with the
    node's backend, and renders metrics with theirs summed in."""

    def __init__(self, config: NodeConfig, count: int, metrics: ApiMetrics) -> None:
        if count < 1:
            raise ValueError(f"workers must be >= 1, got {count}")
        self._config = config
        self._count = count
        self._metrics = metrics
        self._procs: list[Any] = []
        self._links: list[socket.socket] = []
        self._channels: list[Channel] = []
        self._ready: dict[int, asyncio.Future[int]] = {}
        self._backend: NodeBackend | None = None
        self._routes: Any = None
        self._stopping = False
        self._reserved: socket.socket | None = None
        self._in_flight: dict[Traffic, Any] = {}
        self.port = 0

    def spawn(self, reserved: socket.socket) -> None:
        """Start the worker processes listening on ``reserved``'s address (bound with
        SO_REUSEPORT, not listening; closed once they all listen).  Blocks while
        they start: call it off the event loop."""
        self._reserved = reserved
        address = (reserved.family, reserved.getsockname())
        self.port = int(address[1][1])
        ctx = multiprocessing.get_context("spawn")
        # Kept here: a worker still starting rebuilds their locks from their names.
        in_flight = self._in_flight = {traffic: ctx.Value("q", 0) for traffic in Traffic}
        # The config's mappings are read-only views; a worker gets its own copy.
        ForkingPickler.register(MappingProxyType, _reduce_mapping_proxy)
        for index in range(self._count):
            here, there = socket.socketpair()
            proc = ctx.Process(
                target=run_worker,
                args=(address, there, self._config, index, self._count, in_flight),
                name=f"scheduled-db-http-{index}",
                daemon=True,
            )
            proc.start()
            there.close()
            self._procs.append(proc)
            self._links.append(here)

    async def serve(self, backend: Any, on_lost: Callable[[], None]) -> None:
        """Answer the workers' calls with ``backend`` (a
        :class:`~actors.api.node_backend.NodeBackend`: it takes the checkpoint a
        worker's backup reads, too); returns once every worker is
        serving (raises OSError if one is not within START_TIMEOUT_S).  ``on_lost``
        is called if a worker goes away before :meth:`stop`."""
        from actors.api.app import NodeRoutes, node_limits

        self._backend = backend
        self._routes = NodeRoutes(
            backend, self._metrics, node_limits(self._config), self._config.http.max_body_bytes
        )
        loop = asyncio.get_running_loop()
        for index, link in enumerate(self._links):
            self._ready[index] = loop.create_future()
            channel = await Channel.open(link, self._serve)
            self._channels.append(channel)
            asyncio.ensure_future(channel.run())
            asyncio.ensure_future(self._watch(index, channel, on_lost))
        try:
            await asyncio.wait_for(asyncio.gather(*self._ready.values()), START_TIMEOUT_S)
        except TimeoutError:
            raise OSError("an HTTP worker did not start") from None
        finally:
            if self._reserved is not None:  # the workers hold the port now
                self._reserved.close()
        log.info("the API is served by %d worker process(es)", self._count)

    async def _watch(self, index: int, channel: Channel, on_lost: Callable[[], None]) -> None:
        await channel.closed()
        ready = self._ready.get(index)
        if ready is not None and not ready.done():
            ready.set_exception(OSError(f"HTTP worker {index} exited while starting"))
        if not self._stopping:
            log.error("http: worker %d exited; stopping", index)
            on_lost()

    async def _serve(self, name: str, args: tuple[Any, ...]) -> Any:
        if name in _BACKEND_CALLS:
            return await getattr(self._backend, name)(*args)
        if name == "metrics":
            return await self.render_metrics()
        if name == "ready":  # a worker accepts once all are ready: none serves alone
            self._ready[args[0]].set_result(args[1])
            await asyncio.gather(*self._ready.values())
            return None
        raise ValueError(f"unknown call {name!r}")

    async def render_metrics(self) -> bytes:
        """The node's metrics (gauges refreshed) with every worker's requests summed in."""
        await self._routes.refresh_metrics()
        asked = [asyncio.wait_for(c.call("collect"), SCRAPE_TIMEOUT_S) for c in self._channels]
        families: list[Any] = []
        for answer in await asyncio.gather(*asked, return_exceptions=True):
            if isinstance(answer, BaseException):
                log.warning("metrics: an HTTP worker did not answer: %s", answer)
            else:
                families.extend(answer)
        return self._metrics.render_with(families)

    async def stop(self) -> None:
        """Each worker stops accepting, lets its requests finish, and exits."""
        self._stopping = True
        asked = [asyncio.wait_for(c.call("stop"), STOP_TIMEOUT_S) for c in self._channels]
        await asyncio.gather(*asked, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.join)
        for channel in self._channels:
            channel.close()

    def join(self) -> None:
        """Wait for the workers to exit, killing any that do not in time."""
        self._stopping = True
        for proc in self._procs:
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join(STOP_TIMEOUT_S)
        for link in self._links:
            link.close()


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return _mapping_proxy, (dict(proxy),)


def _mapping_proxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)
