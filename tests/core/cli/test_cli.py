"""scheduled_db.cli.main: the run flags and their precedence, every error path, --help,
and the dispatch to the node and the launcher.  The client commands are tested
against a real HTTP server in ``test_cli_client.py``."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduled_db.cli.errors import UsageError
from scheduled_db.cli.main import build_config, main
from scheduled_db.config.loading import KEYS, ConfigError, NodeConfig

NO_ENV: dict[str, str] = {}


def run_cli(
    capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``main(argv)``: (exit code, stdout, stderr)."""
    code = main(list(argv), NO_ENV if env is None else env)
    out, err = capsys.readouterr()
    return code, out, err


# --- build_config -----------------------------------------------------------------------


def test_flags_beat_env_which_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("http:\n  port: 8001\nraft:\n  port: 7001\nnode:\n  id: from-file\n")
    env = {"HTTP_PORT": "8002", "RAFT_PORT": "7002"}
    config = build_config(["--config", str(path), "--http-port", "8003"], env)
    assert (config.http.port, config.raft.port, config.node.id) == (8003, 7002, "from-file")


def test_without_file_or_flags_the_defaults_apply() -> None:
    config = build_config([], NO_ENV)
    assert (config.node.id, config.http.port, config.log.level) == ("node-1", 8080, "INFO")


def test_data_dir_is_an_alias_of_the_node_data_dir_flag() -> None:
    assert build_config(["--data-dir", "/var/a"], NO_ENV).node.data_dir == "/var/a"
    assert build_config(["--node-data-dir", "/var/b"], NO_ENV).node.data_dir == "/var/b"


def test_log_json_alone_means_true() -> None:
    assert build_config(["--log-json"], NO_ENV).log.json is True
    assert build_config(["--log-json", "false"], {"LOG_JSON": "true"}).log.json is False


def test_the_flags_are_converted_like_any_other_source() -> None:
    argv = ["--log-level", "warn", "--raft-heartbeat-interval", "50ms", "--node-id", "node-7"]
    config = build_config(argv, NO_ENV)
    assert (config.log.level, config.raft.heartbeat_interval_ms) == ("WARNING", 50)
    assert config.node.id == "node-7"


def test_every_key_has_a_flag_that_sets_that_key() -> None:
    rejected = []
    for key in KEYS:
        # Not a UsageError: run takes the flag.  A refused value names the flag's key.
        try:
            build_config([key.flag, "\x00"], NO_ENV)
        except ConfigError as exc:
            assert exc.key == key.path and f"from {key.flag}" in str(exc)
            rejected.append(key.path)
    assert len(rejected) > len(KEYS) // 2


def test_a_flag_run_does_not_take_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: --no-such-flag"):
        build_config(["--no-such-flag", "1"], NO_ENV)


# --- error paths: one line on stderr, exit code 2 ---------------------------------------


def test_a_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    code, out, err = run_cli(capsys, "run", "--config", str(missing))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"scheduled-db: config: cannot read {missing}: No such file or directory"
    ]


def test_a_directory_as_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "run", "--config", str(tmp_path))
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("scheduled-db: config: cannot read ")


def test_bad_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("http:\n  port: [8080\n")
    code, out, err = run_cli(capsys, "run", "--config", str(path))
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith(f"scheduled-db: config: invalid YAML in {path}: line ")


def test_a_config_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"node:\n  id: n\xe9\n")
    code, _, err = run_cli(capsys, "run", "--config", str(path))
    assert code == 2
    assert err.splitlines() == [f"scheduled-db: config: cannot read {path}: not UTF-8 text"]


def test_a_bad_flag_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", "--http-port", "http")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        'scheduled-db: config: http.port: must be an integer between 1 and 65535 (got "http" '
        "from --http-port)"
    ]


def test_a_bad_env_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", env={"RAFT_PORT": "0"})
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("scheduled-db: config: raft.port: ") and "env RAFT_PORT" in line


def test_a_secret_in_a_bad_flag_is_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", "--cluster-secret", "short-secret")
    assert code == 2 and len(err.splitlines()) == 1 and "short-secret" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--no-such-flag"],
        ["jobs"],
        ["jobs", "get"],
        ["jobs", "create", "--type", "weekly"],
        ["jobs", "list", "--limit", "0"],
        ["jobs", "get", "x", "--timeout", "nan"],
        ["cluster", "--nodes", "0"],
        ["cluster", "--base-http-port", "70000"],
        ["frobnicate"],
    ],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith("scheduled-db: ") and line.endswith("--help')")


# --- --help -----------------------------------------------------------------------------

COMMANDS = [
    [],
    ["run"],
    ["cluster"],
    ["jobs"],
    *(["jobs", a] for a in ("create", "get", "list", "delete", "cancel", "status", "executions")),
    ["health"],
    ["cluster-status"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"], NO_ENV)
    out, err = capsys.readouterr()
    assert (exited.value.code, err) == (0, "")
    assert out.startswith("usage: " + " ".join(["scheduled-db", *command]))


def test_run_help_lists_every_key_flag_and_its_env(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"], NO_ENV)
    out = capsys.readouterr().out
    for key in KEYS:
        assert key.flag in out
        assert key.env is None or f"env {key.env}" in " ".join(out.split())
    assert "--data-dir" in out


def test_python_dash_m_is_the_same_command() -> None:
    source = (Path(__file__).parents[3] / "scheduled_db" / "__main__.py").read_text()
    assert "from scheduled_db.cli.main import main" in source and "sys.exit(main())" in source


# --- run and cluster dispatch -----------------------------------------------------------


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> None:
    """Stand in for a shell module: the CLI imports it by name, through sys.modules."""
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, module)


def test_run_sets_up_logging_and_returns_the_nodes_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    seen: list[NodeConfig] = []

    def run_node(config: NodeConfig) -> int:
        seen.append(config)
        logging.getLogger("actors.node").warning("node running")
        return 3

    fake_module(monkeypatch, "actors.node", run_node=run_node)
    code, _, err = run_cli(capsys, "run", "--node-id", "node-2", "--log-level", "warning")
    assert code == 3
    assert [c.node.id for c in seen] == ["node-2"]
    assert logging.getLogger().level == logging.WARNING
    assert err.endswith(" WARNING node-2 node: node running\n")


def test_cluster_passes_its_arguments_to_the_launcher(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    calls: list[tuple[object, ...]] = []

    def run_cluster(*args: object) -> int:
        calls.append(args)
        return 0

    fake_module(monkeypatch, "actors.runtime.launcher", run_cluster=run_cluster)
    argv = ["cluster", "--nodes", "5", "--data-dir", "/tmp/c", "--base-http-port", "9000"]
    code, _, _ = run_cli(capsys, *argv, "--base-raft-port", "9100")
    assert code == 0 and len(calls) == 1
    assert calls[0][:4] == (5, "/tmp/c", 9000, 9100)  # then the environment to pass on


def test_cluster_without_a_launcher(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "actors.runtime.launcher", None)  # import fails: not found
    code, out, err = run_cli(capsys, "cluster", "--nodes", "3")
    assert (code, out, err) == (2, "", "scheduled-db: cluster: not available in this build\n")


def test_cluster_port_ranges_must_not_overlap(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys, "cluster", "--base-http-port", "7001", "--base-raft-port", "7000"
    )
    assert code == 2
    assert err.splitlines() == [
        "scheduled-db: cluster: the HTTP ports 7001.. and the Raft ports 7000.. overlap for 3 nodes"
    ]


def test_cluster_ports_must_fit_below_65536(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    calls: list[tuple[object, ...]] = []
    fake_module(monkeypatch, "actors.runtime.launcher", run_cluster=lambda *a: calls.append(a) or 0)
    # Node i listens on base + i: 65532 leaves room for 3 nodes (up to 65535), 65533 does not.
    code, _, _ = run_cli(capsys, "cluster", "--base-http-port", "65532")
    assert code == 0 and len(calls) == 1
    code, _, err = run_cli(capsys, "cluster", "--base-http-port", "65533")
    assert code == 2 and len(calls) == 1
    assert err.splitlines() == [
        "scheduled-db: cluster: --base-http-port 65533 leaves no room for 3 nodes"
    ]
