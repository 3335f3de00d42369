"""Test helpers for the state machine: an in-memory machine and an invariant check."""

from __future__ import annotations

from collections import Counter

from scheduled_db.jobs.model import Job, JobSpec, JobStatus, JobType
from scheduled_db.raft.messages import ConfState, Entry
from scheduled_db.state import commands as c
from scheduled_db.state import fsm
from scheduled_db.state import records as r
from scheduled_db.state.results import CommandResult
from scheduled_db.state.stateview import MemoryState, StateView
from scheduled_db.state.txn import due_index_key

ALL = (b"", b"\xff")


def spec(job_id: str = "j1", recurring: bool = False, **kw: object) -> JobSpec:
    base: dict[str, object] = {
        "id": job_id,
        "type": JobType.RECURRENTE if recurring else JobType.UNICO,
        "timestamp_ms": None if recurring else 1_000,
        "cron_expression": "0 * * * *" if recurring else None,
        "webhook_url": "https://example.com/hook",
        "payload": {"k": "v"},
    }
    base.update(kw)
    return JobSpec(**base)  # type: ignore[arg-type]


class Machine:
    """A MemoryState plus the Raft-ish bookkeeping of applying entries to it."""

    def __init__(self) -> None:
        self.state = MemoryState()
        self.index = 0

    def apply_data(self, *datas: bytes, conf: ConfState | None = None) -> fsm.ApplyOutcome:
        entries = []
        for data in datas:
            self.index += 1
            entries.append(Entry(1, self.index, data=data))
        out = fsm.apply_entries(self.state, entries, conf)
        self.state.apply(out.writes)
        return out

    def run(self, *cmds: c.Command) -> list[CommandResult]:
        """Apply each command in its own entry; the flattened results."""
        out = self.apply_data(*(c.encode_command(x) for x in cmds))
        return [res for e in out.results for res in e.results]

    def one(self, cmd: c.Command) -> CommandResult:
        (res,) = self.run(cmd)
        return res


def _keys(view: StateView, prefix: bytes) -> set[bytes]:
    return {k for k, _ in view.iter_range(prefix, r.prefix_end(prefix))}


def check_invariants(view: StateView) -> None:
    """Indexes and counters agree with the job records (a full scan: tests only)."""
    jobs = [r.decode_job(v) for _, v in view.iter_range(r.JOB, r.prefix_end(r.JOB))]
    assert _keys(view, r.STATUS) == {r.status_key(j.status, j.id) for j in jobs}
    assert _keys(view, r.DUE) == {k for j in jobs if (k := due_index_key(j)) is not None}
    assert _keys(view, r.EXEC) == {r.exec_key(j.id) for j in jobs}
    claims = set()
    for j in jobs:
        raw = view.get(r.exec_key(j.id))
        assert raw is not None
        if r.decode_execution(raw).claim_open:
            claims.add(r.claim_key(j.id))
    assert _keys(view, r.CLAIM) == claims
    history = [r.decode_attempt(v) for _, v in view.iter_range(r.HISTORY, r.prefix_end(r.HISTORY))]
    assert {a.job_id for a in history} <= {j.id for j in jobs}
    claimed = {
        r.by_start_key(a.claim_ms, a.job_id, a.scheduled_at_ms, a.attempt_num, a.trigger)
        for a in history
    }
    assert _keys(view, r.BY_START) == claimed
    _check_triggers(view, {j.id: j for j in jobs})
    for a in history:  # it starts once claimed (unless it ended sooner) and ends after
        assert a.end_time_ms is None or a.start_time_ms <= a.end_time_ms, a
        assert a.claim_ms <= a.start_time_ms or a.start_time_ms == a.end_time_ms, a
    raw = view.get(r.COUNTERS)
    counters = r.Counters() if raw is None else r.decode_counters(raw)
    assert counters.jobs == len(jobs)
    by_status = Counter(j.status for j in jobs)
    assert all(counters.count(s) == by_status[s] for s in r.STATUS_ORDER)
    size = sum(len(k) + len(v) for k, v in view.iter_range(*ALL) if not k.startswith(b"m/"))
    assert counters.bytes == size


def _check_triggers(view: StateView, jobs: dict[str, Job]) -> None:
    """Triggered runs belong to jobs that are not cancelled, their due index matches
    them, and an open claim's attempt is in the history, open."""
    runs = [r.decode_trigger(k, v) for k, v in view.iter_range(r.TRIGGER, r.prefix_end(r.TRIGGER))]
    assert _keys(view, r.TRIGGER_DUE) == {g.due_key for g in runs if g.due_key is not None}
    for g in runs:
        assert g.job_id in jobs and jobs[g.job_id].status is not JobStatus.CANCELLED, g
        if g.claim_open:
            raw = view.get(r.history_key(g.job_id, g.asked_ms, g.attempt, trigger=True))
            assert raw is not None, g
            a = r.decode_attempt(raw)
            assert a.trigger and a.status is JobStatus.IN_PROGRESS and a.term == g.claim_term, a
