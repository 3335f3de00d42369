"""The original's environment: its compose file loads, its other settings are each
taken, mapped, ignored or refused (scheduled_db/config/original.py)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from scheduled_db.config.keys import KEYS_BY_PATH
from scheduled_db.config.kinds import Address
from scheduled_db.config.loading import ConfigError, Discovery, NodeConfig, load_config
from scheduled_db.config.original import (
    ORIGINAL,
    REFUSED_DISCOVERY,
    OriginalSetting,
    Treatment,
    ignored_in,
)

SECRET = "a-secret-of-enough-length"
PEERS = "scheduled-db-1:7000,scheduled-db-2:7000,scheduled-db-3:7000"


def compose_env(n: int, **more: str) -> dict[str, str]:
    """Node n's environment in the original's docker/docker-compose.yml (node 3 has no
    BOOTSTRAP_EXPECT there)."""
    env = {
        "NODE_ID": f"node-{n}",
        "RAFT_HOST": "0.0.0.0",
        "RAFT_ADVERTISE_HOST": f"scheduled-db-{n}",
        "HTTP_HOST": "0.0.0.0",
        "RAFT_PORT": "7000",
        "HTTP_PORT": "8080",
        "DATA_DIR": "/data",
        "DISCOVERY_STRATEGY": "static",
        "STATIC_PEERS": PEERS,
        "SLOT_GAP": "10s",
    }
    if n != 3:
        env["BOOTSTRAP_EXPECT"] = "3"
    return {**env, **more}


def load(env: Mapping[str, str], text: str | None = None) -> NodeConfig:
    return load_config({}, env, text, "test.yaml")


def error_of(env: Mapping[str, str], text: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(env, text)
    return caught.value


def test_the_original_compose_environment_lists_three_peers_by_address() -> None:
    for n in (1, 2, 3):
        c = load(compose_env(n))
        assert c.cluster.members == ()  # no ids: they are learned from the peers
        assert c.cluster.peer_addresses == tuple(
            Address(f"scheduled-db-{i}", 7000) for i in (1, 2, 3)
        )
        assert c.cluster.has_peers(c.node.id)
        assert c.cluster.secret is None  # the original's compose has none
        assert c.cluster.discovery is Discovery.STATIC
        assert (c.node.id, c.node.data_dir, c.scheduler.slot_gap_ms) == (
            f"node-{n}",
            "/data",
            10_000,
        )
    assert load(compose_env(1)).cluster.bootstrap_expect == 3
    assert load(compose_env(3)).cluster.bootstrap_expect is None  # every listed address


def test_peers_in_the_original_form_and_in_a_yaml_list() -> None:
    by_env = load({"PEERS": "10.0.0.1:7000, 10.0.0.2:7000"}).cluster
    text = 'cluster: {members: ["10.0.0.1:7000", "10.0.0.2:7000"]}'
    by_file = load({}, text).cluster
    expected = (Address("10.0.0.1", 7000), Address("10.0.0.2", 7000))
    assert by_env.peer_addresses == by_file.peer_addresses == expected
    assert by_env.members == by_file.members == ()


def test_our_peers_form_still_needs_the_secret_and_gives_ids() -> None:
    env = {"PEERS": "node-1=h1:7000=h1:8080,node-2=h2:7000=h2:8080"}
    assert error_of(env).key == "cluster.secret"
    c = load({**env, "CLUSTER_SECRET": SECRET})
    assert [m.id for m in c.cluster.members] == ["node-1", "node-2"]
    assert c.cluster.peer_addresses == () and c.cluster.bootstrap_expect == 2


def test_the_two_forms_cannot_be_mixed() -> None:
    err = error_of({"PEERS": "h1:7000,node-2=h2:7000=h2:8080", "CLUSTER_SECRET": SECRET})
    assert err.key == "cluster.members" and "the same way" in str(err)


def test_static_peers_and_peers_may_agree_but_not_differ() -> None:
    same = load({"STATIC_PEERS": "a:1,b:2", "PEERS": "a:1,b:2"})
    assert same.cluster.peer_addresses == (Address("a", 1), Address("b", 2))
    err = error_of({"STATIC_PEERS": "a:1,b:2", "PEERS": "a:1,c:3"})
    line = str(err)
    assert err.key == "cluster.members" and "STATIC_PEERS" in line and "PEERS" in line
    assert "\n" not in line


def test_an_alias_error_names_the_alias() -> None:
    err = error_of({"STATIC_PEERS": "a:0"})
    assert err.key == "cluster.members" and "from env STATIC_PEERS" in str(err)


def test_bootstrap_expect_counts_this_node_unlike_the_original() -> None:
    # Listed with itself, a node of three must expect 3, where the original (which
    # counted only the others) would have needed 2; 2 is refused with the reason.
    err = error_of(compose_env(1, BOOTSTRAP_EXPECT="2"))
    assert err.key == "cluster.bootstrap_expect"
    assert "must be 3" in str(err) and "counts this node" in str(err)
    # Not listed (by its advertised address): itself and the listed ones, or the
    # listing includes it under another name.
    env = {"STATIC_PEERS": "a:7000,b:7000", "RAFT_ADVERTISE_HOST": "c"}
    assert load({**env, "BOOTSTRAP_EXPECT": "3"}).cluster.bootstrap_expect == 3
    assert load({**env, "BOOTSTRAP_EXPECT": "2"}).cluster.bootstrap_expect == 2
    assert error_of({**env, "BOOTSTRAP_EXPECT": "4"}).key == "cluster.bootstrap_expect"


@pytest.mark.parametrize(
    "setting", [s for s in ORIGINAL if s.treatment is Treatment.REFUSED], ids=lambda s: s.env
)
def test_a_refused_variable_stops_start_up_in_one_line_naming_it(setting: OriginalSetting) -> None:
    env = setting.env
    line = str(error_of(compose_env(1, **{env: "true"})))
    assert line.startswith(f"config: env {env}: not supported")
    assert "\n" not in line
    load(compose_env(1, **{env: ""}))  # empty is unset, as in the original


@pytest.mark.parametrize("strategy", sorted(REFUSED_DISCOVERY))
def test_the_original_s_other_discovery_strategies_are_refused(strategy: str) -> None:
    err = error_of({"DISCOVERY_STRATEGY": strategy})
    assert err.key == "cluster.discovery"
    assert f'"{strategy}" (a strategy of the original) is not supported' in str(err)
    assert "from env DISCOVERY_STRATEGY" in str(err)


def test_discovery_none_is_static() -> None:
    assert load({"DISCOVERY_STRATEGY": "none"}).cluster.discovery is Discovery.STATIC
    dns = {"DISCOVERY_STRATEGY": "DNS", "DNS_SERVICE": "s", "REPLICAS": "1", "NODE_ID": "x-0"}
    assert load({**dns, "CLUSTER_SECRET": SECRET}).cluster.discovery is Discovery.DNS


@pytest.mark.parametrize(
    "setting", [s for s in ORIGINAL if s.treatment is Treatment.IGNORED], ids=lambda s: s.env
)
def test_an_ignored_variable_is_accepted_and_reported(setting: OriginalSetting) -> None:
    env = setting.env
    load(compose_env(2, **{env: "anything"}))
    assert [s.env for s in ignored_in({env: "anything"})] == [env]
    assert ignored_in({env: " "}) == []


def test_every_key_and_alias_of_the_table_names_a_key_that_reads_a_variable() -> None:
    for setting in ORIGINAL:
        if setting.treatment is Treatment.KEY:
            assert KEYS_BY_PATH[str(setting.path)].env == setting.env, setting
        elif setting.treatment is Treatment.ALIAS:
            key = KEYS_BY_PATH[str(setting.path)]
            assert key.env and key.env != setting.env, setting
        else:
            assert setting.reason and setting.path is None, setting
    assert len({s.env for s in ORIGINAL}) == len(ORIGINAL)
    flags = [s.flag for s in ORIGINAL if s.flag]
    assert len(set(flags)) == len(flags)


def test_the_mapped_variables_set_their_keys() -> None:
    c = load(
        {
            "MAX_REQUEST_BODY_SIZE": "1048576",
            "HTTP_READ_TIMEOUT": "20s",
            "HTTP_IDLE_TIMEOUT": "90s",
            "AUTH_TOKEN": "a-join-token-of-enough-length",
            "KUBERNETES_SERVICE_NAME": "scheduled-db",
            "CLUSTER_SIZE": "3",
        }
    )
    assert (c.http.max_body_bytes, c.http.body_timeout_ms, c.http.idle_timeout_ms) == (
        1 << 20,
        20_000,
        90_000,
    )
    assert c.cluster.join_token == "a-join-token-of-enough-length"
    assert (c.cluster.dns_service, c.cluster.replicas) == ("scheduled-db", 3)


def test_a_mapped_variable_keeps_our_rules() -> None:
    # The original took 0 as "no limit"; an unbounded body is refused here.
    err = error_of({"MAX_REQUEST_BODY_SIZE": "0"})
    assert err.key == "http.max_body" and "from env MAX_REQUEST_BODY_SIZE" in str(err)
    err = error_of({"AUTH_TOKEN": "changeme"})
    assert err.key == "cluster.join_token" and "changeme" not in str(err)


@pytest.mark.parametrize(
    ("value", "ignored"),
    [
        ("otel-collector:4317", True),  # the original's default: its gRPC form
        ("disabled", False),  # means no export here too: nothing to warn about
        ("http://otel-collector:4318", False),  # a URL turns tracing on here
        ("https://collector.example", False),
    ],
)
def test_the_original_otlp_endpoint_is_ignored_only_in_its_grpc_form(
    value: str, ignored: bool
) -> None:
    found = [s.env for s in ignored_in({"OTEL_EXPORTER_OTLP_ENDPOINT": value})]
    assert found == (["OTEL_EXPORTER_OTLP_ENDPOINT"] if ignored else [])
