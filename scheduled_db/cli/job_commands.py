"""``scheduled-db jobs ACTION``: one job at a time (and ``batch``, many at once).

``create``, ``get``, ``status``, ``executions``, ``delete``, ``cancel`` as before;
``update`` (a merge patch from ``--set``/``--json``/``--file``, ``--if-match``),
``pause``, ``resume``, ``trigger``, ``upcoming`` and ``batch`` for issue 20.
"""

from __future__ import annotations

import argparse
from typing import Any

from scheduled_db.cli.calls import (
    Failed,
    Subparsers,
    add_command,
    parse_json,
    positive,
    read_json_source,
)
from scheduled_db.cli.errors import UsageError
from scheduled_db.client import NO_RETRY, ApiError, Client, UnexpectedAnswer
from scheduled_db.jobs.model import JobType, MisfirePolicy

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
_TYPES = {"max_attempts": positive(int, "an integer")}
MAX_UPCOMING = 100


def add_job_commands(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    """Every ``jobs`` action but ``list`` (:mod:`scheduled_db.cli.listing`)."""
    _add_create(actions, common)
    add_command(actions, common, "get", "Show a job.", _get, job_id=True)
    text = "Show a job's status and next run."
    add_command(actions, common, "status", text, _status, job_id=True)
    text = "Show a job's execution attempts."
    add_command(actions, common, "executions", text, _executions, job_id=True)
    text = "Delete a job; print it as it was."
    add_command(actions, common, "delete", text, _delete, job_id=True)
    text = "Cancel a job: it fires no more, its record stays."
    cancel = add_command(actions, common, "cancel", text, _cancel, job_id=True)
    cancel.add_argument("--reason", help="Why; kept with the job.")
    _add_update(actions, common)
    text = "Pause a job: it does not fire until resumed (pausing twice is a no-op)."
    add_command(actions, common, "pause", text, _pause, job_id=True)
    text = "Resume a paused job; runs missed meanwhile follow its misfire_policy."
    add_command(actions, common, "resume", text, _resume, job_id=True)
    text = "Deliver a job once now, outside its schedule (which stays as it is)."
    add_command(actions, common, "trigger", text, _trigger, job_id=True)
    text = "Show a job's next fire times, in its time zone."
    upcoming = add_command(actions, common, "upcoming", text, _upcoming, job_id=True)
    upcoming.add_argument(
        "-n", type=_count, default=5, help=f"How many (1 to {MAX_UPCOMING}, default 5)."
    )
    text = "Create many jobs in one request: FILE holds {\"jobs\": [...]} or a list ('-': stdin)."
    batch = add_command(actions, common, "batch", text, _batch)
    batch.add_argument("file", metavar="FILE", help="The JSON file of jobs ('-': stdin).")


def _count(text: str) -> int:
    value: int = positive(int, "an integer")(text)
    if value > MAX_UPCOMING:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_UPCOMING} (got {text!r})")
    return value


# --- create -----------------------------------------------------------------------------


def _add_create(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    text = "Create a job from a JSON body and/or flags (flags override the body's fields)."
    parser = add_command(actions, common, "create", text, _create)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--json", metavar="JSON", help="The body of POST /jobs as JSON text.")
    source.add_argument("--file", metavar="FILE", help="Read the body from FILE ('-': stdin).")
    source.add_argument(
        "stdin", nargs="?", choices=["-"], metavar="-", help="Read the body from stdin."
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
    parser.add_argument(
        "--label",
        action="append",
        metavar="KEY=VALUE",
        help="A label of the job (repeatable).",
    )


def _create(client: Client, args: argparse.Namespace) -> object:
    return dict(client.create_job(_create_body(args)).raw)


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    """The body of ``POST /jobs``: the given JSON with the flags' fields laid over it."""
    path = "-" if args.stdin else args.file
    body = read_json_source(args.json, path, "jobs create")
    fields: dict[str, object] = {}
    for _, field, _ in _CREATE_FIELDS:
        value = getattr(args, f"field_{field}")
        if value is not None:
            fields[field] = value
    if args.payload is not None:
        fields["payload"] = parse_json(args.payload, "--payload", "jobs create")
    if args.label:
        fields["labels"] = dict(label_pair(item, "--label") for item in args.label)
    if body is None and not fields:
        raise UsageError(
            "jobs create: give the job as --json, --file, - (stdin) or flags (--type ...)"
        )
    if body is None:
        return fields
    if not isinstance(body, dict):
        raise UsageError("jobs create: the body must be a JSON object")
    return {**body, **fields}


def label_pair(text: str, flag: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a pair; :class:`UsageError` naming ``flag`` without the ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag}: give KEY=VALUE (got {text!r})")
    return key, value


# --- one job ----------------------------------------------------------------------------


def _get(client: Client, args: argparse.Namespace) -> object:
    return dict(client.get_job(args.id).raw)


def _status(client: Client, args: argparse.Namespace) -> object:
    return dict(client.job_status(args.id).raw)


def _executions(client: Client, args: argparse.Namespace) -> object:
    executions = client.job_executions(args.id)
    return {"job_id": args.id, "attempts": [dict(e.raw) for e in executions]}


def _delete(client: Client, args: argparse.Namespace) -> object:
    """DELETE answers 204 with no body, so the job is read first, to show what went
    (once: it is only for the show)."""
    try:
        before: object = dict(client.with_retry(NO_RETRY).get_job(args.id).raw)
    except (ApiError, UnexpectedAnswer):
        before = f"deleted {args.id}"
    client.delete_job(args.id)
    return before


def _cancel(client: Client, args: argparse.Namespace) -> object:
    return dict(client.cancel_job(args.id, args.reason).raw)


def _pause(client: Client, args: argparse.Namespace) -> object:
    return dict(client.pause_job(args.id).raw)


def _resume(client: Client, args: argparse.Namespace) -> object:
    return dict(client.resume_job(args.id).raw)


def _trigger(client: Client, args: argparse.Namespace) -> object:
    return dict(client.trigger_job(args.id).raw)


def _upcoming(client: Client, args: argparse.Namespace) -> object:
    return dict(client.upcoming(args.id, args.n).raw)


# --- update -----------------------------------------------------------------------------


def _add_update(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    text = (
        "Change a job with a JSON merge patch: --set FIELD=VALUE (repeatable; VALUE is "
        "JSON if it parses, else text; null removes; labels.KEY=VALUE sets one label), "
        "and/or the patch as --json or --file."
    )
    parser = add_command(actions, common, "update", text, _update, job_id=True)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--json", metavar="JSON", help="The merge patch as JSON text.")
    source.add_argument("--file", metavar="FILE", help="Read the patch from FILE ('-': stdin).")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="Set a field (repeatable); quote to keep a number as text: labels.build='\"42\"'.",
    )
    parser.add_argument(
        "--if-match",
        type=int,
        metavar="VERSION",
        help="Refuse (HTTP 412) unless the job's version is still VERSION.",
    )


def _update(client: Client, args: argparse.Namespace) -> object:
    patch = update_patch(args.json, args.file, args.set)
    return dict(client.update_job(args.id, patch, if_match=args.if_match).raw)


def update_patch(text: str | None, path: str | None, sets: list[str]) -> dict[str, Any]:
    """The merge patch of ``jobs update``: the given JSON, then each ``--set`` on it."""
    base = read_json_source(text, path, "jobs update")
    if base is not None and not isinstance(base, dict):
        raise UsageError("jobs update: the patch must be a JSON object")
    patch: dict[str, Any] = dict(base or {})
    for item in sets:
        field, value = label_pair(item, "--set")
        *parents, last = field.split(".")
        target = patch
        for name in parents:
            inner = target.get(name)
            target = target.setdefault(name, {}) if inner is None else inner
            if not isinstance(target, dict):
                raise UsageError(f"--set {field}: {name} is not an object in the patch")
        target[last] = _value(value)
    if not patch:
        raise UsageError("jobs update: give the change as --set FIELD=VALUE, --json or --file")
    return patch


def _value(text: str) -> object:
    try:
        return parse_json(text, "", "")
    except UsageError:
        return text


# --- batch ------------------------------------------------------------------------------


def _batch(client: Client, args: argparse.Namespace) -> object:
    jobs = batch_jobs(read_json_source(None, args.file, "jobs batch"))
    result = client.batch_create(jobs)
    if not result.errors:
        return dict(result.raw)
    indexes = ", ".join(str(r.index) for r in result.errors[:10])
    more = ", ..." if len(result.errors) > 10 else ""
    note = f"{len(result.errors)} of {len(result.results)} jobs refused (index {indexes}{more})"
    return Failed(dict(result.raw), note, on_stdout=True)


def batch_jobs(content: object) -> list[dict[str, Any]]:
    """The jobs of a batch file: ``{"jobs": [...]}`` or the list itself."""
    jobs = content.get("jobs") if isinstance(content, dict) else content
    if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
        raise UsageError('jobs batch: the file must hold {"jobs": [...]} or a list of job objects')
    if not jobs:
        raise UsageError("jobs batch: the file holds no jobs")
    return jobs
