"""The scheduler tests' worlds (a node's storage, Raft and scheduler, with a probe for
its webhook actor), for test_scheduler.py and test_scheduler_triggers.py alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.actors.scheduler.test_scheduler import World, _world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, history_retention="720h")


@pytest.fixture
def short_memory(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, history_retention="60s")
