"""Node configuration, parsed once into frozen, typed objects.

Four sources, highest precedence first:

1. command-line flags, passed in as ``{"http.port": "8081", ...}`` keyed by dotted
   path (the CLI derives one flag per key from ``KEYS``: ``--http-port``); a value
   of ``None`` means the flag was not given;
2. environment variables (``HTTP_PORT``...; see ``Key.env``).  Variables the table
   does not name are ignored, as the environment is shared with everything else; a
   variable set to the empty string counts as unset, as in the original project;
3. the YAML file, one mapping per section (``http: {port: 8081}``);
4. the defaults in ``KEYS`` (the same values ``config/single-node.yaml`` spells out).

Every value given is checked, in whichever source it is, so a bad line in a file is
reported even when an env var overrides it.  Durations are held as integer
milliseconds (attributes end in ``_ms``), sizes as integer bytes (``_bytes``); the
objects themselves are in ``scheduled_db.config.model`` and re-exported here.

``cluster.members`` is a YAML list of ``{id, raft_address, http_address}``; as an env
var (``PEERS``) or a flag it is one string of comma-separated members, each written
``id=raft_host:port=http_host:port``, for example::

    PEERS=node-1=10.0.0.1:7000=10.0.0.1:8080,node-2=10.0.0.2:7000=10.0.0.2:8080

This module reads no files and no environment itself: ``load_config`` is a pure
function of what the caller passes in.  Every problem is a ``ConfigError`` whose
``str()`` is one line naming the key.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # no stubs in the toolchain

from scheduled_db.config import original
from scheduled_db.config.discovery import dns_members
from scheduled_db.config.keys import KEYS, KEYS_BY_ENV, KEYS_BY_PATH, SECTIONS, Key, default_yaml
from scheduled_db.config.kinds import (
    NOT_SHOWN,
    PEERS_FORMAT,
    Address,
    Discovery,
    Invalid,
    Member,
)
from scheduled_db.config.model import (
    ApiConfig,
    ClusterConfig,
    ExecutionConfig,
    HealthConfig,
    HttpConfig,
    IdentityConfig,
    LogConfig,
    MetricsConfig,
    NodeConfig,
    QueueConfig,
    RaftConfig,
    SchedulerConfig,
    WebhooksConfig,
)
from scheduled_db.config.units import format_duration_ms
from scheduled_db.jobs.validation import header_value_ok
from scheduled_db.policy.signing import Scheme, standard_key

__all__ = [
    "KEYS",
    "KEYS_BY_ENV",
    "KEYS_BY_PATH",
    "PEERS_FORMAT",
    "Address",
    "ApiConfig",
    "ClusterConfig",
    "ConfigError",
    "Discovery",
    "ExecutionConfig",
    "HealthConfig",
    "HttpConfig",
    "IdentityConfig",
    "Key",
    "LogConfig",
    "Member",
    "MetricsConfig",
    "NodeConfig",
    "QueueConfig",
    "RaftConfig",
    "SchedulerConfig",
    "default_yaml",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration problem.  ``str()`` is one line: ``config: <key>: <problem>``.

    ``key`` is the dotted path at fault, or ``None`` when the problem is the file
    itself (malformed YAML, an unknown key).
    """

    def __init__(self, key: str | None, problem: str) -> None:
        self.key = key
        self.problem = problem
        line = f"config: {key}: {problem}" if key else f"config: {problem}"
        super().__init__(line.replace("\r", " ").replace("\n", " "))


_SECTION_TYPES: dict[str, Callable[..., object]] = {
    "node": IdentityConfig,
    "http": HttpConfig,
    "api": ApiConfig,
    "raft": RaftConfig,
    "cluster": ClusterConfig,
    "scheduler": SchedulerConfig,
    "queue": QueueConfig,
    "execution": ExecutionConfig,
    "health": HealthConfig,
    "webhooks": WebhooksConfig,
    "metrics": MetricsConfig,
    "log": LogConfig,
}


def load_config(
    argv_overrides: Mapping[str, object],
    environ: Mapping[str, str],
    yaml_text: str | None,
    source_name: str,
) -> NodeConfig:
    """Merge flags > environment > YAML text > defaults into a checked ``NodeConfig``.

    ``yaml_text`` is the file's content (``None``: no file; the defaults apply) and
    ``source_name`` how to name it in errors.  Raises ``ConfigError``.
    """
    _refuse_original(environ)
    in_file = f"in {source_name}"
    env_values, env_names = _env_values(environ)
    layers = (
        _parse_layer(_default_values(), lambda key: "in the defaults"),
        _parse_layer(_yaml_values(yaml_text, source_name), lambda key: in_file),
        _parse_layer(env_values, lambda key: f"from env {env_names[key.path]}"),
        _parse_layer(_argv_values(argv_overrides), lambda key: f"from {key.flag}"),
    )
    merged: dict[str, object] = {}
    for layer in layers:
        merged.update(layer)
    config = _build(_discover(_fill_derived(merged)))
    _check(config)
    return config


# --- the sources ------------------------------------------------------------------------


def _default_values() -> dict[str, object]:
    return {key.path: key.default for key in KEYS}


def _env_values(environ: Mapping[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """``{path: value}`` from the environment, and the variable each came from: a key's
    own, or an alias the original used (``STATIC_PEERS`` for ``PEERS``)."""
    values: dict[str, object] = {}
    names: dict[str, str] = {}
    for key in KEYS:
        if key.env and original.given(environ, key.env) is not None:
            values[key.path], names[key.path] = environ[key.env], key.env
    for setting, value in original.aliases_in(environ):
        path = str(setting.path)
        if path in values and str(values[path]).strip() != value.strip():
            problem = f"env {setting.env} and env {names[path]} both set it, differently: set one"
            raise ConfigError(path, problem)
        values.setdefault(path, value)
        names.setdefault(path, setting.env)
    return values, names


def _refuse_original(environ: Mapping[str, str]) -> None:
    """A setting of the original that has no counterpart here stops start-up."""
    refused = original.refused_in(environ)
    if refused is not None:
        raise ConfigError(None, f"env {refused.env}: {refused.reason}")


def _argv_values(overrides: Mapping[str, object]) -> dict[str, object]:
    for path in overrides:
        if path not in KEYS_BY_PATH:
            raise ConfigError(None, f'unknown key "{path}" on the command line{_hint(path)}')
    return {path: value for path, value in overrides.items() if value is not None}


def _yaml_values(text: str | None, source: str) -> dict[str, object]:
    """The file as ``{dotted path: raw value}``, refusing any key the table lacks."""
    data = None if text is None else _read_yaml(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        problem = f"the top level must be a mapping of sections (got {_show(data)})"
        raise ConfigError(None, f"{source}: {problem}")
    values: dict[str, object] = {}
    for section, body in data.items():
        if section not in SECTIONS:
            raise ConfigError(None, f'unknown key "{section}" in {source}{_hint(section)}')
        if body is None:  # an empty section ("http:" alone) sets nothing
            continue
        if not isinstance(body, dict):
            raise ConfigError(section, f"must be a mapping of keys (got {_show(body)} in {source})")
        for name, value in body.items():
            path = f"{section}.{name}"
            if path not in KEYS_BY_PATH:
                raise ConfigError(None, f'unknown key "{path}" in {source}{_hint(path)}')
            values[path] = value
    return values


def _read_yaml(text: str, source: str) -> object:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:  # an empty file, or one with only comments
            return None
        _reject_duplicate_keys(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(None, f"invalid YAML in {source}: {_yaml_problem(exc)}") from None
    finally:
        loader.dispose()


def _reject_duplicate_keys(root: Any, source: str) -> None:
    """PyYAML keeps the last of two equal keys; a config file that says both is a mistake."""
    pending, visited = [root], set()
    while pending:
        node = pending.pop()
        if id(node) in visited:  # aliases share nodes and may even form cycles
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            names: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in names:
                        line = key_node.start_mark.line + 1
                        raise ConfigError(
                            None, f'duplicate key "{key_node.value}" in {source} at line {line}'
                        )
                    names.add(key_node.value)
                pending.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def _yaml_problem(exc: Any) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _hint(name: object) -> str:
    close = difflib.get_close_matches(str(name), [*SECTIONS, *KEYS_BY_PATH], n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


# --- parsing and building ---------------------------------------------------------------


def _parse_layer(raw: Mapping[str, object], source: Callable[[Key], str]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for path, value in raw.items():
        key = KEYS_BY_PATH[path]
        try:
            parsed[path] = key.kind.parse(value)
        except ValueError as exc:
            got = exc.got if isinstance(exc, Invalid) else value
            raise ConfigError(path, f"{exc} ({_got(key, got)}{source(key)})") from None
    return parsed


def _got(key: Key, value: object) -> str:
    if value is NOT_SHOWN:
        return ""
    return "got <hidden> " if key.secret else f"got {_show(value)} "


def _show(value: object) -> str:
    """A value as the user wrote it, on one line and cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # circular structures, through YAML aliases
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fill_derived(merged: dict[str, object]) -> dict[str, object]:
    """Defaults that depend on other keys, resolved once every source is merged."""
    if merged["raft.advertise_host"] is None:
        merged["raft.advertise_host"] = merged["raft.host"]
    members = merged["cluster.members"]
    addresses_only = bool(members) and isinstance(members, tuple) and _are_addresses(members)
    if merged["cluster.bootstrap_expect"] is None and not addresses_only:
        count = len(members) if isinstance(members, tuple) else 0
        merged["cluster.bootstrap_expect"] = count or merged["cluster.replicas"] or 1
    return merged


def _are_addresses(members: tuple[object, ...]) -> bool:
    return all(isinstance(m, Address) for m in members)


def _discover(merged: dict[str, object]) -> dict[str, object]:
    """With dns discovery and no members listed: the StatefulSet's members."""
    if merged["cluster.discovery"] is not Discovery.DNS or merged["cluster.members"]:
        return merged
    service, replicas = merged["cluster.dns_service"], merged["cluster.replicas"]
    if service is None:
        raise ConfigError("cluster.dns_service", "must be set when cluster.discovery is dns")
    if replicas is None:
        raise ConfigError("cluster.replicas", "must be set when cluster.discovery is dns")
    node_id, raft_port, http_port = merged["node.id"], merged["raft.port"], merged["http.port"]
    assert isinstance(replicas, int) and isinstance(raft_port, int) and isinstance(http_port, int)
    try:
        members = dns_members(str(node_id), str(service), replicas, raft_port, http_port)
    except ValueError as exc:
        raise ConfigError("node.id", str(exc)) from None
    merged["cluster.members"] = members
    return merged


def _build(merged: Mapping[str, object]) -> NodeConfig:
    sections: dict[str, Any] = {}
    for section, make in _SECTION_TYPES.items():
        values = {k.attr: merged[k.path] for k in KEYS if k.section == section}
        members = values.get("members")
        if section == "cluster" and isinstance(members, tuple) and _are_addresses(members):
            values["members"], values["peer_addresses"] = (), members
        sections[section] = make(**values)
    return NodeConfig(**sections)


# --- rules across keys ------------------------------------------------------------------


def _check(config: NodeConfig) -> None:
    for rule in _RULES:
        rule(config)


def _at_least(path: str, value_ms: int, other: str, other_ms: int, factor: int = 1) -> None:
    if value_ms < other_ms * factor:
        times = f"{factor}x " if factor != 1 else ""
        got = f"got {format_duration_ms(value_ms)}, {other} is {format_duration_ms(other_ms)}"
        raise ConfigError(path, f"must be at least {times}{other} ({got})")


def _check_timings(c: NodeConfig) -> None:
    # An election timeout close to the heartbeat interval makes followers campaign
    # on a single late heartbeat, so leadership churns under ordinary jitter.
    _at_least(
        "raft.election_timeout",
        c.raft.election_timeout_ms,
        "raft.heartbeat_interval",
        c.raft.heartbeat_interval_ms,
        factor=3,
    )
    _at_least(
        "scheduler.hot_window",
        c.scheduler.hot_window_ms,
        "scheduler.slot_gap",
        c.scheduler.slot_gap_ms,
    )
    ex = c.execution
    # A run declared lost while its delivery may still be under way would be fired twice.
    _at_least(
        "execution.inprogress_timeout", ex.inprogress_timeout_ms, "execution.timeout", ex.timeout_ms
    )
    _at_least(
        "execution.backoff_cap", ex.backoff_cap_ms, "execution.backoff_base", ex.backoff_base_ms
    )


def _check_webhook_secrets(c: NodeConfig) -> None:
    """Under the Standard Webhooks scheme a ``whsec_`` secret is base64, and a header
    secret is a header value: say so at start-up, not at the first delivery."""
    for name, value in c.webhooks.header_secrets.items():
        if not header_value_ok(value):
            problem = "must be printable ASCII with no line breaks (a header value; not shown)"
            raise ConfigError(f"webhooks.header_secrets.{name}", problem)
    if c.webhooks.signature_scheme is not Scheme.STANDARD:
        return
    named = {f"webhooks.signing_secrets.{k}": v for k, v in c.webhooks.signing_secrets.items()}
    for path, secret in {"webhooks.signing_secret": c.webhooks.signing_secret, **named}.items():
        if secret is None:
            continue
        try:
            standard_key(secret.encode())
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None


def _check_membership(c: NodeConfig) -> None:
    members = c.cluster.members
    if c.cluster.peer_addresses:
        _check_addresses(c)
        return
    if members and c.cluster.member(c.node.id) is None:
        listed = ", ".join(m.id for m in members)
        raise ConfigError("node.id", f'"{c.node.id}" is not one of cluster.members ({listed})')
    expect = c.cluster.bootstrap_expect
    if members and expect is not None and expect > len(members):
        problem = f"must be at most the {len(members)} cluster.members (got {expect})"
        raise ConfigError("cluster.bootstrap_expect", problem)
    if (len(members) > 1 or c.cluster.discovery is Discovery.DNS) and c.cluster.secret is None:
        problem = "must be set (env CLUSTER_SECRET) for a cluster of more than one node"
        raise ConfigError("cluster.secret", problem)


def _check_addresses(c: NodeConfig) -> None:
    """Members given by Raft address alone: the cluster forms with every node they
    reach, so bootstrap_expect (which counts this node) can only say how many that is:
    the addresses listed, or one more if this node is not among them."""
    expect, listed = c.cluster.bootstrap_expect, len(c.cluster.peer_addresses)
    if expect is None:
        return
    self_listed = c.raft.advertise_address in c.cluster.peer_addresses
    allowed = (listed,) if self_listed else (listed, listed + 1)
    if expect not in allowed:
        among = "this node among them" if self_listed else "this node among them or not"
        wanted = " or ".join(str(n) for n in allowed)
        problem = (
            f"must be {wanted}: it counts this node, and {listed} Raft addresses are listed "
            f"({among}); a cluster forms with every node they reach (got {expect})"
        )
        raise ConfigError("cluster.bootstrap_expect", problem)


def _check_ports(c: NodeConfig) -> None:
    # Two listeners on one port would fail at bind time with a less helpful message.
    if c.raft.port == c.http.port:
        raise ConfigError("raft.port", f"must differ from http.port (both {c.http.port})")
    for other, port in (("http.port", c.http.port), ("raft.port", c.raft.port)):
        if c.metrics.port == port:
            raise ConfigError("metrics.port", f"must differ from {other} (both {port})")


def _check_tls(c: NodeConfig) -> None:
    # Half a TLS setup would silently serve (or dial) in the clear; refuse it.
    # Only the pairing is checked here: the node reads the files when it starts.
    _together(("api.tls_cert", c.api.tls_cert), ("api.tls_key", c.api.tls_key))
    if c.api.tls_ca is not None and c.api.tls_cert is None:
        raise ConfigError("api.tls_ca", "is used only with api.tls_cert and api.tls_key set")
    _together(
        ("raft.tls_cert", c.raft.tls_cert),
        ("raft.tls_key", c.raft.tls_key),
        ("raft.tls_ca", c.raft.tls_ca),
    )


def _together(*keys: tuple[str, object]) -> None:
    given = [path for path, value in keys if value is not None]
    missing = [path for path, value in keys if value is None]
    if given and missing:
        together = " and ".join(path for path, _ in keys)
        raise ConfigError(missing[0], f"must be set with {given[0]} ({together} go together)")


_RULES: tuple[Callable[[NodeConfig], None], ...] = (
    _check_timings,
    _check_membership,
    _check_ports,
    _check_tls,
    _check_webhook_secrets,
)
