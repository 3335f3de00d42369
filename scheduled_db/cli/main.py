"""The ``scheduled-db`` command line: run a node, run a local cluster, or talk to one.

::

    scheduled-db [run] [--config FILE] [--http-port N ...] one node, in this process
    scheduled-db cluster --nodes 3 [--data-dir DIR ...]    a local cluster of node processes
    scheduled-db jobs create|get|list|update|pause|resume|trigger|upcoming|batch|...
    scheduled-db executions list [--status failed --since 1h]
    scheduled-db health | cluster-status

``run`` has one flag per configuration key, derived from ``config_keys.KEYS``
(``http.port`` -> ``--http-port``), so a key added to the table is a flag here with
no change to this module.  It is the default command, as running the original's
binary ran a node: ``scheduled-db --node-id node-2`` is ``scheduled-db run --node-id
node-2``; the original's flags (``-peers``, ``-bootstrap-expect``...) are accepted
too (:mod:`scheduled_db.cli.original_flags`).

This is the process's entry point, so unlike the rest of ``scheduled_db`` it touches
the outside world: it reads the config file and the environment.  The node's shell
(``actors``) is imported only by the commands that run one, which keeps the client
commands quick to start and the core free of the shell at import time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from scheduled_db.cli.client import add_client_commands
from scheduled_db.cli.errors import CliError, UsageError
from scheduled_db.cli.ops_commands import add_ops_commands
from scheduled_db.cli.original_flags import translate
from scheduled_db.cli.shell import shell
from scheduled_db.config import original
from scheduled_db.config.kinds import BOOL
from scheduled_db.config.loading import KEYS, ConfigError, Key, NodeConfig, load_config

__all__ = ["build_config", "main"]

PROG = "scheduled-db"

# Extra spellings of a key's flag, for the names people type from habit.
_FLAG_ALIASES: dict[str, tuple[str, ...]] = {"node.data_dir": ("--data-dir",)}

_EXIT_CODES = """\
exit codes:
  0    success
  1    the server answered with an HTTP error (client commands), or the node failed
  2    misuse: a bad argument or configuration, or a server that cannot be reached
  130  interrupted (Ctrl-C)
  141  the output was closed early (e.g. piped into head)

With no command, or options first, the command is run: scheduled-db --http-port 8081.
"""

_HELP_OPTIONS = ("-h", "--help")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, raised, not printed.

    Subcommand parsers inherit the class, so every level reports the same way.
    """

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (try '{self.prog} --help')")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    ``--help`` prints and raises ``SystemExit(0)``, as argparse does.  Every other
    outcome is a return value: problems the user can fix are one line on stderr.
    """
    env = os.environ if environ is None else environ
    try:
        words, notices = _words(list(sys.argv[1:] if argv is None else argv))
        args = _parser().parse_args(words)
        args.notices = notices
        code: int = args.handler(args, env)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at exit
        return code
    except (CliError, ConfigError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _discard_stdout()
        return 141


def _words(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` with ``run`` put first when no command is named (nothing, or an option
    first), the original's flags in our spelling; and the notices of ignored flags."""
    if not argv or (argv[0].startswith("-") and argv[0] not in _HELP_OPTIONS):
        argv = ["run", *argv]
    if argv[0] != "run":
        return argv, []
    rest, notices = translate(argv[1:])
    return ["run", *rest], notices


def _discard_stdout() -> None:
    """The reader of stdout is gone (``| head``): the rest of the output goes nowhere,
    and Python's flush at exit must not fail again with a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file behind stdout (a test's capture)
        pass


def build_config(argv: Sequence[str], environ: Mapping[str, str]) -> NodeConfig:
    """The configuration ``scheduled-db run ARGV`` would run a node with.

    ``argv`` is what follows ``run``.  Raises ``ConfigError`` for a bad or unreadable
    configuration and ``UsageError`` for arguments ``run`` does not take.
    """
    parser = _Parser(prog=f"{PROG} run")
    _add_run_arguments(parser)
    return _config(parser.parse_args(translate(argv)[0]), environ)


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="A distributed job scheduler replicated with Raft.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    text = "Run one node in this process until SIGTERM or Ctrl-C."
    run = commands.add_parser(
        "run",
        help=text,
        description=_RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_arguments(run)
    run.set_defaults(handler=_run)
    text = "Run a local cluster of --nodes node processes on this host."
    cluster = commands.add_parser("cluster", help=text, description=text)
    _add_cluster_arguments(cluster)
    cluster.set_defaults(handler=_cluster)
    add_client_commands(commands)
    add_ops_commands(commands)
    return parser


# --- run --------------------------------------------------------------------------------

_RUN_DESCRIPTION = """\
Run one node in this process until SIGTERM or Ctrl-C.

Settings come from, highest precedence first: these flags, environment variables,
the --config file, the defaults.  Durations are written 250ms, 10s, 5m, 1h30m;
sizes 512KiB, 1MiB, 2GB.  Each flag below sets the configuration key of its name
(--http-port sets http.port) and shows the environment variable that also sets it.
"""


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", help="YAML configuration file (default: none)."
    )
    groups = {}
    for key in KEYS:
        if key.section not in groups:
            groups[key.section] = parser.add_argument_group(f"{key.section} settings")
        flags = [key.flag, *(f for f in _FLAG_ALIASES.get(key.path, ()) if f != key.flag)]
        options: dict[str, Any] = {"metavar": key.name.upper(), "help": _flag_help(key)}
        if key.kind is BOOL:  # "--log-json" alone means true
            options.update(nargs="?", const="true", metavar="true|false")
        groups[key.section].add_argument(*flags, dest=key.path, default=None, **options)


def _flag_help(key: Key) -> str:
    default = "unset" if key.default is None else key.default
    shown = default if isinstance(default, str) else json.dumps(default)
    env = f"; env {key.env}" if key.env else ""
    text = f"{key.help} [{key.kind.name}{env}; default {shown}]"
    if key.secret:
        text += " Prefer the env var: a flag shows in the process list."
    return text.replace("%", "%%")  # argparse %-formats help text


def _config(args: argparse.Namespace, environ: Mapping[str, str]) -> NodeConfig:
    overrides = {key.path: getattr(args, key.path) for key in KEYS}
    path: str | None = args.config
    text = None if path is None else _read_config_file(path)
    return load_config(overrides, environ, text, path or "no config file")


def _read_config_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(None, f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(None, f"cannot read {path}: not UTF-8 text") from None


def _setup_logging(level: str, json_lines: bool, node_id: str, redact: Sequence[str]) -> None:
    setup: Callable[..., None] = shell("actors.runtime.logs", "setup_logging")
    setup(level, json_lines, node_id, redact=redact)


def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = _config(args, environ)
    _setup_logging(config.log.level, config.log.json, config.node.id, config.cluster.secrets)
    log = logging.getLogger("scheduled_db.cli")
    for line in args.notices:
        log.warning("%s", line)
    for setting in original.ignored_in(environ):
        log.warning("%s", original.notice(setting, f"env {setting.env}"))
    run_node: Callable[[NodeConfig], int] = shell("actors.node", "run_node")
    return run_node(config)


# --- cluster ----------------------------------------------------------------------------


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes", type=_int_in(1, 99), default=3, help="How many nodes (default 3)."
    )
    parser.add_argument(
        "--data-dir", default="./data", help="Parent of the nodes' data dirs (default ./data)."
    )
    parser.add_argument(
        "--base-http-port",
        type=_int_in(1, 65535),
        default=8080,
        metavar="PORT",
        help="Node i serves its REST API on PORT+i (default 8080: node-1 on 8081).",
    )
    parser.add_argument(
        "--base-raft-port",
        type=_int_in(1, 65535),
        default=7000,
        metavar="PORT",
        help="Node i takes Raft peers on PORT+i (default 7000: node-1 on 7001).",
    )


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}")
        return value

    return parse


def _check_port_ranges(nodes: int, http: int, raft: int) -> None:
    for flag, base in (("--base-http-port", http), ("--base-raft-port", raft)):
        if base + nodes > 65535:  # node i listens on base + i
            raise UsageError(f"cluster: {flag} {base} leaves no room for {nodes} nodes")
    if http < raft + nodes and raft < http + nodes:
        raise UsageError(
            f"cluster: the HTTP ports {http}.. and the Raft ports {raft}.. overlap "
            f"for {nodes} nodes"
        )


def _cluster(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    _check_port_ranges(args.nodes, args.base_http_port, args.base_raft_port)
    try:
        run_cluster: Callable[..., int] = shell("actors.runtime.launcher", "run_cluster")
    except ModuleNotFoundError as exc:
        if exc.name != "actors.runtime.launcher":  # a broken install, not a missing feature
            raise
        raise CliError("cluster: not available in this build") from None
    _setup_logging("INFO", False, "launcher", [])
    return run_cluster(args.nodes, args.data_dir, args.base_http_port, args.base_raft_port, environ)
