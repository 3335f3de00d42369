"""scheduled_db.config.loading: sources and precedence, units, every error path, the files."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]  # no stubs in the toolchain

from scheduled_db.config import units
from scheduled_db.config.keys import KEYS_BY_PATH, SECTIONS
from scheduled_db.config.loading import (
    KEYS,
    Address,
    ConfigError,
    Discovery,
    Member,
    NodeConfig,
    default_yaml,
    load_config,
)

ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = ROOT / "config"
SECRET = "a-secret-of-enough-length"
THREE = (
    "node-1=10.0.0.1:7000=10.0.0.1:8080,node-2=10.0.0.2:7000=10.0.0.2:8080,node-3=h3:7000=h3:8080"
)


def load(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    text: str | None = None,
) -> NodeConfig:
    return load_config(flags or {}, env or {}, text, "test.yaml")


def error_of(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    text: str | None = None,
) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(flags, env, text)
    return caught.value


# --- defaults and precedence ----------------------------------------------------------


def test_defaults_without_any_source() -> None:
    c = load()
    assert c.node.id == "node-1" and c.node.data_dir == "./data"
    assert (c.http.host, c.http.port, c.http.max_body_bytes) == ("0.0.0.0", 8080, 1 << 20)
    assert c.http.cors_origins == ("*",)
    assert (c.raft.port, c.raft.advertise_host) == (7000, "0.0.0.0")
    assert (c.raft.heartbeat_interval_ms, c.raft.election_timeout_ms) == (100, 1000)
    assert (c.raft.max_inflight, c.raft.max_entries_per_msg) == (256, 1024)
    assert c.raft.snapshot_threshold_entries == 10000 and c.raft.max_bytes_per_msg == 1 << 20
    assert c.cluster.members == () and c.cluster.bootstrap_expect == 1
    assert c.cluster.secret is None and c.cluster.discovery is Discovery.STATIC
    assert (c.scheduler.slot_gap_ms, c.scheduler.hot_window_ms) == (10_000, 60_000)
    assert (c.queue.job_limit, c.queue.memory_limit_bytes) == (100_000, 512 << 20)
    assert c.queue.memory_percent is None
    ex = c.execution
    assert (ex.timeout_ms, ex.inprogress_timeout_ms, ex.max_attempts) == (30_000, 300_000, 3)
    assert ex.history_retention_ms == 720 * 3_600_000
    assert (ex.backoff_base_ms, ex.backoff_cap_ms, ex.concurrency) == (1000, 60_000, 4096)
    assert ex.per_destination == 128
    assert c.health.failure_threshold == 0.1
    assert c.metrics.port == 9090 and c.metrics.enabled
    assert (c.log.level, c.log.json) == ("INFO", False)


@pytest.mark.parametrize(
    ("path", "env_name", "values", "expected"),
    [
        ("http.port", "HTTP_PORT", ("1001", "1002", "1003"), (1001, 1002, 1003, 8080)),
        ("scheduler.slot_gap", "SLOT_GAP", ("1s", "2s", "3s"), (1000, 2000, 3000, 10_000)),
        ("node.id", "NODE_ID", ("a", "b", "c"), ("a", "b", "c", "node-1")),
        ("log.json", "LOG_JSON", ("yes", "no", "true"), (True, False, True, False)),
    ],
)
def test_flag_beats_env_beats_yaml_beats_default(
    path: str, env_name: str, values: tuple[str, str, str], expected: tuple[object, ...]
) -> None:
    section, name = path.split(".")
    text = f"{section}:\n  {name}: {values[0]!r}\n"
    env = {env_name: values[1]}
    flags = {path: values[2]}

    def get(c: NodeConfig) -> object:
        return getattr(getattr(c, section), KEYS_BY_PATH[path].attr)

    assert get(load(text=text)) == expected[0]
    assert get(load(env=env, text=text)) == expected[1]
    assert get(load(flags, env, text)) == expected[2]
    assert get(load()) == expected[3]


def test_empty_env_var_counts_as_unset() -> None:
    assert (
        load(env={"HTTP_PORT": "", "RAFT_PORT": "  "}, text="http: {port: 1234}").http.port == 1234
    )


def test_unknown_env_vars_are_ignored() -> None:
    assert load(env={"HOME": "/root", "HTTP_PROT": "x", "PATH": "/bin"}) == load()


def test_flag_given_as_none_is_not_given() -> None:
    assert load({"http.port": None}, {"HTTP_PORT": "1234"}).http.port == 1234


def test_flags_accept_typed_values() -> None:
    c = load({"http.port": 1234, "log.json": True, "http.cors_origins": ["a", "b"]})
    assert (c.http.port, c.log.json, c.http.cors_origins) == (1234, True, ("a", "b"))


def test_bad_value_in_file_is_reported_even_when_env_overrides_it() -> None:
    err = error_of(env={"HTTP_PORT": "8081"}, text="http: {port: nope}")
    assert err.key == "http.port" and "test.yaml" in str(err)


def test_error_line_format() -> None:
    err = error_of(env={"HTTP_PORT": "abc"})
    assert str(err) == (
        'config: http.port: must be an integer between 1 and 65535 (got "abc" from env HTTP_PORT)'
    )


def test_env_and_cors_lists_and_log_level_spellings() -> None:
    c = load(env={"LOG_LEVEL": "warn"}, text="http: {cors_origins: 'https://a, https://b'}")
    assert c.log.level == "WARNING"
    assert c.http.cors_origins == ("https://a", "https://b")
    assert load(text="http: {cors_origins: []}").http.cors_origins == ()
    assert load(env={"LOG_LEVEL": "Debug"}).log.level == "DEBUG"


# --- units ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "ms"),
    [
        ("10s", 10_000),
        ("5m", 300_000),
        ("720h", 2_592_000_000),
        ("250ms", 250),
        ("1h30m", 5_400_000),
        ("1m30s500ms", 90_500),
        ("1.5s", 1500),
        ("30", 30_000),
        ("0.1", 100),
        (30, 30_000),
        (0.25, 250),
        (" 2m ", 120_000),
    ],
)
def test_duration_forms(written: object, ms: int) -> None:
    assert units.parse_duration_ms(written) == ms
    assert load({"execution.timeout": written, "execution.inprogress_timeout": "999h"})
    assert (
        load({"scheduler.slot_gap": written, "scheduler.hot_window": "999h"}).scheduler.slot_gap_ms
        == ms
    )


@pytest.mark.parametrize(
    "written", ["", "ten", "abc", "10x", "-5s", "5 m", "1.0001ms", True, None, []]
)
def test_duration_rejects(written: object) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        units.parse_duration_ms(written)


@pytest.mark.parametrize("ms", [1, 250, 1000, 61_000, 5_400_000, 2_592_000_000, 3_723_004])
def test_format_duration_round_trips(ms: int) -> None:
    assert units.parse_duration_ms(units.format_duration_ms(ms)) == ms


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("500MB", 500 << 20),
        ("2GB", 2 << 30),
        ("1KiB", 1024),
        ("1kb", 1024),
        ("512k", 512 << 10),
        ("3MiB", 3 << 20),
        ("1TB", 1 << 40),
        ("1.5KiB", 1536),
        ("100B", 100),
        ("1048576", 1 << 20),
        (4096, 4096),
        ("2 GiB", 2 << 30),
    ],
)
def test_size_forms(written: object, size: int) -> None:
    assert units.parse_size_bytes(written) == size
    assert load({"queue.memory_limit": written}).queue.memory_limit_bytes == size


@pytest.mark.parametrize("written", ["", "MB", "1.5", "1XB", "-1MB", "1 M B", True, 1.5, None])
def test_size_rejects(written: object) -> None:
    with pytest.raises(ValueError, match="must be a size"):
        units.parse_size_bytes(written)


@pytest.mark.parametrize(
    ("written", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True)]
    + [("false", False), ("0", False), ("No", False), ("off", False)],
)
def test_bool_forms_from_env(written: str, value: bool) -> None:
    assert load(env={"LOG_JSON": written}).log.json is value


# --- every error path: one line, naming the key -----------------------------------------

_TWO = "node-1=h1:7000=h1:8080,node-2=h2:7000=h2:8080"
_ERRORS: list[tuple[str, dict[str, object], dict[str, str], str | None, str | None, str]] = [
    # (case id, flags, env, yaml text, ConfigError.key, substring of the line)
    ("port-text-flag", {"http.port": "abc"}, {}, None, "http.port", "from --http-port"),
    ("port-range-yaml", {}, {}, "http: {port: 70000}", "http.port", "got 70000 in test.yaml"),
    ("port-zero", {}, {"RAFT_PORT": "0"}, None, "raft.port", "between 1 and 65535"),
    ("port-bool", {}, {}, "http: {port: true}", "http.port", "got true"),
    ("metrics-negative", {}, {"METRICS_PORT": "-1"}, None, "metrics.port", "between 0 and 65535"),
    (
        "threshold-range",
        {},
        {"HEALTH_FAILURE_THRESHOLD": "2"},
        None,
        "health.failure_threshold",
        "0 to 1",
    ),
    (
        "threshold-nan",
        {},
        {"HEALTH_FAILURE_THRESHOLD": "nan"},
        None,
        "health.failure_threshold",
        "nan",
    ),
    ("percent-zero", {}, {"QUEUE_MEMORY_PERCENT": "0"}, None, "queue.memory_percent", "above 0"),
    (
        "percent-high",
        {},
        {"QUEUE_MEMORY_PERCENT": "101"},
        None,
        "queue.memory_percent",
        "at most 100",
    ),
    ("job-limit", {}, {"QUEUE_JOB_LIMIT": "0"}, None, "queue.job_limit", "integer >= 1"),
    ("attempts", {}, {"MAX_EXECUTION_ATTEMPTS": "x"}, None, "execution.max_attempts", '"x"'),
    ("duration", {}, {"SLOT_GAP": "10 s"}, None, "scheduler.slot_gap", "must be a duration"),
    ("duration-zero", {}, {"JOB_EXECUTION_TIMEOUT": "0s"}, None, "execution.timeout", "positive"),
    ("size", {}, {"QUEUE_MEMORY_LIMIT": "lots"}, None, "queue.memory_limit", "must be a size"),
    ("size-zero", {}, {}, "http: {max_body: 0}", "http.max_body", "positive size"),
    ("bool", {}, {"LOG_JSON": "maybe"}, None, "log.json", "must be a boolean"),
    ("level", {}, {"LOG_LEVEL": "verbose"}, None, "log.level", "DEBUG, INFO"),
    ("discovery", {}, {"DISCOVERY_STRATEGY": "zk"}, None, "cluster.discovery", "static, dns"),
    (
        "discovery-original",
        {},
        {"DISCOVERY_STRATEGY": "gossip"},
        None,
        "cluster.discovery",
        '"gossip" (a strategy of the original) is not supported',
    ),
    ("node-id-space", {}, {"NODE_ID": "node 1"}, None, "node.id", "letters, digits"),
    ("node-id-int", {}, {}, "node: {id: 1}", "node.id", "got 1"),
    ("data-dir-empty", {}, {}, "node: {data_dir: ''}", "node.data_dir", "non-empty"),
    ("host-space", {}, {"HTTP_HOST": "a b"}, None, "http.host", "host name"),
    ("cors", {}, {}, "http: {cors_origins: 5}", "http.cors_origins", "list of strings"),
    ("replicas", {}, {}, "cluster: {replicas: 0}", "cluster.replicas", ">= 1"),
    ("unknown-section", {}, {}, "htpp: {port: 1}", None, 'unknown key "htpp" in test.yaml'),
    ("unknown-key", {}, {}, "http: {prot: 1}", None, 'unknown key "http.prot"'),
    ("unknown-flag", {"http.prot": "1"}, {}, None, None, "on the command line"),
    ("yaml-syntax", {}, {}, "http:\n  port: [1\n", None, "invalid YAML in test.yaml: line"),
    ("yaml-tab", {}, {}, "http:\n\tport: 1\n", None, "invalid YAML"),
    ("yaml-two-docs", {}, {}, "a: 1\n---\nb: 2\n", None, "invalid YAML"),
    ("yaml-python-tag", {}, {}, "http: !!python/object:os.system {}", None, "invalid YAML"),
    ("top-level-list", {}, {}, "- http\n", None, "top level must be a mapping"),
    ("top-level-scalar", {}, {}, "8080", None, "top level must be a mapping"),
    ("section-scalar", {}, {}, "http: 8080", "http", "must be a mapping of keys"),
    ("duplicate-key", {}, {}, "http:\n  port: 1\n  port: 2\n", None, 'duplicate key "port"'),
    ("duplicate-section", {}, {}, "log: {}\nlog: {}\n", None, 'duplicate key "log"'),
    ("election", {"raft.election_timeout": "299ms"}, {}, None, "raft.election_timeout", "3x"),
    (
        "backoff",
        {"execution.backoff_cap": "500ms"},
        {},
        None,
        "execution.backoff_cap",
        "backoff_base",
    ),
    (
        "inprogress",
        {},
        {"JOB_INPROGRESS_TIMEOUT": "10s"},
        None,
        "execution.inprogress_timeout",
        "got 10s",
    ),
    ("hot-window", {"scheduler.hot_window": "5s"}, {}, None, "scheduler.hot_window", "slot_gap"),
    (
        "peers-syntax",
        {},
        {"PEERS": "node-1=h:1"},
        None,
        "cluster.members",
        "member 1: must be written",
    ),
    ("peers-address", {}, {"PEERS": "node-1=h:1=h:http"}, None, "cluster.members", "http_address"),
    ("peers-port", {}, {"PEERS": "node-1=h:0=h:2"}, None, "cluster.members", "raft_address"),
    ("peers-id", {}, {"PEERS": "no de=h:1=h:2"}, None, "cluster.members", "member 1: id"),
    (
        "members-dup-id",
        {},
        {"PEERS": "node-1=a:1=a:2,node-1=b:1=b:2"},
        None,
        "cluster.members",
        "duplicate member id",
    ),
    (
        "members-dup-raft",
        {},
        {"PEERS": "node-1=a:1=a:2,node-2=a:1=b:2"},
        None,
        "cluster.members",
        "duplicate member raft_address",
    ),
    ("members-not-list", {}, {}, "cluster: {members: 5}", "cluster.members", "list of members"),
    (
        "member-not-mapping",
        {},
        {},
        "cluster: {members: [5]}",
        "cluster.members",
        "member 1: must be a mapping",
    ),
    (
        "member-unknown-key",
        {},
        {},
        "cluster:\n  members:\n    - {id: a, raft_address: 'h:1', http_address: 'h:2', x: 1}\n",
        "cluster.members",
        'unknown key "x"',
    ),
    (
        "member-missing",
        {},
        {},
        "cluster:\n  members:\n    - {id: a, raft_address: 'h:1'}\n",
        "cluster.members",
        "missing http_address",
    ),
    (
        "node-not-member",
        {},
        {"PEERS": _TWO, "NODE_ID": "node-9", "CLUSTER_SECRET": SECRET},
        None,
        "node.id",
        "not one of cluster.members (node-1, node-2)",
    ),
    (
        "bootstrap-expect",
        {"cluster.bootstrap_expect": "3"},
        {"PEERS": _TWO, "CLUSTER_SECRET": SECRET},
        None,
        "cluster.bootstrap_expect",
        "at most the 2",
    ),
    (
        "dns-no-service",
        {},
        {"DISCOVERY_STRATEGY": "dns", "CLUSTER_SECRET": SECRET},
        None,
        "cluster.dns_service",
        "must be set",
    ),
    ("cluster-no-secret", {}, {"PEERS": _TWO}, None, "cluster.secret", "CLUSTER_SECRET"),
    ("secret-short", {}, {"CLUSTER_SECRET": "hunter2"}, None, "cluster.secret", "<hidden>"),
    ("ports-clash", {}, {"RAFT_PORT": "8080"}, None, "raft.port", "http.port"),
    ("metrics-clash", {"metrics.port": "7000"}, {}, None, "metrics.port", "raft.port"),
]


@pytest.mark.parametrize(
    ("flags", "env", "text", "key", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in _ERRORS],
)
def test_every_error_is_one_line_naming_the_key(
    flags: dict[str, object], env: dict[str, str], text: str | None, key: str | None, fragment: str
) -> None:
    err = error_of(flags, env, text)
    line = str(err)
    assert "\n" not in line and "\r" not in line
    assert line.startswith("config: ")
    assert err.key == key
    if key is not None:
        assert line.startswith(f"config: {key}: ")
    assert fragment in line
    assert "Traceback" not in line


def test_error_names_the_file_for_unknown_keys_with_a_hint() -> None:
    line = str(error_of(text="htpp: {}"))
    assert line == 'config: unknown key "htpp" in test.yaml (did you mean "http"?)'


def test_yaml_errors_do_not_chain_a_traceback() -> None:
    err = error_of(text="http: [")
    assert err.__cause__ is None and err.__suppress_context__


def test_secret_is_never_shown() -> None:
    err = error_of(env={"CLUSTER_SECRET": "short-secret"})
    assert "short-secret" not in str(err)
    c = load(env={"CLUSTER_SECRET": SECRET})
    assert c.cluster.secret == SECRET
    assert SECRET not in repr(c)


def test_empty_file_and_empty_sections_set_nothing() -> None:
    assert load(text="") == load()
    assert load(text="# only a comment\n") == load()
    assert load(text="http:\nraft:\n") == load()


def test_empty_lists_may_be_written_as_nothing() -> None:
    c = load(text="http:\n  cors_origins:\ncluster:\n  members:\n")
    assert c.http.cors_origins == () and c.cluster.members == ()


# --- cluster membership -------------------------------------------------------------------


def test_peers_env_parses_members() -> None:
    c = load(env={"PEERS": THREE, "CLUSTER_SECRET": SECRET})
    assert [m.id for m in c.cluster.members] == ["node-1", "node-2", "node-3"]
    assert c.cluster.members[0] == Member(
        "node-1", Address("10.0.0.1", 7000), Address("10.0.0.1", 8080)
    )
    assert str(c.cluster.members[2].http_address) == "h3:8080"
    assert c.cluster.bootstrap_expect == 3
    assert [m.id for m in c.cluster.peers("node-1")] == ["node-2", "node-3"]
    assert c.cluster.member("node-9") is None


def test_peers_tolerates_spaces_trailing_comma_and_ipv6() -> None:
    env = {
        "PEERS": " node-1 = [::1]:7000 = [::1]:8080 , node-2=h:7001=h:8081, ",
        "CLUSTER_SECRET": SECRET,
    }
    members = load(env=env).cluster.members
    assert members[0].raft_address == Address("[::1]", 7000)
    assert str(members[0].http_address) == "[::1]:8080"
    assert len(members) == 2


def test_peers_beats_yaml_members_and_flag_beats_peers() -> None:
    text = "cluster:\n  members:\n    - {id: node-1, raft_address: 'y:1', http_address: 'y:2'}\n"
    env = {"PEERS": "node-1=e:1=e:2"}
    assert load(env=env, text=text).cluster.members[0].raft_address.host == "e"
    flags = {"cluster.members": "node-1=f:1=f:2"}
    assert load(flags, env, text).cluster.members[0].raft_address.host == "f"


def test_bootstrap_expect_derivation() -> None:
    assert load().cluster.bootstrap_expect == 1
    dns = {"DISCOVERY_STRATEGY": "DNS", "CLUSTER_SECRET": SECRET}
    text = "cluster: {dns_service: scheduled-db.default.svc, replicas: 5}"
    c = load(env=dns, text=text)
    assert (c.cluster.discovery, c.cluster.bootstrap_expect) == (Discovery.DNS, 5)
    explicit = load({"cluster.bootstrap_expect": "2"}, {"PEERS": THREE, "CLUSTER_SECRET": SECRET})
    assert explicit.cluster.bootstrap_expect == 2


def test_advertise_host_defaults_to_raft_host() -> None:
    c = load(env={"RAFT_HOST": "10.1.2.3", "RAFT_PORT": "7100"})
    assert c.raft.advertise_address == Address("10.1.2.3", 7100)
    c = load(env={"RAFT_HOST": "0.0.0.0", "RAFT_ADVERTISE_HOST": "node-1.svc"})
    assert (str(c.raft.listen_address), str(c.raft.advertise_address)) == (
        "0.0.0.0:7000",
        "node-1.svc:7000",
    )


def test_memory_budget_prefers_percent_of_system_memory() -> None:
    assert load().queue.memory_budget_bytes(8 << 30) == 512 << 20
    queue = load(env={"QUEUE_MEMORY_PERCENT": "25"}).queue
    assert queue.memory_percent == 25.0
    assert queue.memory_budget_bytes(8 << 30) == 2 << 30


def test_metrics_port_zero_disables() -> None:
    assert not load(env={"METRICS_PORT": "0"}).metrics.enabled


def test_config_is_frozen() -> None:
    c = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.http.port = 1  # type: ignore[misc]


# --- the key table and the files ------------------------------------------------------------


# Fields the loader fills from other keys rather than from a key of their own.
DERIVED_FIELDS = {"peer_addresses"}  # cluster.members given as Raft addresses alone


def test_key_table_is_consistent() -> None:
    assert len({k.path for k in KEYS}) == len(KEYS)
    assert len({k.flag for k in KEYS}) == len(KEYS)
    envs = [k.env for k in KEYS if k.env]
    assert len(set(envs)) == len(envs)
    assert all(k.help.strip() and k.flag.startswith("--") for k in KEYS)
    assert {f.name for f in dataclasses.fields(NodeConfig)} == set(SECTIONS)
    for section in SECTIONS:
        cls = type(getattr(load(), section))
        attrs = [k.attr for k in KEYS if k.section == section]
        fields = [f.name for f in dataclasses.fields(cls) if f.name not in DERIVED_FIELDS]
        assert fields == attrs


def test_env_names_of_the_original_project() -> None:
    envs = {k.env: k.path for k in KEYS if k.env}
    assert envs["NODE_ID"] == "node.id" and envs["PEERS"] == "cluster.members"
    assert envs["EXECUTION_HISTORY_RETENTION"] == "execution.history_retention"
    assert KEYS_BY_PATH["http.port"].flag == "--http-port"
    assert KEYS_BY_PATH["node.id"].flag == "--node-id"


def _flatten(text: str) -> set[str]:
    data = yaml.safe_load(text)
    return {f"{section}.{name}" for section, body in data.items() for name in body}


def test_single_node_file_spells_out_the_defaults() -> None:
    text = (CONFIG_DIR / "single-node.yaml").read_text()
    assert _flatten(text) == set(KEYS_BY_PATH)
    assert load_config({}, {}, text, "single-node.yaml") == load()


def test_single_node_file_is_the_embedded_default_text() -> None:
    # Keeps the file's comments in step with the key table's help texts.
    regenerate = (
        "regenerate: python -c 'import sys; from scheduled_db.config.loading import default_yaml; "
        "sys.stdout.write(default_yaml())' > config/single-node.yaml"
    )
    assert (CONFIG_DIR / "single-node.yaml").read_text() == default_yaml(), regenerate


def test_embedded_default_yaml_matches_the_defaults() -> None:
    assert _flatten(default_yaml()) == set(KEYS_BY_PATH)
    assert load(text=default_yaml()) == load()


@pytest.mark.parametrize(
    "path", sorted(CONFIG_DIR.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIG_DIR))
)
def test_every_config_file_loads(path: Path) -> None:
    assert isinstance(load_config({}, {}, path.read_text(), str(path)), NodeConfig)


def test_local_cluster_files_agree() -> None:
    configs = [
        load_config({}, {}, (CONFIG_DIR / "cluster" / f"node-{n}.yaml").read_text(), f"node-{n}")
        for n in (1, 2, 3)
    ]
    assert len({c.cluster.members for c in configs}) == 1
    for n, c in enumerate(configs, 1):
        me = c.cluster.member(c.node.id)
        assert me is not None and c.node.id == f"node-{n}"
        assert me.raft_address == c.raft.advertise_address == Address("127.0.0.1", 7000 + n)
        assert me.http_address == Address("127.0.0.1", 8080 + n)
        assert (c.metrics.port, c.node.data_dir) == (9090 + n, f"./data/node-{n}")
        assert c.cluster.secret and c.cluster.bootstrap_expect == 3


# --- dns discovery ------------------------------------------------------------------------

_DNS = {
    "DISCOVERY_STRATEGY": "dns",
    "CLUSTER_SECRET": SECRET,
    "NODE_ID": "scheduled-db-1",
    "RAFT_PORT": "7000",
    "HTTP_PORT": "8080",
}
_SERVICE = "cluster: {dns_service: sdb-peers.prod.svc.cluster.local, replicas: 3}"


def test_dns_discovery_lists_the_statefulset_pods() -> None:
    c = load(env=_DNS, text=_SERVICE)
    assert [(mb.id, str(mb.raft_address), str(mb.http_address)) for mb in c.cluster.members] == [
        (f"scheduled-db-{i}", f"scheduled-db-{i}.sdb-peers.prod.svc.cluster.local:7000",
         f"scheduled-db-{i}.sdb-peers.prod.svc.cluster.local:8080")
        for i in range(3)
    ]  # fmt: skip
    assert c.cluster.bootstrap_expect == 3
    assert [p.id for p in c.cluster.peers("scheduled-db-1")] == ["scheduled-db-0", "scheduled-db-2"]
    # Every pod derives the same list: the same bootstrap configuration.
    other = load(env={**_DNS, "NODE_ID": "scheduled-db-2"}, text=_SERVICE)
    assert other.cluster.members == c.cluster.members
    # The service and the count may come from the environment too.
    by_env = load(env={**_DNS, "DNS_SERVICE": "sdb-peers", "REPLICAS": "5"})
    assert [str(mb.raft_address) for mb in by_env.cluster.members][
        4
    ] == "scheduled-db-4.sdb-peers:7000"
    # Members listed explicitly win over discovery.
    listed = load(env={**_DNS, "NODE_ID": "node-1", "PEERS": THREE}, text=_SERVICE)
    assert [mb.id for mb in listed.cluster.members] == ["node-1", "node-2", "node-3"]


@pytest.mark.parametrize(
    ("env", "text", "key", "words"),
    [
        ({"NODE_ID": "node"}, _SERVICE, "node.id", "<name>-<ordinal>"),
        ({"NODE_ID": "scheduled-db-3"}, _SERVICE, "node.id", "beyond cluster.replicas (3)"),
        ({"NODE_ID": "scheduled-db-01"}, _SERVICE, "node.id", "<name>-<ordinal>"),
        ({}, "cluster: {dns_service: sdb-peers}", "cluster.replicas", "must be set"),
        ({}, "cluster: {replicas: 3}", "cluster.dns_service", "must be set"),
    ],
)
def test_dns_discovery_errors_name_the_key(
    env: dict[str, str], text: str, key: str, words: str
) -> None:
    err = error_of(env={**_DNS, **env}, text=text)
    assert err.key == key and words in str(err), str(err)


# --- webhook signing schemes and header secrets ------------------------------------------


def test_signature_scheme_and_header_secrets() -> None:
    c = load(env={"WEBHOOK_SIGNATURE_SCHEME": "standard",
                  "WEBHOOK_HEADER_SECRETS": "billing-token:Bearer 0123456789abcdef"})  # fmt: skip
    assert c.webhooks.signature_scheme.value == "standard"
    assert dict(c.webhooks.header_secrets) == {"billing-token": "Bearer 0123456789abcdef"}
    assert load().webhooks.signature_scheme.value == "scheduled-db"
    err = error_of(env={"WEBHOOK_SIGNATURE_SCHEME": "svix"})
    assert err.key == "webhooks.signature_scheme"
    secret = "whsec_not!base64!at!all!"
    err = error_of(env={"WEBHOOK_SIGNATURE_SCHEME": "standard", "WEBHOOK_SIGNING_SECRET": secret})
    assert err.key == "webhooks.signing_secret" and secret not in str(err)
    # Under the default scheme a whsec_ secret is just text.
    assert load(env={"WEBHOOK_SIGNING_SECRET": secret}).webhooks.signing_secret == secret
    bad = "Bearer 0123456789abcdefé"
    err = error_of(env={"WEBHOOK_HEADER_SECRETS": f"t:{bad}"})
    assert err.key == "webhooks.header_secrets.t" and bad not in str(err)
