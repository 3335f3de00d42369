"""The job state machine: committed Raft entries in, state writes and results out.

:func:`apply_entries` is a pure function of (state, entries): it reads a
:class:`~scheduled_db.state.stateview.StateView`, never the clock, and returns every
write the entries produce *together with* the new applied position, the
membership and the counters.  The caller makes that one atomic batch, so a
crash can neither apply an entry twice nor apply half of one.

Entry handling:

* an empty NORMAL entry (the leader's no-op on election) only advances the
  applied index;
* a CONF_CHANGE entry changes the membership in the Raft host, which applies it
  to its core and passes the resulting :class:`ConfState`, persisted in the same
  batch; here it only records the address the change carries (or forgets a
  removed member's), so every node knows where every member is reachable;
* any other NORMAL entry is a command (see :mod:`scheduled_db.state.commands`); one
  that does not decode is rejected with an ``INVALID`` result, never raised;
* entries at or below the applied index are skipped, so replaying a log tail
  after a restart is harmless.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scheduled_db.raft.messages import ConfChange, ConfState, DecodeError, Entry, EntryType
from scheduled_db.state import commands as c
from scheduled_db.state import notices as n
from scheduled_db.state import transitions as t
from scheduled_db.state import triggers as g
from scheduled_db.state.records import APPLIED, RecordError, decode_applied
from scheduled_db.state.results import CommandResult, EntryResult, ResultCode
from scheduled_db.state.stateview import StateView, Write
from scheduled_db.state.txn import JobMemo, Txn


class Proposals(Protocol):
    """Commands this node encoded into entry data, to apply without decoding that
    data (actors/storage/proposed.py): ``take`` gives the very command, or None."""

    def take(self, data: bytes) -> c.Command | None: ...


class ApplyOrderError(RuntimeError):
    """The host broke the apply contract (a gap in indexes, a conf change without
    its ConfState): a bug in the caller, never a consequence of entry data."""


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What one call of :func:`apply_entries` produced; ``writes`` is one batch."""

    writes: tuple[Write, ...]
    results: tuple[EntryResult, ...]
    applied_index: int
    applied_term: int


_HANDLERS: dict[type[Any], Callable[[Txn, Any], CommandResult]] = {
    c.CreateJob: t.create,
    c.DeleteJob: t.delete,
    c.CancelJob: t.cancel,
    c.ClaimOccurrence: lambda tx, cmd: (g.claim if cmd.trigger else t.claim)(tx, cmd),
    c.RecordOutcome: lambda tx, cmd: (g.record_outcome if cmd.trigger else t.record_outcome)(
        tx, cmd
    ),
    c.CompleteOccurrence: t.complete,
    c.UpdateJob: t.update,
    c.PauseJob: t.pause,
    c.ResumeJob: t.resume,
    c.PruneHistory: t.prune_history,
    c.TriggerJob: g.trigger,
    c.SettleNotice: n.settle,
    c.StartRun: g.start_run,
}


def applied_position(view: StateView) -> tuple[int, int]:
    """``(index, term)`` of the last applied entry; ``(0, 0)`` for a fresh state."""
    raw = view.get(APPLIED)
    return (0, 0) if raw is None else decode_applied(raw)


def apply_command(tx: Txn, command: c.Command) -> tuple[CommandResult, ...]:
    """Apply one command (a batch gives one result per command it carries)."""
    if isinstance(command, c.Batch):
        return tuple(r for sub in command.commands for r in apply_command(tx, sub))
    return (_HANDLERS[type(command)](tx, command),)


def _apply_entry(tx: Txn, entry: Entry, proposed: Proposals | None) -> EntryResult:
    if entry.type is EntryType.CONF_CHANGE:
        _record_member(tx, entry.data)
        return EntryResult(entry.index)
    if not entry.data:
        return EntryResult(entry.index)
    command = None if proposed is None else proposed.take(entry.data)
    if command is None:
        try:
            command = c.decode_command(entry.data)
        except c.CommandDecodeError as exc:
            detail = str(exc)
            return EntryResult(entry.index, (CommandResult(ResultCode.INVALID, detail=detail),))
    return EntryResult(entry.index, apply_command(tx, command))


def _record_member(tx: Txn, data: bytes) -> None:
    # The host has applied this change to its core already, so it decodes; an
    # address that does not is left out (the member is still a member).
    with contextlib.suppress(DecodeError, RecordError):
        tx.record_member(ConfChange.decode(data))


def apply_entries(
    view: StateView,
    entries: Sequence[Entry],
    conf_state: ConfState | None = None,
    proposed: Proposals | None = None,
    memo: JobMemo | None = None,
) -> ApplyOutcome:
    """Apply the committed ``entries`` (in index order) to ``view``.

    ``conf_state`` is the membership after the CONF_CHANGE entries among them;
    it is required if any is applied, and persisted with the batch if given.
    ``proposed``: the commands this node encoded into entry data, taken in place of
    decoding it (the same command: see :class:`Proposals`).  ``memo``: the jobs
    earlier calls wrote, kept to be read without decoding (:class:`JobMemo`).
    Raises :class:`ApplyOrderError` on a gap after the applied index.
    """
    index, term = applied_position(view)
    tx = Txn(view, memo)
    results: list[EntryResult] = []
    conf_seen = False
    for entry in entries:
        if entry.index <= index:
            continue
        if entry.index != index + 1:
            raise ApplyOrderError(f"entry {entry.index} does not follow applied {index}")
        conf_seen = conf_seen or entry.type is EntryType.CONF_CHANGE
        results.append(_apply_entry(tx, entry, proposed))
        index, term = entry.index, entry.term
    if conf_seen and conf_state is None:
        raise ApplyOrderError("a conf change was applied without its ConfState")
    if not results and conf_state is None:
        return ApplyOutcome((), (), index, term)  # a pure replay: nothing to write
    writes = tx.finish(index, term, conf_state)
    return ApplyOutcome(tuple(writes), tuple(results), index, term)
