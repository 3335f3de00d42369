"""The table of configuration keys: the single source of truth for every setting.

Each ``Key`` names its dotted path (``http.port``: YAML section ``http``, key
``port``), the environment variable that sets it (where the original project had
one), the command-line flag derived from the path (``--http-port``), its default
written as it would be in YAML, its kind and a one-line help text.  The loader in
``scheduled_db.config.loading``, the CLI's flags, the docs and ``config/single-node.yaml``
(through ``default_yaml()``) all derive from ``KEYS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType

from scheduled_db.config.kinds import (
    BOOL,
    DISCOVERY,
    DURATION,
    FILE,
    HOST,
    LOG_LEVEL,
    MEMBERS,
    NAMED_SECRETS,
    NETWORKS,
    NODE_ID,
    PEERS_FORMAT,
    PORT,
    SECRET,
    SIGNATURE_SCHEME,
    SIZE,
    STR_LIST,
    TEXT,
    TOKENS,
    Kind,
    integer,
    number,
    optional,
)
from scheduled_db.policy.auth import TOKENS_FORMAT
from scheduled_db.policy.signing import NAMED_FORMAT


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key.  ``default`` is written as in YAML (``"100ms"``, ``8080``)."""

    path: str
    kind: Kind
    default: object
    env: str | None
    help: str
    attr_override: str | None = None
    secret: bool = False  # never echoed back in an error message

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.path.split(".", 1)[1]

    @property
    def attr(self) -> str:
        """The attribute of the section's config object that holds the parsed value."""
        return self.attr_override or self.name + self.kind.suffix

    @property
    def flag(self) -> str:
        return "--" + self.path.replace(".", "-").replace("_", "-")


_COUNT = integer(1)
_PERCENT = number(0, 100, above_low=True)

# One key per entry: (path, kind, default as in YAML, env var, help).  Formatting is
# left alone so that the table reads as a table.
# fmt: off
KEYS: tuple[Key, ...] = (
    Key("node.id", NODE_ID, "node-1", "NODE_ID",
        "Unique id of this node; one of cluster.members if listed."),
    Key("node.data_dir", TEXT, "./data", "DATA_DIR",
        "Directory of this node's Raft log, snapshots and job state."),
    Key("http.host", HOST, "0.0.0.0", "HTTP_HOST",
        "Interface the REST API listens on."),
    Key("http.port", PORT, 8080, "HTTP_PORT",
        "Port of the REST API."),
    Key("http.max_body", SIZE, "1MiB", "MAX_REQUEST_BODY_SIZE",
        "Largest request body the API accepts."),
    Key("http.cors_origins", STR_LIST, ["*"], None,
        "Origins allowed cross-origin GET requests; [] disables CORS."),
    Key("http.max_payload", SIZE, "256KiB", None,
        "Largest job payload, as compact UTF-8 JSON."),
    Key("http.max_headers", integer(8, 1000), 100, None,
        "Most request headers the API accepts (431 past it)."),
    Key("http.max_header_size", SIZE, "8KiB", None,
        "Longest request line or header line (431 past it)."),
    Key("http.idle_timeout", DURATION, "60s", "HTTP_IDLE_TIMEOUT",
        "Closes a connection idle this long, or whose request headers take longer."),
    Key("http.body_timeout", DURATION, "30s", "HTTP_READ_TIMEOUT",
        "Time allowed to receive a request's body (408 past it)."),
    Key("http.workers", integer(0, 32), 0, None,
        "Worker processes that serve the API, each with its own GIL (0: the node's own process)."),
    Key("api.tokens", TOKENS, [], "API_TOKENS",
        f"Bearer tokens by SHA-256, role read|write|admin; env form {TOKENS_FORMAT},... "
        "None: no token needed."),
    Key("api.open_health", BOOL, True, None,
        "With tokens set, whether /health, /livez, /ready, /metrics, /openapi.json answer "
        "without one."),
    Key("api.rate_limit", number(0, 1_000_000), 0, "API_RATE_LIMIT",
        "Requests per second allowed to each client (token, else address); 0: no limit."),
    Key("api.rate_burst", _COUNT, 50, "API_RATE_BURST",
        "Requests a client may make at once before api.rate_limit applies."),
    Key("api.max_in_flight", _COUNT, 128, None,
        "Most writes this node works on at once, forwarded ones included; more: 503 overloaded."),
    Key("api.max_reads_in_flight", _COUNT, 1024, None,
        "Most reads this node works on at once (probes not counted); more: 503 overloaded."),
    Key("api.write_latency_target", DURATION, "250ms", None,
        "Mean write latency aimed at: above it fewer writes are admitted at once (never < 8)."),
    Key("api.tls_cert", optional(FILE), None, "API_TLS_CERT",
        "PEM certificate chain: with api.tls_key the API serves HTTPS only; unset: plain HTTP."),
    Key("api.tls_key", optional(FILE), None, "API_TLS_KEY",
        "PEM private key (unencrypted) of api.tls_cert."),
    Key("api.tls_ca", optional(FILE), None, "API_TLS_CA",
        "PEM CA a follower checks the leader's API certificate with; unset: the system's CAs."),
    Key("raft.host", HOST, "0.0.0.0", "RAFT_HOST",
        "Interface the peer (Raft) transport listens on."),
    Key("raft.port", PORT, 7000, "RAFT_PORT",
        "Port of the peer (Raft) transport."),
    Key("raft.advertise_host", optional(HOST), None, "RAFT_ADVERTISE_HOST",
        "Host peers use to reach this node; unset means raft.host."),
    Key("raft.heartbeat_interval", DURATION, "100ms", None,
        "How often the leader sends heartbeats."),
    Key("raft.election_timeout", DURATION, "1s", None,
        "Leader silence before a follower campaigns; at least 3x raft.heartbeat_interval."),
    Key("raft.snapshot_threshold_entries", _COUNT, 10000, None,
        "Entries applied since the last snapshot that trigger a new one."),
    Key("raft.snapshot_keep_entries", integer(0), 1000, None,
        "Entries kept below a snapshot, so a follower a little behind catches up by log."),
    Key("raft.max_inflight", _COUNT, 256, None,
        "Append messages in flight to one follower before waiting for replies."),
    Key("raft.max_entries_per_msg", _COUNT, 1024, None,
        "Most log entries in one append message."),
    Key("raft.max_bytes_per_msg", SIZE, "1MiB", None,
        "Most bytes of log entries in one append message.",
        attr_override="max_bytes_per_msg"),
    Key("raft.tls_cert", optional(FILE), None, "RAFT_TLS_CERT",
        "PEM certificate this node shows peers; with raft.tls_key and raft.tls_ca: mutual TLS."),
    Key("raft.tls_key", optional(FILE), None, "RAFT_TLS_KEY",
        "PEM private key (unencrypted) of raft.tls_cert."),
    Key("raft.tls_ca", optional(FILE), None, "RAFT_TLS_CA",
        "PEM CA of every node's raft.tls_cert; a peer without a certificate it signed is refused."),
    Key("cluster.members", MEMBERS, [], "PEERS",
        f"Voting members {{id, raft_address, http_address}}, env form {PEERS_FORMAT},...; "
        "or Raft addresses alone (host:port,...), the ids learned from the peers."),
    Key("cluster.bootstrap_expect", optional(_COUNT), None, "BOOTSTRAP_EXPECT",
        "Nodes a new cluster forms with, this one included; unset: every member listed, "
        "else cluster.replicas, else 1."),
    Key("cluster.secret", optional(SECRET), None, "CLUSTER_SECRET",
        "Shared secret peers authenticate with (16+ characters); needed by multi-node clusters "
        "(host:port members without it: unauthenticated, with a warning).",
        secret=True),
    Key("cluster.join_token", optional(SECRET), None, "AUTH_TOKEN",
        "Bearer token that may change the membership (/join, /leave, /cluster/members/...), "
        "as the cluster secret may.",
        secret=True),
    Key("cluster.discovery", DISCOVERY, "static", "DISCOVERY_STRATEGY",
        "static (or none): members are cluster.members; dns: looked up under "
        "cluster.dns_service."),
    Key("cluster.dns_service", optional(HOST), None, "DNS_SERVICE",
        "Headless service of the StatefulSet; dns discovery: members <pod>.<this service>."),
    Key("cluster.replicas", optional(_COUNT), None, "REPLICAS",
        "With dns discovery: the StatefulSet's replicas; pods <name>-0 .. <name>-(n-1)."),
    Key("cluster.id", optional(NODE_ID), None, "CLUSTER_ID",
        "Id of the cluster this node belongs to; peers with another are refused. Set by "
        "scheduled-db restore and recover (the data directory keeps it); give it to the "
        "nodes that join such a cluster."),
    Key("scheduler.slot_gap", DURATION, "10s", "SLOT_GAP",
        "Width of the time slots due jobs are grouped into."),
    Key("scheduler.hot_window", DURATION, "60s", None,
        "How far ahead the leader holds due jobs in memory; at least scheduler.slot_gap."),
    Key("scheduler.claim_ahead", DURATION, "2s", None,
        "How long before an occurrence is due the leader proposes its claim through Raft."),
    Key("queue.job_limit", _COUNT, 100000, "QUEUE_JOB_LIMIT",
        "Most pending jobs the cluster holds; creating more is refused."),
    Key("queue.memory_limit", SIZE, "512MiB", "QUEUE_MEMORY_LIMIT",
        "Budget for the total size of pending jobs; creating a job beyond it is refused."),
    Key("queue.memory_percent", optional(_PERCENT), None, "QUEUE_MEMORY_PERCENT",
        "If set, the budget is this percent of system memory instead of queue.memory_limit."),
    Key("execution.timeout", DURATION, "30s", "JOB_EXECUTION_TIMEOUT",
        "Timeout of one webhook delivery attempt."),
    Key("execution.inprogress_timeout", DURATION, "5m", "JOB_INPROGRESS_TIMEOUT",
        "A claimed run with no outcome for this long is lost; at least execution.timeout."),
    Key("execution.max_attempts", _COUNT, 3, "MAX_EXECUTION_ATTEMPTS",
        "Delivery attempts of one run before it is marked failed."),
    Key("execution.history_retention", DURATION, "720h", "EXECUTION_HISTORY_RETENTION",
        "How long records of execution attempts are kept."),
    Key("execution.backoff_base", DURATION, "1s", None,
        "Delay before the first retry; it doubles with each further retry."),
    Key("execution.backoff_cap", DURATION, "60s", None,
        "Longest delay between retries; at least execution.backoff_base."),
    Key("execution.concurrency", _COUNT, 4096, None,
        "Most webhook requests in flight at once (a socket each); at most half the fd limit."),
    Key("execution.per_destination", _COUNT, 128, None,
        "Most webhook requests in flight to one origin; timeouts there cut it, down to 1."),
    Key("execution.delivery_workers", integer(0, 32), 0, None,
        "Worker processes that send webhooks, each with its own GIL (0: the node's own process)."),
    Key("health.failure_threshold", number(0, 1), 0.1, "HEALTH_FAILURE_THRESHOLD",
        "Share of recent runs that may fail before the health check reports unhealthy."),
    Key("webhooks.signing_secrets", NAMED_SECRETS, {}, "WEBHOOK_SIGNING_SECRETS",
        f"Named secrets a job may sign with (signing_secret_ref); env form {NAMED_FORMAT},...",
        secret=True),
    Key("webhooks.signing_secret", optional(SECRET), None, "WEBHOOK_SIGNING_SECRET",
        "If set, every delivery carries X-Scheduled-DB-Signature (see docs/webhooks.md).",
        secret=True),
    Key("webhooks.header_secrets", NAMED_SECRETS, {}, "WEBHOOK_HEADER_SECRETS",
        f"Named header values a job's headers may use (secret_ref); env form {NAMED_FORMAT},...",
        secret=True),
    Key("webhooks.signature_scheme", SIGNATURE_SCHEME, "scheduled-db", "WEBHOOK_SIGNATURE_SCHEME",
        "scheduled-db (X-Scheduled-DB-Signature) or standard (the Standard Webhooks "
        "webhook-id, webhook-timestamp and webhook-signature headers)."),
    Key("webhooks.per_destination_rate", number(0, 1_000_000), 0, "WEBHOOK_PER_DESTINATION_RATE",
        "Most deliveries a second to one origin (0: no cap); the rest wait, never dropped."),
    Key("webhooks.allow_private", BOOL, False, "WEBHOOK_ALLOW_PRIVATE",
        "Deliver to loopback, private, link-local... addresses too (the SSRF guard off)."),
    Key("webhooks.allow_networks", NETWORKS, [], "WEBHOOK_ALLOW_NETWORKS",
        "CIDRs webhooks may reach although private (e.g. 10.1.0.0/16); docs/webhooks.md."),
    Key("metrics.port", integer(0, 65535), 9090, "METRICS_PORT",
        "Port of the Prometheus /metrics endpoint; 0 disables it."),
    Key("log.level", LOG_LEVEL, "INFO", "LOG_LEVEL",
        "DEBUG, INFO, WARN (or WARNING) or ERROR, in any case."),
    Key("log.json", BOOL, False, "LOG_JSON",
        "Write log lines as JSON objects instead of text."),
)
# fmt: on

KEYS_BY_PATH = MappingProxyType({key.path: key for key in KEYS})
KEYS_BY_ENV = MappingProxyType({key.env: key for key in KEYS if key.env})

# Tracing is configured with OpenTelemetry's own standard variables, not keys: the
# SDK reads them itself (operators and collectors already speak them), and the node
# only looks whether an endpoint is set (actors/runtime/tracing.py).  Listed here so
# that the configuration page documents them and no other variable passes for one.
# Unknown variables are never refused (the environment is shared), so neither are these.
TRACING_ENV = MappingProxyType(
    {
        "OTEL_EXPORTER_OTLP_ENDPOINT": (
            "Turns tracing on: spans go over OTLP/HTTP to this base URL (`/v1/traces` "
            "appended). Needs `pip install 'scheduled-db[otel]'`."
        ),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": (
            "The same for traces alone, a full URL (nothing appended); wins over the above."
        ),
        "OTEL_EXPORTER_OTLP_PROTOCOL": (
            "Only `http/protobuf` (the default) is supported: any other value stops start-up."
        ),
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "As above, for traces alone.",
        "OTEL_EXPORTER_OTLP_HEADERS": (
            "Headers sent with each export (`key=value,...`), e.g. a collector's API key."
        ),
        "OTEL_SERVICE_NAME": "The service name on every span (default `scheduled-db`).",
        "OTEL_RESOURCE_ATTRIBUTES": (
            "More resource attributes (`key=value,...`); `service.instance.id` is the node id."
        ),
        "OTEL_TRACES_SAMPLER": (
            "Which traces are kept (default `parentbased_always_on`: all, or as the caller's "
            "`traceparent` says)."
        ),
        "OTEL_TRACES_SAMPLER_ARG": "The sampler's argument (the ratio of `traceidratio`).",
        "OTEL_BSP_SCHEDULE_DELAY": "Milliseconds between exports of finished spans (5000).",
        "OTEL_SDK_DISABLED": "`true` keeps tracing off even with an endpoint set.",
    }
)
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(key.section for key in KEYS))

_HEADER = """\
# scheduled-db node configuration: every key, set to its default.
#
# Precedence: command-line flags > environment variables > this file > defaults.
# Durations: 250ms, 10s, 5m, 720h, 1h30m, or a number of seconds.
# Sizes: 512KiB, 500MB, 2GB (KB/MB/GB are binary, like KiB/MiB/GiB), or bytes.
# Unknown keys are an error; unset optional keys are written as null.
"""

_MEMBERS_EXAMPLE = """\
  # For example:
  # members:
  #   - {id: node-1, raft_address: "10.0.0.1:7000", http_address: "10.0.0.1:8080"}
  #   - {id: node-2, raft_address: "10.0.0.2:7000", http_address: "10.0.0.2:8080"}
"""


def _key_block(key: Key) -> str:
    origins = f"env {key.env}, flag {key.flag}" if key.env else f"flag {key.flag}"
    # JSON is a subset of YAML's flow style, and quoting every string keeps values
    # such as "*" (an alias marker) and "0.0.0.0" from being read as anything else.
    value = json.dumps(key.default)
    block = f"  # {key.help}\n  # {key.kind.name}; {origins}\n  {key.name}: {value}\n"
    return block + _MEMBERS_EXAMPLE if key.path == "cluster.members" else block


def default_yaml() -> str:
    """The embedded default configuration as YAML, every key commented.

    ``config/single-node.yaml`` is this text; loading it gives the same ``NodeConfig``
    as loading no file at all.
    """
    blocks = [_HEADER]
    for section in SECTIONS:
        keys = [_key_block(key) for key in KEYS if key.section == section]
        blocks.append(f"\n{section}:\n" + "".join(keys))
    return "".join(blocks)
