"""The client subcommands: ``jobs ...``, ``executions list``, ``health``, ``livez``
and ``cluster-status``, each a call of :class:`scheduled_db.client.Client`.

Each prints the server's JSON answer, pretty-printed, to stdout.  Exit codes: 0
on success; 1 on an HTTP error status, whose JSON body goes to stderr (and for
``jobs batch``, when any job of the batch was refused; for ``health``, when the
node is unhealthy); 2 when the command is misused or the server cannot be
reached (one line on stderr).  The client retries what is safe to send twice
(:mod:`scheduled_db.client.retry`).
"""

from __future__ import annotations

import argparse

from scheduled_db.cli import job_commands, listing
from scheduled_db.cli.calls import Failed, Subparsers, add_command, common_options
from scheduled_db.client import Client


def add_client_commands(subparsers: Subparsers) -> None:
    """Register ``jobs``, ``executions``, ``health``, ``livez`` and ``cluster-status``."""
    common = common_options()
    jobs = subparsers.add_parser(
        "jobs", help="Create, inspect, change and cancel jobs through a node's REST API."
    )
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    job_commands.add_job_commands(actions, common)
    listing.add_jobs_list(actions, common)
    executions = subparsers.add_parser(
        "executions", help="Delivery attempts across all jobs (what failed last night)."
    )
    listing.add_executions_commands(
        executions.add_subparsers(dest="action", required=True, metavar="ACTION"), common
    )
    for name, text, action in (
        ("health", "Show a node's health (GET /health; exit 1 when unhealthy).", _health),
        ("livez", "Whether a node's HTTP server answers (GET /livez), for probes.", _livez),
        ("cluster-status", "Show the cluster as a node sees it.", _cluster),
    ):
        add_command(subparsers, common, name, text, action)


# --- the node's commands ----------------------------------------------------------------


def _health(client: Client, args: argparse.Namespace) -> object:
    health = client.health()
    return dict(health.raw) if health.healthy else Failed(dict(health.raw))


def _livez(client: Client, args: argparse.Namespace) -> object:
    return dict(client.livez())


def _cluster(client: Client, args: argparse.Namespace) -> object:
    return dict(client.cluster().raw)
