"""The original (Go) scheduled-db's environment variables and flags, and what each does here.

Users arrive with the original's compose files, Kubernetes manifests and command
lines.  Every setting the original read (and a few its files set but never read)
is listed in :data:`ORIGINAL`, with one of four treatments:

- ``KEY``: one of our keys reads the very same variable (``Key.env``), so it works
  as it did, or as near as ``docs/migrating.md`` says;
- ``ALIAS``: another name for one of our keys (``STATIC_PEERS`` is ``PEERS``);
- ``IGNORED``: accepted, with a WARNING at start saying why nothing here needs it
  (a tuning knob of a structure this implementation does not have);
- ``REFUSED``: start-up stops with one line naming it, because what it asks for
  does not exist here and quietly running without it could surprise (the node's
  memory use, which jobs it keeps where).

Each has the flag the original took for it, if any (Go's ``flag`` package: ``-name``
or ``--name``, ``=value`` or a separate argument); the CLI translates those.

Like the rest of the configuration this reads no environment itself: the loader
passes the environment in.  An empty value counts as unset, as in the original.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Treatment(StrEnum):
    """What this implementation does with one of the original's settings."""

    KEY = "key"
    ALIAS = "alias"
    IGNORED = "ignored"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class OriginalSetting:
    """One environment variable of the original, its flag, and its treatment here.

    ``path`` is the key it sets (``KEY``, ``ALIAS``); ``reason`` says why it is
    ignored or refused, and what to use instead; ``flag`` is the original's flag
    name without dashes; ``takes_value`` is false for the original's boolean flags;
    ``ignores`` says which values an ``IGNORED`` setting ignores (the others mean
    here what they meant there: see ``OTEL_EXPORTER_OTLP_ENDPOINT``).
    """

    env: str
    treatment: Treatment
    path: str | None = None
    reason: str = ""
    flag: str | None = None
    takes_value: bool = True
    ignores: Callable[[str], bool] = field(default=lambda value: True)


def _key(env: str, path: str, flag: str | None = None) -> OriginalSetting:
    return OriginalSetting(env, Treatment.KEY, path, flag=flag)


def _alias(env: str, path: str, flag: str | None = None) -> OriginalSetting:
    return OriginalSetting(env, Treatment.ALIAS, path, flag=flag)


def _ignored(
    env: str,
    reason: str,
    flag: str | None = None,
    ignores: Callable[[str], bool] = lambda value: True,
) -> OriginalSetting:
    return OriginalSetting(env, Treatment.IGNORED, reason=reason, flag=flag, ignores=ignores)


OTLP_DISABLED = "disabled"  # the original's value for "no OpenTelemetry export"


def otlp_url(value: str) -> bool:
    """Whether an OTLP endpoint is a URL, the form tracing here exports to (OTLP/HTTP)."""
    return value.strip().lower().startswith(("http://", "https://"))


def _original_otlp_form(value: str) -> bool:
    """The original's gRPC ``host:port`` (its default was ``otel-collector:4317``): not a
    URL, and not ``disabled``, which means here what it meant there (no export)."""
    return not otlp_url(value) and value.strip().lower() != OTLP_DISABLED


def _refused(
    env: str, reason: str, flag: str | None = None, takes_value: bool = True
) -> OriginalSetting:
    return OriginalSetting(
        env, Treatment.REFUSED, reason=reason, flag=flag, takes_value=takes_value
    )


_NO_WHEEL = "there is no timing wheel to tune here: due jobs are held for scheduler.hot_window"
_SPILL = (
    "not supported: every job is on disk (RocksDB) and only scheduler.hot_window of due "
    "jobs is held in memory, so there is nothing to spill; remove it"
)
_NOT_READ = "the original never read it either"

# fmt: off
ORIGINAL: tuple[OriginalSetting, ...] = (
    _key("NODE_ID", "node.id", "node-id"),
    _key("DATA_DIR", "node.data_dir", "data-dir"),
    _key("RAFT_HOST", "raft.host", "raft-host"),
    _key("RAFT_PORT", "raft.port", "raft-port"),
    _key("RAFT_ADVERTISE_HOST", "raft.advertise_host", "raft-advertise-host"),
    _key("HTTP_HOST", "http.host", "http-host"),
    _key("HTTP_PORT", "http.port", "http-port"),
    _key("PEERS", "cluster.members", "peers"),
    _alias("STATIC_PEERS", "cluster.members"),
    _key("BOOTSTRAP_EXPECT", "cluster.bootstrap_expect", "bootstrap-expect"),
    _key("DISCOVERY_STRATEGY", "cluster.discovery", "discovery-strategy"),
    _alias("KUBERNETES_SERVICE_NAME", "cluster.dns_service", "kubernetes-service-name"),
    _alias("CLUSTER_SIZE", "cluster.replicas"),
    _key("AUTH_TOKEN", "cluster.join_token", "auth-token"),
    _key("SLOT_GAP", "scheduler.slot_gap", "slot-gap"),
    _key("JOB_EXECUTION_TIMEOUT", "execution.timeout", "execution-timeout"),
    _key("JOB_INPROGRESS_TIMEOUT", "execution.inprogress_timeout", "inprogress-timeout"),
    _key("MAX_EXECUTION_ATTEMPTS", "execution.max_attempts", "max-attempts"),
    _key("EXECUTION_HISTORY_RETENTION", "execution.history_retention", "history-retention"),
    _key("HEALTH_FAILURE_THRESHOLD", "health.failure_threshold", "health-failure-threshold"),
    _key("QUEUE_MEMORY_LIMIT", "queue.memory_limit", "queue-memory-limit"),
    _key("QUEUE_MEMORY_PERCENT", "queue.memory_percent", "queue-memory-percent"),
    _key("QUEUE_JOB_LIMIT", "queue.job_limit", "queue-job-limit"),
    _key("MAX_REQUEST_BODY_SIZE", "http.max_body", "max-request-body-size"),
    _key("HTTP_READ_TIMEOUT", "http.body_timeout", "http-read-timeout"),
    _key("HTTP_IDLE_TIMEOUT", "http.idle_timeout", "http-idle-timeout"),
    _key("LOG_LEVEL", "log.level"),
    _ignored("HTTP_READ_HEADER_TIMEOUT",
             "request headers are bounded by http.idle_timeout", "http-read-header-timeout"),
    _ignored("HTTP_WRITE_TIMEOUT",
             "there is no write timeout here: answers are small JSON written at once",
             "http-write-timeout"),
    _ignored("KUBERNETES_NAMESPACE",
             "dns discovery resolves the service's short name in the pod's own namespace",
             "kubernetes-namespace"),
    *(_ignored(f"HTW_LEVEL{n}_{part.upper()}", _NO_WHEEL, f"htw-level{n}-{part}")
      for n in range(3) for part in ("granularity", "buckets")),
    _ignored("RAFT_APPLY_TIMEOUT",
             "a write waits up to 10 s for its entry to apply, then answers 503 unknown_outcome"),
    _ignored("RAFT_TRANSPORT_TIMEOUT",
             "peer connections time out after 5 s in the handshake and 10 s on a stalled write"),
    *(_ignored(f"CLUSTER_NODE_{n}",
               "peers' HTTP addresses come from PEERS (id=raft=http) or the peer handshake")
      for n in range(1, 11)),
    _ignored("POD_IP", "set RAFT_ADVERTISE_HOST to the pod's IP or name instead"),
    _ignored("CLUSTER_DOMAIN", "read only by the original's kubernetes discovery"),
    _ignored("OTEL_EXPORTER_OTLP_ENDPOINT",
             "its gRPC form host:port is not exported to: tracing here is OTLP over HTTP, "
             "turned on by a URL (http://collector:4318) with the otel extra installed; "
             "disabled means no export, as it did there",
             ignores=_original_otlp_form),
    _ignored("HEALTH_CHECK_INTERVAL", _NOT_READ),
    _ignored("AUTO_JOIN", f"{_NOT_READ}; listed members form the cluster by themselves, "
             "others are added with POST /join"),
    _refused("ENABLE_COLD_SPILLING", _SPILL, "enable-cold-spilling", takes_value=False),
    _refused("COLD_SPILLING_HOT_WINDOW", _SPILL, "cold-spilling-hot-window"),
    _refused("COLD_SPILLING_CHECK_INTERVAL", _SPILL, "cold-spilling-check-interval"),
)
# fmt: on

ORIGINAL_BY_ENV: Mapping[str, OriginalSetting] = MappingProxyType({s.env: s for s in ORIGINAL})
ORIGINAL_BY_FLAG: Mapping[str, OriginalSetting] = MappingProxyType(
    {s.flag: s for s in ORIGINAL if s.flag}
)

# DISCOVERY_STRATEGY values of the original that have no counterpart here.
REFUSED_DISCOVERY = {
    "kubernetes": "use dns (DISCOVERY_STRATEGY=dns with DNS_SERVICE and REPLICAS)",
    "kubernetes_dns": "use dns (DISCOVERY_STRATEGY=dns with DNS_SERVICE and REPLICAS)",
    "kubernetes_dns_srv": "use dns (DISCOVERY_STRATEGY=dns with DNS_SERVICE and REPLICAS)",
    "dns_srv": "use dns (DISCOVERY_STRATEGY=dns with DNS_SERVICE and REPLICAS)",
    "gossip": "list the members instead (STATIC_PEERS or PEERS, static discovery)",
}


def given(environ: Mapping[str, str], name: str) -> str | None:
    """The value of ``name``, or None when unset or empty (the original's rule)."""
    value = environ.get(name, "")
    return value if value.strip() else None


def refused_in(environ: Mapping[str, str]) -> OriginalSetting | None:
    """The first refused setting the environment sets, if any."""
    return next(
        (s for s in ORIGINAL if s.treatment is Treatment.REFUSED and given(environ, s.env)), None
    )


def ignored_in(environ: Mapping[str, str]) -> list[OriginalSetting]:
    """The ignored settings the environment sets (each worth a WARNING at start)."""
    found = []
    for setting in ORIGINAL:
        value = given(environ, setting.env)
        if setting.treatment is Treatment.IGNORED and value is not None and setting.ignores(value):
            found.append(setting)
    return found


def aliases_in(environ: Mapping[str, str]) -> list[tuple[OriginalSetting, str]]:
    """The alias settings the environment sets, with their values."""
    found = []
    for setting in ORIGINAL:
        value = given(environ, setting.env)
        if setting.treatment is Treatment.ALIAS and value is not None:
            found.append((setting, value))
    return found


def notice(setting: OriginalSetting, source: str) -> str:
    """The WARNING line for an ignored setting; ``source`` is "env X" or "flag -x"."""
    return f"{source} (a setting of the original scheduled-db) is ignored: {setting.reason}"
