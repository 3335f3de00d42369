"""The node's log output: one line per event, as text or as JSON.

Every line names the time (UTC, milliseconds), the level, the node and the actor::

    2026-11-26T18:00:00.123Z INFO node-1 raft: became leader in term 2

The actor is the record's ``actor`` attribute when a caller sets one
(``log.info(..., extra={"actor": "webhook"})``), else the module the logger is named
after, or for an actor's own module its folder (``actors.raft.transport`` ->
``transport``, ``actors.raft.actor`` -> ``raft``).  With ``json_lines`` each event is one
JSON object instead: ``{"ts", "level", "node", "actor", "msg"}``, plus ``exc`` (the
formatted traceback) when the record carries an exception.

A log line is an event, so text lines never contain a raw newline from the message:
a message's line breaks are escaped, and a traceback follows on continuation lines
indented by two spaces (a line that does not start with a space starts an event).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import TextIO

__all__ = ["setup_logging"]

_HIDDEN = "<hidden>"


class _NodeFilter(logging.Filter):
    """Stamps every record with the node id and the actor that logged it.

    It sits on the handler, not on a logger, because a logger's filters do not see
    the records its children propagate up to it.
    """

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        actor = getattr(record, "actor", None)
        record.actor = str(actor) if actor else _label(record.name)
        return True


def _label(logger: str) -> str:
    parts = logger.split(".")
    if len(parts) > 2 and parts[-1] == "actor":
        return parts[-2]
    return parts[-1]


class _Formatter(logging.Formatter):
    """Formats a stamped record as one text line or one JSON object."""

    def __init__(self, json_lines: bool, redact: Iterable[str]) -> None:
        super().__init__()
        self.json_lines = json_lines
        # Longest first, so that a secret containing another is hidden whole.
        self.redact = sorted({s for s in redact if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": _utc_timestamp(record),
            "level": record.levelname,
            "node": getattr(record, "node_id", "-"),
            "actor": getattr(record, "actor", record.name),
            "msg": record.getMessage(),
        }
        exc = self._exception_text(record)
        if self.json_lines:
            if exc:
                fields["exc"] = exc
            line = json.dumps(fields, ensure_ascii=False, default=str)
        else:
            line = "{ts} {level} {node} {actor}: ".format(**fields) + _one_line(fields["msg"])
            if exc:
                line += "\n" + "\n".join("  " + part for part in exc.splitlines())
        return self._hide_secrets(line)

    def _exception_text(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)

    def _hide_secrets(self, line: str) -> str:
        for secret in self.redact:
            line = line.replace(secret, _HIDDEN)
        return line


class _NodeHandler(logging.StreamHandler[TextIO]):
    """The handler ``setup_logging`` installs; its type is how a second call finds it."""


def setup_logging(
    level: str,
    json_lines: bool,
    node_id: str,
    *,
    stream: TextIO | None = None,
    redact: Iterable[str] = (),
) -> None:
    """Send every log record of the process to ``stream`` (stderr), one event per line.

    ``level`` is a ``logging`` level name (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``)
    as the config has normalised it.  Idempotent: a second call replaces the handler
    of the first instead of adding another, and handlers others installed (a test
    runner's, say) are left alone.  Every occurrence of a string in ``redact`` (the
    cluster secret) is written as ``<hidden>``, whichever code logged it.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _NodeHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _NodeHandler(sys.stderr if stream is None else stream)
    handler.addFilter(_NodeFilter(node_id))
    handler.setFormatter(_Formatter(json_lines, redact))
    root.addHandler(handler)
    root.setLevel(level)


def _utc_timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")
