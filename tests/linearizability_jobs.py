"""The model of scheduled-db's jobs for the checker in :mod:`tests.linearizability`.

The model (:data:`JOB_MODEL`, per job id), as ``actors/api/jobs.py`` and
``scheduled_db/state/transitions.py`` answer today:

* ``Create(id, body)``: a new job answers 200 (what the route sends) or 201
  (accepted should the route adopt it); an existing job with the same body
  answers 200 and is unchanged, with another body 409.  A 200 is thus read as
  "created now" or "already there".
* ``Get(id)``: 404, or ``Reply(200, status)``.
* ``Delete(id)``: 204 (200 also accepted) whatever the status; 404 if absent.
* ``Cancel(id)``: 200 for an unfinished job (pending, in_progress, or an outcome
  status still open to a retry or a next run) and for a cancelled one (the
  route's UNCHANGED); 404 if absent; for a finished job 400 (the route overrides
  ``InvalidTransition``'s 409 to 400; 409 is accepted too).

The scheduler moves jobs by itself, so a job's state is the set of its possible
*phases* (shown status, finished?), closed under moves made without a client:
from any unfinished phase every unfinished phase is reachable (claims, outcomes,
retries, a recurring job's next run; job types are not told apart, which only
makes the model more permissive) and so is every finished outcome
(completed/failed/timeout); a finished phase never changes, and only a client's
cancel makes ``cancelled``.  Not modelled: pause/resume/update (keep them out of
histories), and the pruning of finished jobs after ``history_retention_ms``
(720 h by default).  Record a write's 5xx or transport failure as an unknown
outcome, and only well-formed requests (a 400 to a cancel reads as "finished").
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from scheduled_db.jobs.model import JobStatus
from tests.linearizability import UNKNOWN, Model, Operation, partition_by

# --- the job model ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    """``POST /jobs`` with ``id``; ``body`` fingerprints the rest of the body."""

    job_id: str
    body: Hashable


@dataclass(frozen=True, slots=True)
class Get:
    """``GET /jobs/{id}`` (or ``/status``)."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Delete:
    job_id: str


@dataclass(frozen=True, slots=True)
class Cancel:
    job_id: str


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: the HTTP code, and for a 200 to a :class:`Get` the job's status."""

    code: int
    status: str | None = None


JobInput = Create | Get | Delete | Cancel
Phase = tuple[JobStatus, bool]  # (the status the API shows, finished: completed_at set)
JobState = tuple[Hashable, frozenset[Phase]] | None  # None: absent; else (body, phases)

_OUTCOMES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT)
_OPEN: frozenset[Phase] = frozenset(
    (s, False) for s in (JobStatus.PENDING, JobStatus.IN_PROGRESS, *_OUTCOMES)
)
_SETTLED: frozenset[Phase] = frozenset((s, True) for s in _OUTCOMES)
_CANCELLED: frozenset[Phase] = frozenset({(JobStatus.CANCELLED, True)})
_DRIFT = _OPEN | _SETTLED
_PENDING: Phase = (JobStatus.PENDING, False)


def _drift(phases: frozenset[Phase]) -> frozenset[Phase]:
    """The phases the scheduler can move ``phases`` to without a client."""
    return phases | _DRIFT if phases & _OPEN else phases


def _write_outcomes(state: JobState, inp: JobInput) -> list[tuple[frozenset[int], JobState]]:
    """Every (acceptable codes, next state) a create/delete/cancel can have."""
    if state is None:
        if isinstance(inp, Create):
            return [(frozenset({200, 201}), (inp.body, _drift(frozenset({_PENDING}))))]
        return [(frozenset({404}), None)]
    body, phases = state
    if isinstance(inp, Create):
        return [(frozenset({200 if inp.body == body else 409}), state)]
    if isinstance(inp, Delete):
        return [(frozenset({200, 204}), None)]
    outcomes: list[tuple[frozenset[int], JobState]] = []
    if phases & (_OPEN | _CANCELLED):
        outcomes.append((frozenset({200}), (body, _CANCELLED)))
    if phases & _SETTLED:
        outcomes.append((frozenset({400, 409}), (body, phases & _SETTLED)))
    return outcomes


def _get(state: JobState, out: Any) -> tuple[bool, JobState]:
    if out is UNKNOWN:
        return True, state
    if state is None:
        return out.code == 404, state
    shown = frozenset(p for p in state[1] if p[0] == out.status)
    if out.code != 200 or not shown:
        return False, state
    return True, (state[0], _drift(shown))


def _merge(states: list[JobState]) -> JobState:
    """One state for several possible ones: only a cancel of a job that may or may
    not have finished has two, and they share the body."""
    first = states[0]
    if len(states) == 1 or first is None:
        return first
    phases: frozenset[Phase] = frozenset()
    for state in states:
        assert state is not None and state[0] == first[0]
        phases |= state[1]
    return first[0], phases


def job_step(state: JobState, inp: JobInput, out: Any) -> tuple[bool, JobState]:
    """``Model.step`` of one job id (see the module docstring)."""
    if isinstance(inp, Get):
        return _get(state, out)
    outcomes = _write_outcomes(state, inp)
    if out is UNKNOWN:
        return True, _merge([new for _, new in outcomes])
    for codes, new in outcomes:
        if out.code in codes:
            return True, new
    return False, state


_by_job_id = partition_by(lambda inp: inp.job_id)


def partition_jobs(history: Sequence[Operation]) -> list[list[Operation]]:
    """By job id; a read with an unknown outcome says nothing, and would only add
    to the search (it is a candidate forever), so it is left out."""
    return _by_job_id([op for op in history if op.ret is not None or not isinstance(op.input, Get)])


JOB_MODEL: Final[Model[JobState]] = Model(init=None, step=job_step, partition=partition_jobs)
