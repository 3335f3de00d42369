"""``scheduled-db jobs list`` and ``scheduled-db executions list``: a page at a time,
or with ``--all`` every page, followed by cursor and printed as one list.

``executions list --since`` takes a duration back from now (``90s``, ``30m``,
``1h``, ``2d``, ``1d12h``), or a timestamp the server reads (RFC 3339 or epoch
seconds), passed as it is.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from scheduled_db.cli.calls import Subparsers, add_command, positive
from scheduled_db.cli.job_commands import label_pair
from scheduled_db.client import Client, Page, pages
from scheduled_db.jobs.model import JOB_STATUSES, JobType

_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AGO = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_AGO_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def add_jobs_list(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    text = "List jobs, a page at a time (--all: every page); filters combine with AND."
    parser = add_command(actions, common, "list", text, _list_jobs)
    parser.add_argument(
        "--label",
        action="append",
        metavar="KEY=VALUE",
        help="Only jobs with this label (repeatable: all of them).",
    )
    parser.add_argument("--type", choices=[t.value for t in JobType], help="Only this type.")
    parser.add_argument("--status", choices=[s.value for s in JOB_STATUSES], help="Only these.")
    paused = parser.add_mutually_exclusive_group()
    paused.add_argument("--paused", action="store_true", default=None, help="Only paused jobs.")
    paused.add_argument(
        "--not-paused", dest="paused", action="store_false", help="Only jobs not paused."
    )
    _add_paging(parser, "Jobs")


def add_executions_commands(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    text = "List delivery attempts across all jobs, newest first (--all: every page)."
    parser = add_command(actions, common, "list", text, _list_executions)
    parser.add_argument(
        "--status",
        help="Only attempts in this status: failed, timeout, completed, in_progress, skipped.",
    )
    parser.add_argument(
        "--since",
        type=since_value,
        metavar="WHEN",
        help="Only attempts since then: 90s, 30m, 1h, 2d ago, or an RFC 3339 time "
        "or epoch seconds.",
    )
    parser.add_argument("--job-id", help="Only this job's attempts.")
    _add_paging(parser, "Attempts")


def _add_paging(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--limit", type=positive(int, "an integer"), help=f"{what} per page (server default)."
    )
    parser.add_argument("--cursor", help="Continue from a page's next_cursor.")
    parser.add_argument(
        "--all", action="store_true", help="Follow next_cursor to the end; print one list."
    )


def since_value(text: str) -> timedelta | str:
    """A duration back from now as a ``timedelta``; anything else, for the server."""
    text = text.strip()
    if _AGO.fullmatch(text):
        seconds = sum(float(n) * _SECONDS_PER_UNIT[u] for n, u in _AGO_PART.findall(text))
        return timedelta(seconds=seconds)
    if not text:
        raise argparse.ArgumentTypeError("give a duration (1h) or a time")
    return text


def _list_jobs(client: Client, args: argparse.Namespace) -> object:
    labels = [label_pair(item, "--label") for item in args.label or ()]
    filters = {
        "label": [f"{k}={v}" for k, v in labels] or None,
        "type": args.type,
        "status": args.status,
        "paused": args.paused,
    }
    return _listing(client.list_jobs, "jobs", args, filters)


def _list_executions(client: Client, args: argparse.Namespace) -> object:
    filters = {"status": args.status, "since": args.since, "job_id": args.job_id}
    return _listing(client.list_executions, "executions", args, filters)


def _listing(
    fetch: Callable[..., Page[Any]], key: str, args: argparse.Namespace, filters: dict[str, Any]
) -> object:
    """One page as the server sent it, or (``--all``) every item under ``key`` with the
    last page's other fields (a total holds for the whole listing)."""
    filters = {**filters, "limit": args.limit, "cursor": args.cursor}
    if not args.all:
        return dict(fetch(**filters).raw)
    items: list[object] = []
    last: Page[Any] | None = None
    for page in pages(fetch, **filters):
        items.extend(page.raw[key])
        last = page
    assert last is not None  # pages() yields at least one page
    return {**last.raw, key: items}
