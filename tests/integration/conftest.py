"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduled_db.testing.harness import NodeProcess


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    """One node process on the embedded defaults, serving; stopped after the test."""
    proc = NodeProcess(tmp_path / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop_if_running()
