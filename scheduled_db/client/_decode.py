"""Reading the server's JSON into the typed answers: the checks shared by the models.

A field every server version sends and that is missing, or of the wrong type, is
an :class:`~scheduled_db.client.errors.UnexpectedAnswer`; an optional one reads
as its default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from scheduled_db.client.errors import UnexpectedAnswer

T = TypeVar("T")
Raw = Mapping[str, Any]


def utc(ms: int | None) -> datetime | None:
    """An instant in epoch milliseconds as an aware UTC datetime (``None`` stays)."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def obj(value: object, what: str) -> Raw:
    if not isinstance(value, dict):
        raise UnexpectedAnswer(f"unexpected answer: {what} is not a JSON object", value)
    return value


def req(raw: Raw, key: str, kind: type, what: str) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UnexpectedAnswer(f'unexpected answer: {what} has no "{key}" ({kind.__name__})', raw)
    return value


def opt(raw: Raw, key: str, kind: type, default: Any = None) -> Any:
    value = raw.get(key, default)
    if value is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return default
    return value


def items(raw: Raw, key: str, item: Callable[[object], T], what: str) -> tuple[T, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise UnexpectedAnswer(f'unexpected answer: {what}: "{key}" is not a list', raw)
    return tuple(item(v) for v in value)
