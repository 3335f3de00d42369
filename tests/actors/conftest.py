"""Fixtures shared by the actor tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from tests.actors.probe import Inbox, start_probe

PROBE_STOP_S = 10.0


@pytest.fixture
def probe() -> Iterator[tuple[pykka.ActorRef[Any], Inbox]]:
    """A probe actor that records what it is told, and its inbox; stopped after."""
    ref, inbox = start_probe()
    try:
        yield ref, inbox
    finally:
        ref.stop(timeout=PROBE_STOP_S)
