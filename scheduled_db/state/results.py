"""What applying a command returns to its proposer and to subscribers.

Results are values, never exceptions: an invalid command is rejected with a
code that every replica computes identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scheduled_db.jobs.model import Attempt, Job
from scheduled_db.state.commands import CommandKind
from scheduled_db.state.records import Notice, Trigger


class ResultCode(StrEnum):
    OK = "ok"
    UNCHANGED = "unchanged"  # already in the asked-for state (pause a paused job...)
    EXISTS_IDENTICAL = "exists_identical"  # create of an existing job with the same spec
    EXISTS_DIFFERENT = "exists_different"  # create of an existing id with another spec
    NOT_FOUND = "not_found"
    ILLEGAL_TRANSITION = "illegal_transition"  # the job's status does not allow it
    STALE = "stale"  # names an occurrence/attempt/term that is not the current one
    INVALID = "invalid"  # malformed or self-contradictory command


ACCEPTED = frozenset({ResultCode.OK, ResultCode.UNCHANGED, ResultCode.EXISTS_IDENTICAL})


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of one command.

    ``job`` is the job after the command (for a delete: the removed job; for a
    rejection: the current job if there is one).  ``attempt`` is the attempt a
    claim created or an outcome closed.  ``count`` is what a prune removed.
    ``trigger`` is a triggered run after a command on it (a trigger, or the claim
    or outcome of one of its attempts): None once its outcome was final.
    ``notices`` are the notices of outcomes an outcome called for, or the one a
    settle kept for another try; ``skips`` the entries of skipped runs written.
    """

    code: ResultCode
    kind: CommandKind | None = None  # None: the entry did not decode
    job_id: str | None = None
    job: Job | None = None
    attempt: Attempt | None = None
    detail: str = ""
    count: int = 0
    trigger: Trigger | None = None
    notices: tuple[Notice, ...] = ()
    skips: tuple[Attempt, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED

    @property
    def changed(self) -> bool:
        return self.code is ResultCode.OK


@dataclass(frozen=True, slots=True)
class EntryResult:
    """Results of one applied entry: none for a no-op or a conf change, one per
    command otherwise (a batch gives one per command it carries, in order)."""

    index: int
    results: tuple[CommandResult, ...] = ()
