"""The client subcommands: ``jobs ...``, ``health``, ``livez`` and ``cluster-status``.

Each sends one REST request (``jobs list --all``: one per page) to ``--url`` and
prints the JSON answer, pretty-printed, to stdout.  Exit codes: 0 on a 2xx answer;
1 on an HTTP error status, whose JSON body goes to stderr; 2 when the command is
misused or the server cannot be reached (one line on stderr, raised as ``CliError``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from scheduled_db.cli.http_calls import (
    CA_ENV,
    DEFAULT_URL,
    TOKEN_ENV,
    URL_ENV,
    Response,
    UsageError,
    base_url,
    request,
)
from scheduled_db.jobs.model import JobStatus, JobType, MisfirePolicy

Subparsers = Any  # argparse's _SubParsersAction, a private type

# The convenience flags of ``jobs create``: (flag, JSON field of POST /jobs, help).
_CREATE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("--id", "id", "Job id (1-256 characters, no '/'); the server makes one if absent."),
    ("--type", "type", "unico: fires once at --timestamp; recurrente: fires on --cron."),
    ("--timestamp", "timestamp", "When: RFC 3339, 'YYYY-MM-DD HH:MM:SS' (UTC) or epoch seconds."),
    ("--cron", "cron_expression", "Cron expression of a recurrente job, e.g. '*/5 * * * *'."),
    ("--timezone", "timezone", "IANA time zone the cron expression is read in (default UTC)."),
    ("--last-date", "last_date", "A recurrente job fires no more after this time."),
    ("--webhook-url", "webhook_url", "The http(s) URL POSTed to when the job fires."),
    ("--misfire-policy", "misfire_policy", "What runs missed while the cluster was down do."),
    ("--max-attempts", "max_attempts", "Delivery attempts per run (capped by the server's)."),
    # --timeout is the client's own wait for an answer, hence the longer name.
    ("--webhook-timeout", "timeout", "Timeout of each delivery attempt, e.g. 30s (1s to 1h)."),
    (
        "--signing-secret-ref",
        "signing_secret_ref",
        "Name of the secret deliveries are signed with.",
    ),
)
_CHOICES = {
    "type": [t.value for t in JobType],
    "misfire_policy": [p.value for p in MisfirePolicy],
}

# Commands that are one request about one job: (name, method, path after /jobs/{id}, help).
_ONE_JOB: tuple[tuple[str, str, str, str], ...] = (
    ("get", "GET", "", "Show a job."),
    ("status", "GET", "/status", "Show a job's status and next run."),
    ("executions", "GET", "/executions", "Show a job's execution attempts."),
)


def add_client_commands(subparsers: Subparsers) -> None:
    """Register ``jobs``, ``health``, ``livez`` and ``cluster-status`` on the top-level parser."""
    common = _common_options()
    jobs = subparsers.add_parser(
        "jobs", help="Create, inspect and cancel jobs through a node's REST API."
    )
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_create(actions, common)
    for name, method, suffix, text in _ONE_JOB:
        parser = actions.add_parser(name, parents=[common], help=text, description=text)
        parser.add_argument("id", help="The job's id.")
        parser.set_defaults(handler=partial(_one_job, method, suffix))
    text = "Delete a job; print it as it was."
    parser = actions.add_parser("delete", parents=[common], help=text, description=text)
    parser.add_argument("id", help="The job's id.")
    parser.set_defaults(handler=_delete)
    _add_list(actions, common)
    _add_cancel(actions, common)
    for name, path, text in (
        ("health", "/health", "Show a node's health (GET /health; exit 1 when unhealthy)."),
        ("livez", "/livez", "Whether a node's HTTP server answers (GET /livez), for probes."),
        ("cluster-status", "/debug/cluster", "Show the cluster as a node sees it."),
    ):
        parser = subparsers.add_parser(name, parents=[common], help=text, description=text)
        parser.set_defaults(handler=partial(_get, path))


def _common_options() -> argparse.ArgumentParser:
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
        type=_positive(float, "a number"),
        default=10.0,
        metavar="SECONDS",
        help="Give up on an answer after this long (default 10).",
    )
    return common


def _add_create(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    text = "Create a job from a JSON body and/or flags (flags override the body's fields)."
    parser = actions.add_parser("create", parents=[common], help=text, description=text)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--json", metavar="JSON", help="The body of POST /jobs as JSON text.")
    source.add_argument("--file", metavar="FILE", help="Read the body from FILE ('-': stdin).")
    source.add_argument(
        "stdin",
        nargs="?",
        choices=["-"],
        metavar="-",
        help="Read the body from stdin, like --file -.",
    )
    for flag, field, help_text in _CREATE_FIELDS:
        choices = _CHOICES.get(field)
        metavar = None if choices else flag.lstrip("-").upper().replace("-", "_")
        parser.add_argument(
            flag,
            dest=f"field_{field}",
            choices=choices,
            metavar=metavar,
            help=help_text,
            type=_TYPES.get(field, str),
        )
    parser.add_argument("--payload", metavar="JSON", help="JSON object sent in the webhook.")
    parser.set_defaults(handler=_create)


def _add_list(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    text = "List jobs, a page at a time (--all: every page)."
    parser = actions.add_parser("list", parents=[common], help=text, description=text)
    parser.add_argument("--status", choices=[s.value for s in JobStatus], help="Only these.")
    parser.add_argument(
        "--limit", type=_positive(int, "an integer"), help="Jobs per page (server default 100)."
    )
    parser.add_argument("--cursor", help="Continue from a page's next_cursor.")
    parser.add_argument(
        "--all", action="store_true", help="Follow next_cursor to the end; print one list."
    )
    parser.set_defaults(handler=_list)


def _add_cancel(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    text = "Cancel a job: it fires no more, its record stays."
    parser = actions.add_parser("cancel", parents=[common], help=text, description=text)
    parser.add_argument("id", help="The job's id.")
    parser.add_argument("--reason", help="Why; kept with the job.")
    parser.set_defaults(handler=_cancel)


def _positive(kind: Callable[[str], float], what: str) -> Callable[[str], Any]:
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


_TYPES: dict[str, Callable[[str], Any]] = {"max_attempts": _positive(int, "an integer")}

# --- the handlers -----------------------------------------------------------------------


def _call(args: argparse.Namespace, env: Mapping[str, str], *how: str, **what: Any) -> Response:
    """One request with the command's timeout and CA, and the API token from the
    environment."""
    ca = args.ca or env.get(CA_ENV, "").strip() or None
    return request(*how, timeout=args.timeout, token=env.get(TOKEN_ENV), ca=ca, **what)


def _job_path(job_id: str, suffix: str = "") -> str:
    """The path of a job: its id percent-encoded as one segment (``job 1`` ->
    ``job%201``), so "/", "?", "#" and "%" in it stay part of the id."""
    return "/jobs/" + urllib.parse.quote(job_id, safe="") + suffix


def _one_job(method: str, suffix: str, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    base = base_url(args.url, env)
    return _report(_call(args, env, base, method, _job_path(args.id, suffix)))


def _delete(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """DELETE answers 204 with no body, so the job is read first, to show what went."""
    base, path = base_url(args.url, env), _job_path(args.id)
    before = _call(args, env, base, "GET", path)
    answer = _call(args, env, base, "DELETE", path)
    if not answer.ok or answer.text.strip():
        return _report(answer)
    print(_pretty(before.body) if before.ok and before.body is not None else f"deleted {args.id}")
    return 0


def _get(path: str, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _report(_call(args, env, base_url(args.url, env), "GET", path))


def _cancel(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    body = {} if args.reason is None else {"reason": args.reason}
    path = _job_path(args.id, "/cancel")
    return _report(_call(args, env, base_url(args.url, env), "POST", path, body=body))


def _create(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    body = _create_body(args)
    return _report(_call(args, env, base_url(args.url, env), "POST", "/jobs", body=body))


def _list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    base = base_url(args.url, env)
    query = {
        name: str(value)
        for name, value in (("status", args.status), ("limit", args.limit), ("cursor", args.cursor))
        if value is not None
    }
    if not args.all:
        return _report(_call(args, env, base, "GET", "/jobs", query=query))
    jobs: list[object] = []
    seen: set[str] = set()
    while True:
        answer = _call(args, env, base, "GET", "/jobs", query=query)
        if not answer.ok:
            return _report(answer)
        page = answer.body
        if not isinstance(page, dict) or not isinstance(page.get("jobs"), list):
            return _fail('jobs list: the server\'s answer has no "jobs" list')
        jobs.extend(page["jobs"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
        if cursor in seen:  # a server bug must not turn into an endless loop
            return _fail(f"jobs list: the server repeated the cursor {cursor!r}")
        seen.add(cursor)
        query["cursor"] = str(cursor)
    # The last page's other fields (the total, say) hold for the whole listing.
    print(_pretty({**page, "jobs": jobs}))
    return 0


# --- the body of jobs create ------------------------------------------------------------


def _create_body(args: argparse.Namespace) -> object:
    """The body of ``POST /jobs``: the given JSON with the flags' fields laid over it."""
    body = _body_source(args)
    fields: dict[str, object] = {}
    for _, field, _ in _CREATE_FIELDS:
        value = getattr(args, f"field_{field}")
        if value is not None:
            fields[field] = value
    if args.payload is not None:
        fields["payload"] = _parse_json(args.payload, "--payload")
    if body is None and not fields:
        raise UsageError(
            "jobs create: give the job as --json, --file, - (stdin) or flags (--type ...)"
        )
    if body is None or not fields:
        return fields if body is None else body
    if not isinstance(body, dict):
        raise UsageError("jobs create: the body must be a JSON object to add flags' fields to it")
    return {**body, **fields}


def _body_source(args: argparse.Namespace) -> object | None:
    if args.json is not None:
        return _parse_json(args.json, "--json")
    path = "-" if args.stdin else args.file
    if path is None:
        return None
    if path == "-":
        return _parse_json(sys.stdin.read(), "the body on stdin")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise UsageError(f"jobs create: cannot read {path}: {problem}") from None
    return _parse_json(text, path)


def _parse_json(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"jobs create: {where} is not valid JSON: {exc}") from None


# --- output -----------------------------------------------------------------------------


def _report(answer: Response) -> int:
    """Print a 2xx answer to stdout (exit 0), any other to stderr (exit 1)."""
    if answer.ok:
        if answer.text.strip():  # 204 No Content prints nothing
            print(_shown(answer))
        return 0
    if answer.body is not None:
        print(_pretty(answer.body), file=sys.stderr)
    else:
        detail = " ".join(answer.text.split())[:200]
        print(f"scheduled-db: HTTP {answer.status} {answer.reason}: {detail}", file=sys.stderr)
    return 1


def _fail(problem: str) -> int:
    print(f"scheduled-db: {problem}", file=sys.stderr)
    return 1


def _shown(answer: Response) -> str:
    return answer.text.rstrip("\n") if answer.body is None else _pretty(answer.body)


def _pretty(body: object) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False)
