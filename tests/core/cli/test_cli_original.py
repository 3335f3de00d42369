"""The command line the original's users type: no subcommand, Go-style flags."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator

import pytest

from scheduled_db.cli.errors import UsageError
from scheduled_db.cli.main import build_config, main
from scheduled_db.cli.original_flags import translate
from scheduled_db.config.keys import KEYS_BY_PATH
from scheduled_db.config.kinds import Address
from scheduled_db.config.loading import NodeConfig
from scheduled_db.config.original import ORIGINAL, OriginalSetting, Treatment

NO_ENV: dict[str, str] = {}


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[NodeConfig]]:
    """Stand in for the node: record the configs ``run`` would start one with."""
    seen: list[NodeConfig] = []

    def run_node(config: NodeConfig) -> int:
        seen.append(config)
        return 0

    module = types.ModuleType("actors.node")
    module.__dict__["run_node"] = run_node
    monkeypatch.setitem(sys.modules, "actors.node", module)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield seen
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def test_options_without_a_command_run_a_node(
    runs: list[NodeConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--node-id=node-2", "--http-port=8090"], NO_ENV) == 0
    assert main([], NO_ENV) == 0  # the original's binary alone ran a node
    assert [(c.node.id, c.http.port) for c in runs] == [("node-2", 8090), ("node-1", 8080)]


def test_a_word_that_is_no_command_is_still_a_usage_error(
    runs: list[NodeConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["frobnicate", "--node-id=x"], NO_ENV) == 2
    assert runs == []
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["-peers=a:7000,b:7000", "-bootstrap-expect=3"],
        ["--peers", "a:7000,b:7000", "--bootstrap-expect", "3"],
        ["-peers", "a:7000,b:7000", "--bootstrap-expect=3"],
    ],
    ids=["one-dash-equals", "two-dashes-separate", "mixed"],
)
def test_go_style_flags_in_every_spelling(argv: list[str]) -> None:
    c = build_config(argv, NO_ENV).cluster
    assert c.peer_addresses == (Address("a", 7000), Address("b", 7000))
    assert c.bootstrap_expect == 3


def test_the_original_flags_set_our_keys() -> None:
    c = build_config(
        [
            "-node-id=node-3",
            "-slot-gap",
            "5s",
            "-max-attempts=4",
            "-auth-token",
            "a-join-token-of-enough-length",
            "-data-dir=/tmp/n3",
            "-http-port=8083",
            "-raft-port=7003",
            "-max-request-body-size=2048",
            "-inprogress-timeout=10m",
            "-history-retention=48h",
            "-kubernetes-service-name=svc",
        ],
        NO_ENV,
    )
    assert (c.node.id, c.node.data_dir, c.http.port, c.raft.port) == (
        "node-3",
        "/tmp/n3",
        8083,
        7003,
    )
    assert (c.scheduler.slot_gap_ms, c.execution.max_attempts) == (5000, 4)
    assert c.cluster.join_token == "a-join-token-of-enough-length"
    assert c.http.max_body_bytes == 2048 and c.cluster.dns_service == "svc"
    assert (c.execution.inprogress_timeout_ms, c.execution.history_retention_ms) == (
        600_000,
        48 * 3_600_000,
    )


def test_every_mapped_flag_becomes_the_flag_of_its_key() -> None:
    for setting in ORIGINAL:
        if setting.flag is None or setting.treatment not in (Treatment.KEY, Treatment.ALIAS):
            continue
        ours = KEYS_BY_PATH[str(setting.path)].flag
        assert translate([f"-{setting.flag}=v"]) == ([f"{ours}=v"], [])
        assert translate([f"--{setting.flag}", "v", "--x"]) == ([ours, "v", "--x"], [])


def test_our_own_flags_and_values_pass_untouched() -> None:
    args = ["--cluster-members", "-peers-is-a-value", "--log-json", "--", "-peers=x"]
    assert translate(args) == (args, [])


@pytest.mark.parametrize(
    "setting", [s for s in ORIGINAL if s.treatment is Treatment.REFUSED and s.flag]
)
def test_a_refused_flag_is_one_line_naming_it(
    setting: OriginalSetting, runs: list[NodeConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    flag = f"-{setting.flag}"
    assert main(["--node-id", "n", flag], NO_ENV) == 2
    assert runs == []
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"scheduled-db: run: flag {flag} (a flag of the original): not")


def test_an_ignored_flag_or_variable_is_dropped_with_a_warning_at_start(
    runs: list[NodeConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "otel:4317"}
    assert main(["-htw-level0-buckets", "360", "--http-write-timeout=30s"], env) == 0
    assert len(runs) == 1
    err = capsys.readouterr().err
    assert "WARNING" in err and "flag -htw-level0-buckets (a setting of the original" in err
    assert "flag --http-write-timeout" in err and "env OTEL_EXPORTER_OTLP_ENDPOINT" in err


def test_a_refused_flag_is_refused_by_build_config_too() -> None:
    with pytest.raises(UsageError, match="enable-cold-spilling"):
        build_config(["--enable-cold-spilling"], NO_ENV)


def test_client_commands_are_not_translated(capsys: pytest.CaptureFixture[str]) -> None:
    # "jobs get" has no -peers option: argparse refuses it, the run translation stays out.
    assert main(["jobs", "get", "x", "-peers=a:1"], NO_ENV) == 2
    assert "unrecognized arguments: -peers=a:1" in capsys.readouterr().err
