"""The node supervisor: opens the data directory, starts the actors, stops them.

Start order is storage → transport → snapshots → raft → webhook → scheduler → http;
stop order is the reverse, so nothing is ever asked of an actor that has already
stopped, and RocksDB closes last.  On SIGTERM a leader first hands leadership over
(:meth:`Node.hand_over`).  The transport exists only when the cluster has other
members: a single node has nobody to talk to.

Let it crash: if any actor dies (an exception in a handler stops a Pykka actor),
the supervisor logs which one, stops the rest and exits non-zero; the process
supervisor (compose, Kubernetes) restarts the node, and Raft plus RocksDB bring it
back to where it was.  The local launcher (``scheduled-db cluster``) restarts
nothing: it reports the exit and leaves the node down.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

import pykka

from actors.api.actor import HttpActor
from actors.api.messages import GetBoundPorts
from actors.api.node_backend import NodeBackend
from actors.raft.actor import RaftActor, RaftSettings
from actors.raft.identify import HttpEndpoint
from actors.raft.lease import LeaderLease, SharedLease
from actors.raft.messages import (
    GetPeerSender,
    GetRaftStatus,
    GetTransportStatus,
    SetTransportInbox,
    TransferLeadership,
)
from actors.raft.snapshot_stream import SnapshotStreamActor
from actors.raft.transport import TransportActor
from actors.raft.wire import cluster_key
from actors.runtime import tracing
from actors.runtime.metrics import ApiMetrics
from actors.runtime.open_files import raise_soft_limit, webhook_slots
from actors.runtime.ports import PortInUse, check_ports
from actors.runtime.replies import ActorRef, wait_reply
from actors.runtime.tls import NodeTls, load_node_tls
from actors.scheduler.actor import SchedulerActor, SchedulerSettings
from actors.storage.actor import StorageActor
from actors.storage.datadir import DataDirError
from actors.storage.store import NodeStore, StoreOptions
from actors.webhook.attempt import Secrets
from actors.webhook.workers import DeliverySettings, DeliveryWorkers
from scheduled_db.config.kinds import Address
from scheduled_db.config.loading import ConfigError
from scheduled_db.config.model import NodeConfig
from scheduled_db.raft.core import Status
from scheduled_db.raft.formation import Formation
from scheduled_db.raft.messages import ConfState
from scheduled_db.raft.replication import Role

log = logging.getLogger("actors.node")

WATCH_INTERVAL_S = 0.2
HAND_OVER_POLL_S = 0.02
STOP_TIMEOUT_S = 10.0


@dataclass
class _Started:
    name: str
    ref: ActorRef


class Node:
    """One scheduled-db node: its actors, started and stopped as a unit."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._actors: list[_Started] = []
        self._stop = threading.Event()
        self.failure: str | None = None
        self.http_port = 0
        self.metrics_port = 0
        self._tls = NodeTls()
        self._cluster_id: str | None = None

    def start(self) -> None:
        """Read the TLS files, open storage and start every actor; raises
        ConfigError (a TLS file at fault), DataDirError, OSError."""
        cfg = self.config
        self._tls = load_node_tls(cfg)
        store = NodeStore.open(
            cfg.node.data_dir,
            cfg.node.id,
            cfg.cluster.id,
            options=StoreOptions(
                snapshot_entries=cfg.raft.snapshot_threshold_entries,
                keep_entries=cfg.raft.snapshot_keep_entries,
            ),
        )
        self._cluster_id = store.cluster_id or cfg.cluster.id
        formation = None
        if store.has_raft_state():
            if cfg.cluster.peer_addresses:
                log.info("this node has Raft state: it rejoins its cluster, never bootstraps")
            _warn_of_other_members(cfg, store.log.initial_state()[1])
        elif cfg.cluster.peer_addresses:
            formation = _formation(cfg)
        else:
            voters = tuple(mb.id for mb in cfg.cluster.members) or (cfg.node.id,)
            store.bootstrap(voters)
            log.info("bootstrapped a new cluster of %s", ", ".join(voters))
        try:
            self._start_actors(store, formation)
        except BaseException:
            self.stop()
            raise

    def _start_actors(self, store: NodeStore, formation: Formation | None) -> None:
        cfg = self.config
        storage = self._add("storage", StorageActor.start(store))
        settings = RaftSettings.from_config(cfg.node.id, cfg.raft)
        metrics = ApiMetrics()
        # Granted by the Raft actor, checked before each delivery; in shared memory when
        # worker processes deliver (actors/webhook/workers.py).
        lease = SharedLease() if cfg.execution.delivery_workers else LeaderLease()
        transport = self._start_transport()
        snapshots = peer_sender = None
        if transport is not None:
            peer_sender = wait_reply(transport, GetPeerSender, None)
            snapshots = self._add(
                "snapshots", SnapshotStreamActor.start(cfg.node.id, storage, transport)
            )
        raft = self._add(
            "raft",
            RaftActor.start(
                settings,
                store.log,
                store.applied()[0],
                storage,
                transport=transport,
                peer_sender=peer_sender,
                snapshots=snapshots,
                static_peers=_static_peers(cfg),
                hooks=metrics.raft_hooks(),
                lease=lease,
                formation=formation,
            ),
        )
        if transport is not None:
            transport.tell(SetTransportInbox(raft, snapshots))
        webhook = self._add("webhook", _start_webhook(cfg, metrics, lease))
        _log_webhook_policy(cfg)
        self._add(
            "scheduler",
            SchedulerActor.start(
                SchedulerSettings.from_config(cfg),
                raft,
                storage,
                webhook,
                metrics=metrics,
                proposed=store.proposed,
            ),
        )
        address = f"{cfg.http.host}:{cfg.http.port}"
        backend = NodeBackend(cfg, raft, storage, address, store.proposed)
        http = HttpActor.start(backend, cfg, metrics, tls=self._tls.api, workers=cfg.http.workers)
        self._add("http", http)
        try:
            ports: tuple[int, int] = wait_reply(http, GetBoundPorts, None)
            self.http_port, self.metrics_port = ports
        except pykka.ActorDeadError:  # it logged why (a port in use, most likely)
            raise OSError(f"cannot serve HTTP on {cfg.http.host}:{cfg.http.port}") from None
        backend.set_http_address(_advertised(cfg.http.host, self.http_port))
        scheme = "HTTPS" if self._tls.api is not None else "HTTP"
        log.info("node %s serving %s on port %d", cfg.node.id, scheme, self.http_port)

    def _start_transport(self) -> pykka.ActorRef[TransportActor] | None:
        cfg = self.config
        peers = _static_peers(cfg)
        if not cfg.cluster.has_peers(cfg.node.id):
            return None
        secret = cfg.cluster.secret
        if secret is None and not cfg.cluster.peer_addresses:
            # The config refuses this too: only the original's host:port lists may go
            # without a secret, with the warning below.
            raise OSError("a cluster with other members needs cluster.secret")
        if secret is None:
            log.warning(
                "peer traffic is not authenticated: no cluster secret is set (the original's "
                "configuration has none), so anyone who reaches port %d can act as a node; "
                "set CLUSTER_SECRET (16+ characters, the same on every node)",
                cfg.raft.port,
            )
        listen = (cfg.raft.host, cfg.raft.port)
        transport = self._add(
            "transport",
            TransportActor.start(
                cfg.node.id,
                listen,
                peers,
                cluster_key(None if secret is None else secret.encode(), self._cluster_id),
                tls=self._tls.raft,
                identify=tuple((a.host, a.port) for a in _others(cfg)),
                http=HttpEndpoint(_told_host(cfg.http.host), cfg.http.port),
            ),
        )
        try:
            port = wait_reply(transport, GetTransportStatus, None).port
        except pykka.ActorDeadError:  # it logged why (the port in use, most likely)
            raise OSError(f"cannot listen for Raft peers on {listen[0]}:{listen[1]}") from None
        log.info(
            "node %s: Raft transport%s on port %d, peers %s",
            cfg.node.id,
            " (mutual TLS)" if self._tls.raft is not None else "",
            port,
            ", ".join(sorted(peers)) or ", ".join(map(str, cfg.cluster.peer_addresses)),
        )
        return transport

    def _add(self, name: str, ref: ActorRef) -> ActorRef:
        self._actors.append(_Started(name, ref))
        return ref

    def request_stop(self) -> None:
        self._stop.set()

    def wait(self) -> int:
        """Block until a stop is requested (0) or an actor dies (1)."""
        while not self._stop.wait(WATCH_INTERVAL_S):
            dead = [a.name for a in self._actors if not a.ref.is_alive()]
            if dead:
                self.failure = f"actor {dead[0]} stopped unexpectedly (see its error above)"
                log.error("%s: stopping the node", self.failure)
                return 1
        return 0

    def hand_over(self) -> None:
        """Before a graceful stop: if this node leads a cluster, stop firing and pass
        leadership to the most up-to-date voter, waiting (bounded) until it has it.

        The scheduler stops first, proposing the outcomes it holds; deliveries still
        in flight are fired again by the next leader with the same idempotency key
        (their claims stay open).  Without a successor the node just stops: the
        others elect one after an election timeout, as if it had crashed.
        """
        raft, scheduler = self._ref("raft"), self._ref("scheduler")
        if raft is None or not self.config.cluster.has_peers(self.config.node.id):
            return
        try:
            status: Status = wait_reply(raft, GetRaftStatus, STOP_TIMEOUT_S)
        except (pykka.ActorDeadError, pykka.Timeout):
            return
        if status.role is not Role.LEADER:
            return
        if scheduler is not None:
            with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                scheduler.stop(block=True, timeout=STOP_TIMEOUT_S)
        target = _successor(status)
        if target is None:
            log.info("no voter to hand leadership to: stopping as leader")
            return
        started = time.monotonic()
        deadline = started + max(2.0, 2 * self.config.raft.election_timeout_ms / 1000)
        raft.tell(TransferLeadership(target))
        while time.monotonic() < deadline:
            try:
                now: Status = wait_reply(raft, GetRaftStatus, STOP_TIMEOUT_S)
                lead = now.lead
            except (pykka.ActorDeadError, pykka.Timeout):
                return
            if lead not in ("", self.config.node.id):
                took = time.monotonic() - started
                log.info("leadership handed to %s in %.2f s", lead, took)
                return
            time.sleep(HAND_OVER_POLL_S)
        log.warning("leadership was not taken up by %s in time: stopping anyway", target)

    def _ref(self, name: str) -> ActorRef | None:
        return next((a.ref for a in self._actors if a.name == name), None)

    def stop(self) -> None:
        """Stop the actors in reverse start order (each within a bounded time)."""
        for started in reversed(self._actors):
            try:
                started.ref.stop(block=True, timeout=STOP_TIMEOUT_S)
            except pykka.ActorDeadError:
                pass
            except pykka.Timeout:
                log.error("actor %s did not stop within %ss", started.name, STOP_TIMEOUT_S)
        self._actors.clear()


def _successor(status: Status) -> str | None:
    """The voter (not us) with the longest replicated log; None if there is none."""
    voters = [v for v in status.conf_state.voters if v != status.id and v in status.progress]
    if not voters:
        return None
    return max(voters, key=lambda v: (status.progress[v].match, v))


def _formation(cfg: NodeConfig) -> Formation:
    addresses = tuple(str(a) for a in cfg.cluster.peer_addresses)
    expect = cfg.cluster.bootstrap_expect
    log.info(
        "a new node: it bootstraps once every listed peer answers (%s)%s; until then it "
        "is no voter and cannot lead",
        ", ".join(addresses),
        "" if expect is None else f", {expect} nodes with this one",
    )
    formation = Formation(cfg.node.id, addresses, expect)
    formation.identified(str(cfg.raft.advertise_address), cfg.node.id)  # if listed
    return formation


def _others(cfg: NodeConfig) -> tuple[Address, ...]:
    """The listed Raft addresses to probe: all but this node's own advertised one (which
    it need not dial to know; any other name of itself, it finds by dialling)."""
    own = cfg.raft.advertise_address
    return tuple(a for a in cfg.cluster.peer_addresses if a != own)


def _told_host(host: str) -> str:
    """The HTTP host this node tells peers that probe it: "" if it listens on every
    interface, for them to use the host they reached it at."""
    return "" if host in _ANY_HOST else host


_ANY_HOST = ("0.0.0.0", "", "::", "[::]")


def _advertised(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"{shown}:{port}"


def tune_interpreter() -> None:
    """Settings for a latency-sensitive process, measured by bench/firing_bench.py.

    - GIL switch interval 0.5 ms (CPython's default is 5 ms): the webhook loop
      wakes for a response while the storage or scheduler thread computes, and
      waits for the GIL up to this long; at 5 ms that wait capped a burst's rate.
    - Fewer cyclic garbage collections (first threshold 50,000 allocations, not
      700): each full collection walks every live object (the hot window holds
      thousands of jobs) and stalled a burst for up to 90 ms.  Almost all garbage
      here is freed by reference counting; the collector only finds cycles.
    """
    sys.setswitchinterval(0.0005)
    gc.set_threshold(50_000, 50, 1_000)


def run_node(config: NodeConfig) -> int:
    """Run a node in this process until SIGTERM/SIGINT; return the exit code."""
    tune_interpreter()
    try:
        check_ports(config)  # before the data directory is opened or any actor started
    except PortInUse as exc:
        print(f"scheduled-db: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        endpoint = tracing.setup(os.environ, config.node.id)
    except tracing.TracingError as exc:
        print(f"scheduled-db: {exc}", file=sys.stderr)
        return 2
    if endpoint is not None:
        log.info("tracing: on, spans exported over OTLP/HTTP to %s", endpoint)
    try:
        return _run(config)
    finally:
        tracing.shutdown()  # spans still queued go out before the process ends


def _run(config: NodeConfig) -> int:
    node = Node(config)
    try:
        node.start()
    except ConfigError as exc:  # a TLS file: one line, like every other config error
        print(f"scheduled-db: {exc}", file=sys.stderr)
        return 2
    except DataDirError as exc:
        print(f"scheduled-db: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"scheduled-db: cannot start: {exc.strerror or exc}", file=sys.stderr)
        return 1
    signals = {"count": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning("second signal: exiting at once")
            sys.stdout.flush()
            os._exit(1)
        log.info("signal %d: stopping", signum)
        node.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    code = node.wait()
    if code == 0:
        node.hand_over()
    node.stop()
    log.info("node %s stopped", config.node.id)
    return code


def _warn_of_other_members(cfg: NodeConfig, conf: ConfState) -> None:
    """Membership is the log's once a node has state: a configured member list that
    differs only gives addresses, and is never taken as a change.  Say so, rather
    than leave an operator to believe it took effect."""
    listed = {m.id for m in cfg.cluster.members}
    current = set(conf.voters) | set(conf.learners)
    if listed and current and listed != current:
        log.warning(
            "cluster.members lists %s, but this node's cluster has %s: a configured list "
            "does not change the membership of an existing cluster (it gives addresses "
            "only). Change it with /cluster/members; after losing a majority for good, "
            "stop this node and run `scheduled-db recover --force-new-cluster` "
            "(docs/operations.md)",
            ", ".join(sorted(listed)),
            ", ".join(sorted(current)),
        )


def _static_peers(cfg: NodeConfig) -> dict[str, tuple[str, int]]:
    """The configured members but this node.  The transport takes hosts as the
    config writes them ([::1] included)."""
    return {
        p.id: (p.raft_address.host, p.raft_address.port) for p in cfg.cluster.peers(cfg.node.id)
    }


def _log_webhook_policy(cfg: NodeConfig) -> None:
    """Say when the SSRF guard is open, since the default is shut."""
    hooks = cfg.webhooks
    if hooks.allow_private:
        log.warning("webhooks.allow_private is on: webhooks may reach any address")
    elif hooks.allow_networks:
        nets = ", ".join(str(net) for net in hooks.allow_networks)
        log.info("webhooks may reach these private networks too: %s", nets)


def _start_webhook(cfg: NodeConfig, metrics: ApiMetrics, lease: LeaderLease) -> ActorRef:
    """The actor the scheduler tells to deliver: the WebhookActor in this process, or
    with ``execution.delivery_workers`` the one that hands deliveries to workers."""
    ex = cfg.execution
    settings = DeliverySettings(
        cfg.node.id,
        webhook_slots(ex.concurrency, raise_soft_limit()),
        ex.per_destination,
        cfg.webhooks.per_destination_rate or None,
        _webhook_secrets(cfg),
        cfg.webhooks.address_policy,
        cfg.log.level,
        cfg.log.json,
        cfg.cluster.secrets,
    )
    if isinstance(lease, SharedLease):  # made so for execution.delivery_workers
        return DeliveryWorkers.start(settings, ex.delivery_workers, lease, metrics)
    return settings.start_actor(metrics, lease)


def _webhook_secrets(cfg: NodeConfig) -> Secrets:
    w = cfg.webhooks
    return Secrets(
        signing=None if w.signing_secret is None else w.signing_secret.encode(),
        named={k: v.encode() for k, v in w.signing_secrets.items()},
        scheme=w.signature_scheme,
        headers=dict(w.header_secrets),
    )
