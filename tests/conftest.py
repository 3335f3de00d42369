"""Fixtures shared across the test tree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.actors.webhook_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real webhook receiver on an ephemeral port of 127.0.0.1, stopped after the
    test (held ``/block`` requests are let through first)."""
    started = Receiver().start()
    try:
        yield started
    finally:
        started.stop()
