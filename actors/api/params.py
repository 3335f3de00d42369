"""Query-string parameters the job routes share: the names a route knows (any other
is refused, naming it) and the opaque paging cursor."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from scheduled_db.errors import ValidationError
from scheduled_db.jobs.validation import MAX_CURSOR_CHARS

_CURSOR = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CURSOR_CHARS}}}", re.ASCII)


def refuse_unknown(names: Iterable[str], known: Collection[str]) -> None:
    """400 naming the first parameter of ``names`` that is not in ``known``."""
    unknown = sorted(name for name in names if name not in known)
    if unknown:
        listed = ", ".join(sorted(known))
        raise ValidationError(unknown[0], f"unknown query parameter (known: {listed})")


def cursor(value: str | None) -> str | None:
    """The ``cursor`` parameter (a ``next_cursor`` handed out); None when absent or
    empty.  Only its form is checked here: the store says whether it is one of its own."""
    if value is None or value == "":
        return None
    if not _CURSOR.fullmatch(value):
        raise ValidationError("cursor", "Invalid cursor")
    return value
