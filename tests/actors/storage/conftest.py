"""Stores opened by a storage test are closed after it, whatever happened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.storage.store import NodeStore, StoreOptions

OPTS = StoreOptions(snapshot_entries=10, keep_entries=2, chunk_bytes=500)
_opened: list[NodeStore] = []


def open_store(path: Path, node_id: str = "n1", **kw: object) -> NodeStore:
    """A NodeStore with small snapshot and chunk sizes, closed after the test."""
    store = NodeStore.open(path, node_id, options=OPTS, **kw)  # type: ignore[arg-type]
    _opened.append(store)
    return store


def close_store(store: NodeStore) -> None:
    """Close a store now (it is no longer closed after the test)."""
    _opened.remove(store)
    store.close()


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()
