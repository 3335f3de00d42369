"""The paths and query strings of the API, as the client writes them."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

Labels = Mapping[str, str] | Iterable[str]
Since = datetime | timedelta | int | float | str


def job_path(job_id: str, suffix: str = "") -> str:
    """The path of a job: its id percent-encoded as one segment (``job 1`` ->
    ``job%201``), so "/", "?", "#" and "%" in it stay part of the id."""
    return "/jobs/" + urllib.parse.quote(job_id, safe="") + suffix


def since_param(since: Since, now_s: float) -> str:
    """``since`` as the query value: epoch seconds, or an RFC 3339 string as given."""
    if isinstance(since, timedelta):
        return _number(now_s - since.total_seconds())
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise ValueError("since: give an aware datetime (with a time zone)")
        return _number(since.timestamp())
    if isinstance(since, bool):
        raise ValueError("since: not a time")
    if isinstance(since, int | float):
        return _number(float(since))
    return since


def _number(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:.3f}"


def labels(label: Labels | None) -> list[tuple[str, str]]:
    if label is None:
        return []
    if isinstance(label, Mapping):
        return [("label", f"{k}={v}") for k, v in label.items()]
    if isinstance(label, str):
        return [("label", label)]
    return [("label", item) for item in label]


def pairs(**values: object) -> list[tuple[str, str]]:
    """The query pairs of the values given (``None`` left out; booleans as JSON)."""
    out = []
    for name, value in values.items():
        if value is None:
            continue
        out.append((name, json.dumps(value) if isinstance(value, bool) else str(value)))
    return out


def consistent(on: bool) -> list[tuple[str, str]]:
    return [("consistent", "true")] if on else []
