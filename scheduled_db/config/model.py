"""The typed configuration objects: one frozen dataclass per YAML section.

Built only by ``scheduled_db.config.loading.load_config``, which has checked every value and
every rule between values; code that receives a ``NodeConfig`` can trust it.
Durations are integer milliseconds (attributes end in ``_ms``) and sizes integer
bytes (``_bytes``), converted once at load so no other module parses units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduled_db.config.kinds import Address, Discovery, Member
from scheduled_db.policy.auth import ApiToken
from scheduled_db.policy.signing import Scheme
from scheduled_db.policy.ssrf import AddressPolicy, IPNetwork


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """The ``node`` section: who this node is and where it keeps its data."""

    id: str
    data_dir: str


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The ``http`` section: the REST API listener."""

    host: str
    port: int
    max_body_bytes: int
    cors_origins: tuple[str, ...]
    max_payload_bytes: int
    max_headers: int
    max_header_size_bytes: int
    idle_timeout_ms: int
    body_timeout_ms: int
    workers: int = 0  # 0: the node's own process serves the API


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The ``api`` section: who may call the REST API (see :mod:`scheduled_db.policy.auth`),
    how much of it this node works on at once (see :mod:`scheduled_db.policy.admission`),
    and its TLS files: ``tls_cert`` and ``tls_key`` are both set or both unset."""

    tokens: tuple[ApiToken, ...]
    open_health: bool
    rate_limit: float
    rate_burst: int
    max_in_flight: int
    max_reads_in_flight: int
    write_latency_target_ms: int
    tls_cert: str | None
    tls_key: str | None
    tls_ca: str | None


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """The ``raft`` section: the peer transport and the Raft core's tuning.

    ``advertise_host`` is always set: left unset in every source it is ``host``.
    The three ``tls_*`` files are all set (mutual TLS between nodes) or all unset.
    """

    host: str
    port: int
    advertise_host: str
    heartbeat_interval_ms: int
    election_timeout_ms: int
    snapshot_threshold_entries: int
    snapshot_keep_entries: int
    max_inflight: int
    max_entries_per_msg: int
    max_bytes_per_msg: int
    tls_cert: str | None
    tls_key: str | None
    tls_ca: str | None

    @property
    def listen_address(self) -> Address:
        return Address(self.host, self.port)

    @property
    def advertise_address(self) -> Address:
        return Address(self.advertise_host, self.port)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The ``cluster`` section: membership, discovery and the shared secret.

    The members are given one of two ways: ``members``, each with its id and
    addresses; or ``peer_addresses``, Raft addresses alone (the original's
    ``STATIC_PEERS``), whose ids and HTTP addresses the node learns in the peer
    handshake.  Neither means a single-node cluster.  ``bootstrap_expect`` counts
    this node; left unset it is the number of members, else ``replicas``, else 1,
    but with ``peer_addresses`` None: every node those addresses reach.
    """

    members: tuple[Member, ...]
    bootstrap_expect: int | None
    secret: str | None = field(repr=False)  # kept out of logs and tracebacks
    join_token: str | None = field(repr=False)
    discovery: Discovery
    dns_service: str | None
    replicas: int | None
    peer_addresses: tuple[Address, ...] = ()
    id: str | None = None  # the cluster's id; None: a cluster that has none (never restored)

    def member(self, node_id: str) -> Member | None:
        return next((m for m in self.members if m.id == node_id), None)

    def peers(self, node_id: str) -> tuple[Member, ...]:
        """Every member but ``node_id``."""
        return tuple(m for m in self.members if m.id != node_id)

    def has_peers(self, node_id: str) -> bool:
        """Whether ``node_id`` is one of several nodes (or may learn of others)."""
        return bool(self.peers(node_id) or self.peer_addresses)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The cluster secret and the join token, those set: bearer values that may
        change the membership, and strings every log line hides."""
        return tuple(s for s in (self.secret, self.join_token) if s)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """The ``scheduler`` section: how due jobs are grouped, how far ahead they are held
    and how early each one is claimed."""

    slot_gap_ms: int
    hot_window_ms: int
    claim_ahead_ms: int


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """The ``queue`` section: admission limits on pending jobs."""

    job_limit: int
    memory_limit_bytes: int
    memory_percent: float | None

    def memory_budget_bytes(self, system_memory_bytes: int) -> int:
        """The byte budget in force: a percent of system memory if one is set.

        The shell measures system memory; this stays a pure function of it.
        """
        if self.memory_percent is None:
            return self.memory_limit_bytes
        return int(system_memory_bytes * self.memory_percent / 100)


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """The ``execution`` section: webhook delivery, retries and history."""

    timeout_ms: int
    inprogress_timeout_ms: int
    max_attempts: int
    history_retention_ms: int
    backoff_base_ms: int
    backoff_cap_ms: int
    concurrency: int
    per_destination: int
    delivery_workers: int = 0  # 0: deliveries are sent from the node's own process


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """The ``health`` section."""

    failure_threshold: float


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    """The ``webhooks`` section: how deliveries are made trustworthy to receivers,
    and where they may go (the SSRF guard, :mod:`scheduled_db.policy.ssrf`)."""

    signing_secrets: Mapping[str, str] = field(repr=False)  # by name; never shown
    signing_secret: str | None = field(repr=False)  # kept out of logs and tracebacks
    header_secrets: Mapping[str, str] = field(repr=False)  # by name; never shown
    signature_scheme: Scheme
    per_destination_rate: float
    allow_private: bool
    allow_networks: tuple[IPNetwork, ...]

    @property
    def address_policy(self) -> AddressPolicy:
        return AddressPolicy(self.allow_private, self.allow_networks)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The ``metrics`` section: the Prometheus endpoint; port 0 turns it off."""

    port: int

    @property
    def enabled(self) -> bool:
        return self.port != 0


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The ``log`` section.  ``level`` is a ``logging`` level name (WARN -> WARNING)."""

    level: str
    json: bool


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A node's whole configuration, one attribute per YAML section."""

    node: IdentityConfig
    http: HttpConfig
    api: ApiConfig
    raft: RaftConfig
    cluster: ClusterConfig
    scheduler: SchedulerConfig
    queue: QueueConfig
    execution: ExecutionConfig
    health: HealthConfig
    webhooks: WebhooksConfig
    metrics: MetricsConfig
    log: LogConfig
