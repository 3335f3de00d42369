"""The transport tests' nodes, shared by the plain and the TLS tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def nodes() -> Iterator[Callable[..., Any]]:
    """Starts transport test nodes by name; stops every one after the test."""
    from tests.actors.raft.test_transport import TIMEOUT_S, Node  # the tests' own node

    started: list[Node] = []

    def start(name: str, **kw: Any) -> Node:
        node = Node(name, **kw)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            for ref in (node.ref, node.probe):
                if ref.is_alive():
                    ref.stop(timeout=TIMEOUT_S)
