"""What every client subcommand shares: its options, the client they describe, and
how an action's outcome or error becomes output and an exit code (0 success; 1 an
HTTP error status, its JSON body on stderr; 2 misuse or an unreachable server,
raised as ``CliError``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from scheduled_db.cli.errors import CliError, UsageError
from scheduled_db.client import (
    ApiError,
    BadCaFile,
    Client,
    RetryPolicy,
    UnexpectedAnswer,
    Unreachable,
)
from scheduled_db.client.transport import check_base_url

Subparsers = Any  # argparse's _SubParsersAction, a private type
Action = Callable[[Client, argparse.Namespace], object]

DEFAULT_URL = "http://localhost:8080"
URL_ENV = "SCHEDULED_DB_URL"
TOKEN_ENV = "SCHEDULED_DB_TOKEN"  # an API token (api.tokens), sent as a bearer token
CA_ENV = "SCHEDULED_DB_CA"  # a PEM CA file that an https:// node's certificate must chain to
USER_AGENT = "scheduled-db-cli"


@dataclass(frozen=True, slots=True)
class Failed:
    """What an action shows when it ends in failure without an error status (an
    unhealthy node, a batch with refused jobs): ``body`` (to stderr, or to stdout
    with ``on_stdout``), then ``note`` as one line on stderr; exit 1."""

    body: object
    note: str | None = None
    on_stdout: bool = False


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help=f"A node's REST API (default: ${URL_ENV}, else {DEFAULT_URL}). "
        f"An API token, if the node needs one, comes from ${TOKEN_ENV}.",
    )
    common.add_argument(
        "--ca",
        metavar="FILE",
        help=f"PEM CA file an https:// node's certificate must chain to "
        f"(default: ${CA_ENV}, else the system's CAs).",
    )
    common.add_argument(
        "--timeout",
        type=positive(float, "a number"),
        default=10.0,
        metavar="SECONDS",
        help="Give up on an answer after this long (default 10).",
    )
    return common


def add_command(
    subparsers: Subparsers,
    common: argparse.ArgumentParser,
    name: str,
    text: str,
    action: Action,
    job_id: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand that runs ``action`` with a client (and the job id, if asked)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, parents=[common], help=text, description=text
    )
    if job_id:
        parser.add_argument("id", help="The job's id.")
    parser.set_defaults(handler=partial(run_action, action), what=parser.prog.split(" ", 1)[-1])
    return parser


def positive(kind: Callable[[str], float], what: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of ``text``, which must be above 0."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {what} above 0 (got {text!r})")
        return value

    return parse


# --- running an action ------------------------------------------------------------------


def base_url(given: str | None, environ: Mapping[str, str]) -> str:
    """The server's URL: ``--url``, else ``$SCHEDULED_DB_URL``, else the default."""
    url = given or environ.get(URL_ENV, "").strip() or DEFAULT_URL
    try:
        return check_base_url(url)
    except ValueError:
        raise UsageError(f"--url must be an http:// or https:// URL (got {url!r})") from None


def connect(
    args: argparse.Namespace, env: Mapping[str, str], retry: RetryPolicy | None = None
) -> Client:
    """The client the command's options and environment describe."""
    url = base_url(args.url, env)
    ca = args.ca or env.get(CA_ENV, "").strip() or None
    try:
        return Client(
            url,
            token=env.get(TOKEN_ENV) or None,
            ca=ca,
            timeout=args.timeout,
            retry=retry,
            user_agent=USER_AGENT,
        )
    except BadCaFile as exc:
        raise UsageError(f"--ca: {exc}") from None


def run_action(action: Action, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run ``action`` and show its outcome; the one place client errors become exit codes."""
    client = connect(args, env)
    try:
        shown = action(client, args)
    except ApiError as exc:
        return report_error(exc)
    except UnexpectedAnswer as exc:
        return fail(f"{args.what}: {exc}")
    except Unreachable as exc:
        raise CliError(str(exc)) from None
    if isinstance(shown, Failed):
        print(pretty(shown.body), file=sys.stdout if shown.on_stdout else sys.stderr)
        if shown.note:
            print(f"scheduled-db: {args.what}: {shown.note}", file=sys.stderr)
        return 1
    if shown is not None:
        print(shown if isinstance(shown, str) else pretty(shown))
    return 0


def report_error(error: ApiError) -> int:
    """An error status: its JSON body to stderr (or one line if it had none); exit 1."""
    if error.body is not None:
        print(pretty(error.body), file=sys.stderr)
    else:
        detail = " ".join(error.text.split())[:200]
        print(f"scheduled-db: HTTP {error.status} {error.reason}: {detail}", file=sys.stderr)
    return 1


def fail(problem: str) -> int:
    print(f"scheduled-db: {problem}", file=sys.stderr)
    return 1


def pretty(body: object) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False)


# --- reading JSON the user gives --------------------------------------------------------


def read_json_source(text: str | None, path: str | None, what: str) -> object | None:
    """The JSON given as text, or in the file at ``path`` (``-``: stdin), or ``None``."""
    if text is not None:
        return parse_json(text, "--json", what)
    if path is None:
        return None
    if path == "-":
        return parse_json(sys.stdin.read(), "the body on stdin", what)
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise UsageError(f"{what}: cannot read {path}: {problem}") from None
    return parse_json(content, path, what)


def parse_json(text: str, where: str, what: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what}: {where} is not valid JSON: {exc}") from None
