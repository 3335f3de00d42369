"""The values the Raft core hands its host, and the errors it raises.

The refusals it raises on a proposal (:class:`~scheduled_db.errors.ProposalDropped`,
:class:`~scheduled_db.errors.NotLeader`) are the ones of :mod:`scheduled_db.errors`.

Kept apart from :mod:`scheduled_db.raft.core` so the state machine reads on its
own; ``core`` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduled_db.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
)
from scheduled_db.raft.progress import ProgressState
from scheduled_db.raft.replication import Role


class ConfChangeError(ValueError):
    """A membership change that makes no sense against the current configuration."""


@dataclass(frozen=True, slots=True)
class SoftState:
    lead: str
    role: Role


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the host; see the module docstring for the order."""

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]
    # Whether the core led when it made this Ready: then its appends and heartbeats
    # may leave before the Ready is persisted (see ``early``).
    leader: bool = False

    @property
    def must_sync(self) -> bool:
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None

    @property
    def early(self) -> tuple[Message, ...]:
        """The messages a host may send before persisting this Ready (thesis §10.2.1):
        a leader's appends and heartbeats.  The leader counts its own entries towards
        a commit only once the host has made them durable (``advance``), so an entry
        never commits on fewer durable copies than a majority, and the commit index
        these messages carry was already durable on one.  Every other message (votes,
        acknowledgements, snapshots, reads) depends on this Ready's state and waits:
        :attr:`late`.  A host may also send everything after persisting."""
        if not self.leader:
            return ()
        return tuple(m for m in self.messages if m.type in _EARLY)

    @property
    def late(self) -> tuple[Message, ...]:
        """The messages that must wait until this Ready is persisted."""
        if not self.leader:
            return self.messages
        return tuple(m for m in self.messages if m.type not in _EARLY)


_EARLY = frozenset({MessageType.APP, MessageType.HEARTBEAT})


@dataclass(frozen=True, slots=True)
class PeerStatus:
    match: int
    next: int
    state: ProgressState
    recent_active: bool
    is_learner: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    term: int
    vote: str
    commit: int
    applied: int
    lead: str
    role: Role
    conf_state: ConfState
    progress: dict[str, PeerStatus]
    lead_transferee: str
