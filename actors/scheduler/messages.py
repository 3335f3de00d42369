"""Messages the SchedulerActor (actors/scheduler/actor.py) sends itself.

Every message is a frozen dataclass; a request that is answered carries a
``reply`` (:data:`actors.runtime.replies.Reply`).  See docs/architecture.md,
"One way to reply".
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.raft.messages import ProposeOutcome
from scheduled_db.firing.slots import SlotKey


@dataclass(frozen=True, slots=True)
class Wake:
    """The scheduler's alarm went off (or a test advanced its clock)."""


@dataclass(frozen=True, slots=True)
class SchedulerProposed:
    """The outcome of a proposal the scheduler made in leadership ``epoch``;
    ``purpose`` is "claim" or "outcome", ``keys`` the occurrences' keys in command order."""

    epoch: int
    purpose: str
    keys: tuple[SlotKey, ...]
    outcome: ProposeOutcome
