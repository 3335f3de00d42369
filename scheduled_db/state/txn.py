"""A state-machine transaction: typed reads and writes over an :class:`Overlay`.

Every job write goes through :meth:`Txn.put_job`, which keeps the secondary
indexes (status, due) and the counters consistent with the job record, so the
command handlers never maintain an index by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from scheduled_db.jobs.model import Attempt, Job, JobSpec, JobStatus
from scheduled_db.raft.messages import ConfChange, ConfChangeType, ConfState
from scheduled_db.state import records as r
from scheduled_db.state.stateview import Overlay, StateView, Write

DUE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.FAILED, JobStatus.TIMEOUT})
# The outcomes of an attempt that was made (a cancelled one was cut short).
RAN_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT})


def due_index_key(job: Job) -> bytes | None:
    """The job's key in the due index, or None if nothing is due for it.

    Due: not paused, a next run is set, and the job waits for a first attempt
    (pending) or for a retry (failed/timeout with a retry time).
    """
    if job.paused or job.next_run_at_ms is None or job.status not in DUE_STATUSES:
        return None
    return r.due_key(job.next_run_at_ms, job.id)


def load_counters(view: StateView) -> r.Counters:
    raw = view.get(r.COUNTERS)
    return r.Counters() if raw is None else r.decode_counters(raw)


class JobMemo:
    """The jobs last written, decoded, kept from one transaction to the next.

    An occurrence is claimed in one entry and its outcome recorded in a later one:
    each reads the job the one before wrote.  A read that finds in the state the
    very bytes remembered here takes the job remembered with them instead of
    decoding those bytes again (and the wire form of its spec with it).  Equal
    bytes are the same record, so a memo never changes what is read, whatever it
    holds: a write that never reached the disk, a job changed since, or nothing.
    Holds at most ``size`` jobs and ``max_bytes`` of their records (a decoded job
    takes about twice its record's bytes), dropping the longest unwritten first.
    """

    def __init__(self, size: int = 8192, max_bytes: int = 8 << 20) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._jobs: dict[str, tuple[bytes, Job, dict[str, Any]]] = {}
        self._bytes = 0
        self.hits = 0

    def find(self, job_id: str, raw: bytes) -> tuple[Job, dict[str, Any]] | None:
        held = self._jobs.get(job_id)
        if held is None or held[0] != raw:
            return None
        self.hits += 1
        return held[1], held[2]

    def keep(self, raw: bytes, job: Job, spec_wire: dict[str, Any]) -> None:
        jobs = self._jobs
        self.forget(job.id)  # to the newest end
        jobs[job.id] = (raw, job, spec_wire)
        self._bytes += len(raw)
        while len(jobs) > self.size or self._bytes > self.max_bytes:
            self.forget(next(iter(jobs)))

    def forget(self, job_id: str) -> None:
        held = self._jobs.pop(job_id, None)
        if held is not None:
            self._bytes -= len(held[0])

    def __len__(self) -> int:
        return len(self._jobs)


class Txn:
    """Reads see earlier writes of the same transaction; :meth:`finish` ends it.
    ``memo``: the jobs earlier transactions wrote (:class:`JobMemo`), if kept."""

    def __init__(self, view: StateView, memo: JobMemo | None = None) -> None:
        self.ov = Overlay(view)
        self._memo = memo
        base = load_counters(view)
        self._jobs = base.jobs
        self._bytes = base.bytes
        self._by_status: Counter[JobStatus] = Counter(dict(base.by_status))
        self._last_executed = base.last_executed_ms
        # Jobs read or written in this transaction, decoded: an occurrence's outcome
        # and its completion (one entry) read the job the other just wrote.  Only
        # the methods below write job records, so this never disagrees with them.
        self._decoded: dict[str, Job] = {}
        # The wire form of each spec written, by the spec's identity (held here, so
        # no id is reused meanwhile): a job's spec is the same object from one
        # version of the job to the next, and its wire form the costliest part.
        self._spec_wire: dict[int, tuple[JobSpec, dict[str, Any]]] = {}

    # -- jobs --

    def get_job(self, job_id: str) -> Job | None:
        job = self._decoded.get(job_id)
        if job is not None:
            return job
        raw = self.ov.get(r.job_key(job_id))
        if raw is None:
            return None
        known = None if self._memo is None else self._memo.find(job_id, raw)
        if known is None:
            job = r.decode_job(raw)
        else:
            job, spec_wire = known
            self._spec_wire[id(job.spec)] = (job.spec, spec_wire)
        self._decoded[job_id] = job
        return job

    def put_job(self, old: Job | None, new: Job) -> None:
        """Write ``new`` (which replaces ``old``, None for a new job) and its indexes.

        A new job's keys cannot exist (a delete removes them all), so none is read
        for an old size (:meth:`Overlay.put_new`): on a node that is a RocksDB read
        a key fewer."""
        put = self.ov.put_new if old is None else self.ov.put
        spec_wire = self._wire_of(new.spec)
        raw = r.encode_job(new, spec_wire)
        put(r.job_key(new.id), raw)
        self._decoded[new.id] = new
        if self._memo is not None:
            self._memo.keep(raw, new, spec_wire)
        if old is None:
            self._jobs += 1
        # A job's status and due keys are what its record says they are (the indexes
        # are kept here and nowhere else), so the old ones are there and the new ones
        # are not: none is read from the base for the size of its value.
        if old is None or old.status is not new.status:
            if old is not None:
                self.ov.delete_present(r.status_key(old.status, old.id))
                self._by_status[old.status] -= 1
            self.ov.put_new(r.status_key(new.status, new.id), b"")
            self._by_status[new.status] += 1
        old_due = None if old is None else due_index_key(old)
        new_due = due_index_key(new)
        if old_due != new_due:
            if old_due is not None:
                self.ov.delete_present(old_due)
            if new_due is not None:
                self.ov.put_new(new_due, b"")
        if old is None or old.spec is not new.spec or old.paused is not new.paused:
            old_keys = set() if old is None else set(r.index_keys(old))
            new_keys = r.index_keys(new)
            for key in old_keys.difference(new_keys):
                self.ov.delete(key)
            for key in new_keys:
                if key not in old_keys:
                    put(key, b"")

    def _wire_of(self, spec: JobSpec) -> dict[str, Any]:
        held = self._spec_wire.get(id(spec))
        if held is None or held[0] is not spec:
            held = self._spec_wire[id(spec)] = (spec, r.spec_to_wire(spec))
        return held[1]

    def remove_job(self, job: Job) -> None:
        """Delete the job, its indexes, its execution record and its history."""
        for key, value in list(self.ov.iter_range(*_range(r.history_prefix(job.id)))):
            a = r.decode_attempt(value)
            self.ov.delete(key)
            self.ov.delete(_by_start(a))
        for g in self.triggers_of(job.id):
            self.delete_trigger(g)
        due = due_index_key(job)
        if due is not None:
            self.ov.delete(due)
        for key in (r.job_key(job.id), r.exec_key(job.id), r.claim_key(job.id)):
            self.ov.delete(key)
        self.ov.delete(r.status_key(job.status, job.id))
        for key in r.index_keys(job):
            self.ov.delete(key)
        self._jobs -= 1
        self._by_status[job.status] -= 1
        self._decoded.pop(job.id, None)
        if self._memo is not None:
            self._memo.forget(job.id)

    # -- execution state --

    def get_exec(self, job_id: str) -> r.Execution:
        raw = self.ov.get(r.exec_key(job_id))
        return r.Execution(None) if raw is None else r.decode_execution(raw)

    def put_exec(self, job_id: str, ex: r.Execution, new: bool = False) -> None:
        """Write a job's execution record; ``new``: the job's first, none of whose
        keys can exist (as :meth:`put_job` of a new job)."""
        put = self.ov.put_new if new else self.ov.put
        put(r.exec_key(job_id), r.encode_execution(ex))
        if ex.claim_open:
            put(r.claim_key(job_id), b"")
        elif not new:
            self.ov.delete(r.claim_key(job_id))

    # -- notices of outcomes (scheduled_db.state.notices) --

    def get_notice(self, key: bytes) -> r.Notice | None:
        raw = self.ov.get(key)
        return None if raw is None else r.decode_notice(raw)

    def put_notice(self, notice: r.Notice) -> None:
        self.ov.put(notice.key, r.encode_notice(notice))

    def delete_notice(self, notice: r.Notice) -> None:
        self.ov.delete(notice.key)

    # -- triggered runs --

    def get_trigger(self, job_id: str, asked_ms: int) -> r.Trigger | None:
        key = r.trigger_key(job_id, asked_ms)
        raw = self.ov.get(key)
        return None if raw is None else r.decode_trigger(key, raw)

    def put_trigger(self, old: r.Trigger | None, new: r.Trigger) -> None:
        """Write ``new`` (replacing ``old``, None for a new run) and its due entry."""
        self.ov.put(new.key, r.encode_trigger(new))
        old_due = None if old is None else old.due_key
        if old_due != new.due_key:
            if old_due is not None:
                self.ov.delete(old_due)
            if new.due_key is not None:
                self.ov.put(new.due_key, b"")

    def delete_trigger(self, g: r.Trigger) -> None:
        self.ov.delete(g.key)
        if g.due_key is not None:
            self.ov.delete(g.due_key)

    def triggers_of(self, job_id: str) -> list[r.Trigger]:
        """The job's triggered runs not yet finished (a list: callers delete them)."""
        pairs = self.ov.iter_range(*_range(r.trigger_prefix(job_id)))
        return [r.decode_trigger(k, v) for k, v in pairs]

    # -- history --

    def get_attempt(
        self, job_id: str, scheduled_at_ms: int, attempt: int, trigger: bool = False
    ) -> Attempt | None:
        raw = self.ov.get(r.history_key(job_id, scheduled_at_ms, attempt, trigger))
        return None if raw is None else r.decode_attempt(raw)

    def put_attempt(self, a: Attempt) -> None:
        key = r.history_key(a.job_id, a.scheduled_at_ms, a.attempt_num, a.trigger)
        self.ov.put(key, r.encode_attempt(a))
        self.ov.put(_by_start(a), b"")
        if a.end_time_ms is not None and a.status in RAN_STATUSES:
            self._last_executed = max(a.end_time_ms, self._last_executed or 0)

    def attempts_started_before(self, cutoff_ms: int) -> Iterator[tuple[str, int, int, bool]]:
        """``(job id, occurrence, attempt, trigger)`` of attempts claimed before
        ``cutoff_ms`` (an attempt starts at most the scheduler's claim-ahead later)."""
        for key, _ in self.ov.iter_range(r.BY_START, r.BY_START + r.u64(cutoff_ms)):
            yield r.parse_by_start_key(key)

    def delete_attempt(self, a: Attempt) -> None:
        self.ov.delete(r.history_key(a.job_id, a.scheduled_at_ms, a.attempt_num, a.trigger))
        self.ov.delete(_by_start(a))

    # -- cluster members --

    def record_member(self, change: ConfChange) -> None:
        """Keep the address a conf change carries; forget a removed member's."""
        key = r.member_key(change.node_id)
        if change.type is ConfChangeType.REMOVE:
            self.ov.delete(key)
        elif change.context:
            r.decode_member(change.context)  # only a well-formed address is kept
            self.ov.put(key, change.context)

    # -- the end --

    def finish(self, applied: int, term: int, conf: ConfState | None) -> list[Write]:
        """Write the applied position, conf state and counters; return all writes."""
        if conf is not None:
            self.ov.put(r.CONF, r.encode_conf(conf))
        if self.ov.get(r.INDEXES) is None:
            self._build_indexes()
        self.ov.put(r.APPLIED, r.encode_applied(applied, term))
        counters = r.Counters(
            self._jobs,
            self._bytes + self.ov.size_delta,
            tuple((s, self._by_status[s]) for s in r.STATUS_ORDER),
            self._last_executed,
        )
        self.ov.put(r.COUNTERS, r.encode_counters(counters))
        return self.ov.writes()

    def _build_indexes(self) -> None:
        """Index every job (a state written before these indexes existed): the same
        keys on every replica, whenever it runs, since they follow from the jobs."""
        for _, value in list(self.ov.iter_range(*_range(r.JOB))):
            for key in r.index_keys(r.decode_job(value)):
                self.ov.put(key, b"")
        self.ov.put(r.INDEXES, r.encode_indexes_version(r.INDEXES_VERSION))


def _by_start(a: Attempt) -> bytes:
    # Keyed by the claim time, which an attempt keeps from claim to outcome (its
    # start moves to the send time): the key written at the claim is the one deleted.
    return r.by_start_key(a.claim_ms, a.job_id, a.scheduled_at_ms, a.attempt_num, a.trigger)


def _range(prefix: bytes) -> tuple[bytes, bytes]:
    return prefix, r.prefix_end(prefix)
