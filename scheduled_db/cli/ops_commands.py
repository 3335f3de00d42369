"""The operator's commands: ``backup`` (from a running cluster), ``restore`` and
``recover`` (on a stopped node's data directory).

``backup`` streams ``GET /admin/snapshot`` into ``FILE.partial``, checks the whole
file, then renames it to ``FILE``: a file under the asked name is always whole.
On a terminal it shows its progress on stderr.  ``restore`` writes a new data
directory from a backup; ``recover --force-new-cluster`` turns a survivor into the
one member of a new cluster.  Each prints a JSON summary on stdout; a problem is
one line on stderr and exit code 1 (2 for a misused command or a node that
cannot be reached, as for every client command).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from scheduled_db.cli.calls import Subparsers, common_options, connect
from scheduled_db.cli.errors import CliError, UsageError
from scheduled_db.cli.shell import shell
from scheduled_db.client import ClientError, Unreachable
from scheduled_db.config.kinds import NODE_ID
from scheduled_db.state.backup_format import BackupFormatError, verify

BACKUP_TIMEOUT_S = 120.0  # the first byte waits for a pass over the whole state
LOST_WRITES = (
    "a write that the lost members acknowledged but this node never received is "
    "lost; writes this node had but that were never committed are kept, and take "
    "effect now"
)
log = logging.getLogger("scheduled_db.cli")


def add_ops_commands(subparsers: Subparsers) -> None:
    text = "Stream a consistent backup of a running cluster into a file."
    backup = subparsers.add_parser(
        "backup", parents=[common_options()], help=text, description=text
    )
    backup.add_argument("--out", required=True, metavar="FILE", help="Where to write it.")
    backup.set_defaults(handler=_backup, timeout=BACKUP_TIMEOUT_S)

    text = "Write a data directory that starts a new cluster from a backup (node stopped)."
    restore = subparsers.add_parser(
        "restore",
        help=text,
        description=text + " Run it for each member of the new cluster, with the same "
        "file and --cluster-members; then start each node on its directory.",
    )
    restore.add_argument("file", metavar="FILE", help="A file written by scheduled-db backup.")
    restore.add_argument("--data-dir", required=True, help="The new (absent or empty) directory.")
    restore.add_argument("--node-id", required=True, help="This member's id.")
    restore.add_argument(
        "--cluster-members",
        required=True,
        metavar="MEMBERS",
        help="Every member of the new cluster: id,id,... or the PEERS form "
        "id=raft_host:port=http_host:port,...",
    )
    restore.add_argument(
        "--cluster-id",
        help="The new cluster's id (default: derived from the file and the members, "
        "so every member gets the same one).",
    )
    restore.set_defaults(handler=_restore)

    text = "Make a stopped node the one member of a new cluster, after losing a majority."
    recover = subparsers.add_parser(
        "recover",
        help=text,
        description=text + " It keeps every entry of the node's log; " + LOST_WRITES + ". "
        "New members join it with POST /join and CLUSTER_ID set to the printed id.",
    )
    recover.add_argument("--data-dir", required=True, help="The stopped node's data directory.")
    recover.add_argument(
        "--force-new-cluster",
        action="store_true",
        help="Required: says you know the other members are gone for good.",
    )
    recover.add_argument("--cluster-id", help="The new cluster's id (default: a random one).")
    recover.set_defaults(handler=_recover)


# --- backup -----------------------------------------------------------------------------


class _Meter:
    """Bytes, rate and time left on one terminal line (stderr), at most 10 times a second."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = time.monotonic()
        self._shown = float("-inf")
        self._done = 0

    def __call__(self, done: int, headers: Mapping[str, str]) -> None:
        self._done = done
        now = time.monotonic()
        if now - self._shown < 0.1:
            return
        self._shown = now
        rate = done / max(now - self._started, 1e-3)
        total = int(headers.get("x-snapshot-bytes", "0") or 0)
        line = f"{_size(done)}"
        if total > done:  # the state's size: the file is a little larger (its framing)
            line += f" of ~{_size(total)}  {_size(rate)}/s  {(total - done) / rate:.0f}s left"
        else:
            line += f"  {_size(rate)}/s"
        self._write(line)

    def end(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-3)
        rate = self._done / elapsed
        self._write(f"{_size(self._done)} in {elapsed:.1f}s  {_size(rate)}/s  done")
        self._out.write("\n")
        self._out.flush()

    def _write(self, line: str) -> None:
        self._out.write(f"\r{line:<64}")
        self._out.flush()


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _backup(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    client = connect(args, env)
    meter = _Meter(sys.stderr) if sys.stderr.isatty() else None
    started = time.monotonic()
    try:
        with open(partial, "wb") as sink:
            client.backup(sink, meter)
            sink.flush()
            os.fsync(sink.fileno())
        if meter is not None:
            meter.end()
        with open(partial, "rb") as f:
            contents = verify(f)
    except Unreachable as exc:  # an OSError too: first
        partial.unlink(missing_ok=True)
        raise CliError(f"backup: {exc}") from None
    except (ClientError, BackupFormatError) as exc:
        partial.unlink(missing_ok=True)
        return _failed("backup", exc)
    except OSError as exc:  # the local file: not writable, the disk full
        partial.unlink(missing_ok=True)
        raise CliError(f"backup: {args.out}: {exc.strerror or exc}") from None
    partial.replace(out)
    h = contents.header
    _show(
        {
            "file": str(out),
            "index": h.index,
            "term": h.term,
            "members": list(h.voters),
            "keys": h.keys,
            "digest": h.digest,
            "checksum": contents.checksum,
            "bytes": out.stat().st_size,
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    return 0


def _failed(what: str, exc: Exception) -> int:
    print(f"scheduled-db {what}: {exc}", file=sys.stderr)
    return 1


def _show(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, indent=2, ensure_ascii=False))


# --- restore and recover ----------------------------------------------------------------


def member_ids(text: str) -> tuple[str, ...]:
    """The ids of ``--cluster-members``: ``id,id`` or the PEERS form ``id=raft=http,...``."""
    items = (item.split("=", 1)[0].strip() for item in text.split(","))
    ids = tuple(_an_id("--cluster-members", name, quoted=True) for name in items)
    if len(set(ids)) != len(ids):
        raise UsageError("--cluster-members: an id is listed twice")
    return ids


def _an_id(flag: str, text: str, quoted: bool = False) -> str:
    """A node or cluster id given with ``flag``; a UsageError naming the flag if not one."""
    try:
        return str(NODE_ID.parse(text))
    except ValueError as exc:
        which = f"{text!r}: " if quoted else ""
        raise UsageError(f"{flag}: {which}{exc}") from None


def _restore(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    members = member_ids(args.cluster_members)
    node_id = _an_id("--node-id", args.node_id)
    cluster_id = None if args.cluster_id is None else _an_id("--cluster-id", args.cluster_id)
    restore_data_dir = shell("actors.storage.backup", "restore_data_dir")
    data_dir_error = shell("actors.storage.datadir", "DataDirError")
    try:
        with open(args.file, "rb") as f:
            header, cid = restore_data_dir(f, Path(args.data_dir), node_id, members, cluster_id)
    except OSError as exc:
        raise CliError(f"restore: {args.file}: {exc.strerror or exc}") from None
    except (BackupFormatError, data_dir_error, ValueError) as exc:
        return _failed("restore", exc)
    _show(
        {
            "data_dir": args.data_dir,
            "node_id": node_id,
            "members": list(members),
            "cluster_id": cid,
            "index": header.index,
            "term": header.term,
            "keys": header.keys,
            "digest": header.digest,
        }
    )
    print(
        f"scheduled-db restore: start the node with --data-dir {args.data_dir}; nodes joining "
        f"this cluster later need CLUSTER_ID={cid}",
        file=sys.stderr,
    )
    return 0


def _recover(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if not args.force_new_cluster:
        raise UsageError(
            "recover: --force-new-cluster is required: it makes this node a cluster of "
            "its own, and " + LOST_WRITES
        )
    cluster_id = None if args.cluster_id is None else _an_id("--cluster-id", args.cluster_id)
    recover_data_dir = shell("actors.storage.backup", "recover_data_dir")
    data_dir_error = shell("actors.storage.datadir", "DataDirError")
    try:
        meta, cid = recover_data_dir(Path(args.data_dir), cluster_id)
    except (data_dir_error, ValueError) as exc:
        return _failed("recover", exc)
    (node_id,) = meta.conf_state.voters
    _show(
        {
            "data_dir": args.data_dir,
            "node_id": node_id,
            "cluster_id": cid,
            "index": meta.index,
            "term": meta.term,
        }
    )
    print(
        f"scheduled-db recover: {node_id} is now the one member of cluster {cid}; "
        f"{LOST_WRITES}. Start it as before; new members join with POST /join and "
        f"CLUSTER_ID={cid}",
        file=sys.stderr,
    )
    return 0
