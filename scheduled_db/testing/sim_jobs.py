"""Triggered runs in the simulator: the real state machine on every simulated node, a
model of the leader's scheduler, and the promises a triggered run keeps.

Each node applies its committed entries to a job state of its own
(:func:`scheduled_db.state.fsm.apply_entries` over a MemoryState, carried in its
snapshots), so every fault the simulator throws at Raft is also thrown at
``POST /jobs/{id}/trigger``.  The client creates a few jobs, then asks for triggered
runs (and once in a while cancels one job).  One job is recurring with ``overlap:
allow``: the leader starts each of its occurrences as a run of its own
(``StartRun``) once due, while the ones before may still be in flight, and those
runs then go the triggered runs' way.  The node that leads, once its leadership
is established, does what the SchedulerActor does for them with the same pure
decisions (:mod:`scheduled_db.firing.decisions`): claims each due run through Raft,
"delivers" a committed claim of its own term only while its leader lease holds,
proposes the outcome when the response comes (a retry, or the final outcome), claims
again (the next attempt, the same run) what an older term left open, and times out
what is left open with no attempts to spare.

What :class:`TriggerChecker` holds it to, at every delivery and at the end:

* claim before fire: a delivery's attempt is a committed claim of the sender's
  current term, open in the sender's applied state;
* never fired by a deposed leader: when a delivery leaves, no node leads a newer
  term, and the deliveries of one run never go back to an older term;
* each attempt of a run is delivered at most once, and a completed attempt was
  delivered by the node and term that claimed it;
* a trigger never touches the schedule: an entry of trigger commands only writes
  the run's keys, the history and the failure notice a failed run calls for (the
  jobs have ``on_failure``; never ``j/``, ``x/``, ``s/``, ``d/``, ``c/``);
* after healing, every run ends (its record is gone) and every notice is settled
  (the leader settles each as soon as it sees it), within the liveness bound.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random

import msgpack

from scheduled_db.firing import decisions as firing
from scheduled_db.jobs.model import Attempt, Callback, JobSpec, JobStatus, JobType, Overlap
from scheduled_db.raft.messages import ConfState, Entry
from scheduled_db.state import commands as c
from scheduled_db.state import fsm, queries
from scheduled_db.state import records as r
from scheduled_db.state.results import CommandResult, ResultCode
from scheduled_db.state.stateview import MemoryState
from scheduled_db.state.txn import JobMemo

ALLOW_JOB = "a1"  # recurring, overlap: allow (its runs start every RUN_EVERY_MS)
RUN_EVERY_MS = 150
JOBS = ("j1", "j2", "j3", ALLOW_JOB)
CANCELLABLE = "j3"  # the job the client may cancel (its runs end with it)
FAR_MS = 10**12  # the jobs' own run: never due within a simulation
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # j1's creating request
POLICY = firing.Policy(max_attempts=3, timeout_ms=40, backoff_base_ms=10, backoff_cap_ms=40)
RESEND_MS = 200  # a claim or outcome not applied by then is proposed again
INPROGRESS_MS = 300  # an attempt of this term sent this long ago, still open, timed out
# Keys an entry of trigger commands may write: the run, its due index, the history.
_TRIGGER_WRITES = (r.TRIGGER, r.TRIGGER_DUE, r.HISTORY, r.BY_START, r.NOTICE, r.META_PREFIX)

RunKey = tuple[str, int]  # (job id, asked ms)


def job_spec(job_id: str) -> JobSpec:
    """The simulated jobs: a run that fails for good leaves a failure notice."""
    if job_id == ALLOW_JOB:
        return JobSpec(
            job_id,
            JobType.RECURRENTE,
            cron_expression="* * * * * *",  # not read: the simulation's leader says when
            webhook_url="http://receiver.sim/hook",
            on_failure=Callback("http://receiver.sim/failed"),
            overlap=Overlap.ALLOW,
        )
    return JobSpec(
        job_id,
        JobType.UNICO,
        FAR_MS,
        webhook_url="http://receiver.sim/hook",
        on_failure=Callback("http://receiver.sim/failed"),
    )


class Proposed(dict[bytes, c.Command]):
    """A node's memo of the commands it proposed (one thread: no lock, no bound; a
    restart or a new term forgets it)."""

    def remember(self, data: bytes, command: c.Command) -> None:
        self[data] = command

    def take(self, data: bytes) -> c.Command | None:
        return self.pop(data, None)


@dataclass
class NodeJobs:
    """One node's applied job state and, while it leads, its scheduler's memory."""

    state: MemoryState = field(default_factory=MemoryState)
    applied_term: int = 0  # of the last entry applied: established once it is the node's
    term: int = 0  # the term the scheduler's memory belongs to
    proposed: dict[tuple[object, ...], int] = field(default_factory=dict)  # what -> when
    sent: dict[tuple[str, int, int], int] = field(default_factory=dict)  # attempt -> when
    fenced: bool = False  # an attempt waits for the lease
    # The commands this node proposed, applied undecoded as a node's API does
    # (actors/storage/proposed.py): a difference from the decoded command shows in
    # the digests.
    memo: Proposed = field(default_factory=lambda: Proposed())
    # The jobs its applies wrote, read back undecoded as a node's storage does
    # (scheduled_db.state.txn.JobMemo); small, so jobs fall out of it, and kept over
    # restores and restarts: whatever it holds, what a read finds must not change.
    jobs_written: JobMemo = field(default_factory=lambda: JobMemo(size=16))

    def restore(self, data: bytes, index: int) -> None:
        """The state a snapshot carries (none: the bootstrap's, empty at ``index``)."""
        self.state = MemoryState()
        if data:
            self.state.apply((bytes(k), bytes(v)) for k, v in msgpack.unpackb(data))
        else:
            self.state.apply([(r.APPLIED, r.encode_applied(index, 0))])
        self.applied_term = fsm.applied_position(self.state)[1]
        self.forget()

    def snapshot(self) -> bytes:
        pairs = [[k, v] for k, v in self.state.iter_range(b"", b"\xff\xff")]
        return bytes(msgpack.packb(pairs, use_bin_type=True))

    def forget(self) -> None:
        """A restart, or a new term: the scheduler starts from the state alone."""
        self.proposed.clear()
        self.sent.clear()
        self.memo = Proposed()

    def apply(self, entry: Entry, conf: ConfState | None) -> Applied:
        """Apply one committed entry."""
        out = fsm.apply_entries(self.state, [entry], conf, self.memo, self.jobs_written)
        self.state.apply(out.writes)
        self.applied_term = entry.term
        digest = hashlib.blake2b(repr(out.writes).encode(), digest_size=16).digest()
        results = [res for e in out.results for res in e.results]
        return Applied(digest, results, _only_run_keys(entry, out.writes))


@dataclass(frozen=True)
class Applied:
    """What applying one entry did: a digest of its writes (replicas must agree on
    it), its results, and whether it kept to the run's keys if it is a trigger entry."""

    digest: bytes
    results: list[CommandResult]
    kept_to_its_run: bool


def _only_run_keys(entry: Entry, writes: tuple[tuple[bytes, bytes | None], ...]) -> bool:
    if not entry.data:
        return True
    try:
        command = c.decode_command(entry.data)
    except c.CommandDecodeError:
        return True
    return not is_trigger_entry(command) or all(k.startswith(_TRIGGER_WRITES) for k, _ in writes)


def client_command(rng: Random, now: int, state: MemoryState) -> c.Command:
    """The client's next job command, judged from what some node has applied."""
    missing = [j for j in JOBS if queries.get_job(state, j) is None]
    if missing:
        # One job is created as a traced request creates it: the context travels in
        # its entry and record, through snapshots and every replica's digest.
        traced = TRACEPARENT if missing[0] == JOBS[0] else None
        first = now + RUN_EVERY_MS if missing[0] == ALLOW_JOB else FAR_MS
        return c.CreateJob(job_spec(missing[0]), now, first, traced)
    if rng.random() < 0.03:
        return c.CancelJob(CANCELLABLE, now)
    return c.TriggerJob(rng.choice(JOBS), now)


def is_trigger_entry(command: c.Command) -> bool:
    if isinstance(command, c.Batch):
        return bool(command.commands) and all(is_trigger_entry(x) for x in command.commands)
    if isinstance(command, (c.ClaimOccurrence, c.RecordOutcome)):
        return command.trigger
    return isinstance(command, c.TriggerJob)


@dataclass
class _Sent:
    node: str
    term: int
    attempt: int
    at: int


@dataclass
class TriggerChecker:
    """The promises of triggered runs (see the module docstring)."""

    fail: Callable[[str], None]
    sent: dict[RunKey, list[_Sent]] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)  # indexes whose results were counted
    runs_asked: int = 0
    deliveries: int = 0
    notices: int = 0  # failure notices the runs' outcomes called for
    runs_started: int = 0  # the allow job's occurrences started as runs

    def applied(self, node: str, entry: Entry, applied: Applied) -> None:
        if not applied.kept_to_its_run:
            self.fail(f"{node}: trigger entry {entry.index} wrote outside its run's keys")
        if entry.index not in self.seen:
            self.seen.add(entry.index)
            ok = [x for x in applied.results if x.code is ResultCode.OK]
            self.runs_asked += sum(1 for x in ok if x.kind is c.CommandKind.TRIGGER)
            self.runs_started += sum(1 for x in ok if x.kind is c.CommandKind.START_RUN)
            self.notices += sum(
                len(x.notices) for x in ok if x.kind is not c.CommandKind.SETTLE_NOTICE
            )

    def delivering(
        self, node: str, term: int, a: Attempt, now: int, newest_term: int, state: MemoryState
    ) -> None:
        key = (a.job_id, a.scheduled_at_ms)
        if now < a.start_time_ms:
            self.fail(f"{node}: delivered {key} attempt {a.attempt_num} before its time")
        run = queries.get_trigger(state, *key)
        claimed = run is not None and run.claim_open and run.claim_term == term
        if not claimed or run is None or run.attempt != a.attempt_num:
            self.fail(f"{node}: delivered {key} attempt {a.attempt_num} without its open claim")
        if newest_term > term:
            self.fail(f"{node}: delivered {key} in term {term} while term {newest_term} leads")
        earlier = self.sent.setdefault(key, [])
        if any(s.attempt == a.attempt_num for s in earlier):
            self.fail(f"{node}: delivered attempt {a.attempt_num} of {key} twice")
        if any(s.term > term for s in earlier):
            self.fail(f"{node}: delivered {key} in term {term} after a newer term did")
        earlier.append(_Sent(node, term, a.attempt_num, now))
        self.deliveries += 1

    def settled(self, state: MemoryState) -> bool:
        """Every run has ended and every notice was settled (in the state of the node
        that leads)."""
        return not queries.triggers(state, limit=1) and not queries.notices(state, 1)

    def final_check(self, state: MemoryState) -> None:
        """A completed attempt was delivered by the node and term that claimed it."""
        for job_id in JOBS:
            for a in queries.executions(state, job_id):
                if not a.trigger or a.status is not JobStatus.COMPLETED:
                    continue
                sent = self.sent.get((job_id, a.scheduled_at_ms), [])
                claimant = (a.attempt_num, a.node_id, a.term)
                if not any((s.attempt, s.node, s.term) == claimant for s in sent):
                    self.fail(f"completed attempt {a.attempt_num} of {job_id} was never delivered")


Propose = Callable[[bytes], None]
Deliver = Callable[[Attempt], None]


def schedule(
    jobs: NodeJobs,
    node_id: str,
    term: int,
    now: int,
    propose: Propose,
    deliver: Deliver,
    start_runs: bool = True,
) -> None:
    """One look of an established leader's scheduler at its own applied state
    (``start_runs``: start the allow job's occurrences; not while faults heal, so
    that every run can end)."""
    if jobs.term != term:
        jobs.term = term
        jobs.forget()
    state = jobs.state
    for due in queries.due_triggers(state, now + 1):
        _once(jobs, ("claim", due.job.id, due.occurrence_ms, due.attempts + 1), now, propose,
              firing.claim(due, node_id, term, now))  # fmt: skip
    for a in queries.open_claims(state):
        if not a.trigger:
            continue
        if a.term == term and a.node_id == node_id:
            sent = jobs.sent.get((a.job_id, a.scheduled_at_ms, a.attempt_num))
            if sent is None:
                deliver(a)
            elif now - sent >= INPROGRESS_MS:  # its outcome was lost (a dropped proposal)
                _time_out(jobs, a, now, propose)
        elif a.term < term:
            _take_over(jobs, a, node_id, term, now, propose)
    if start_runs:
        _start_allow_run(jobs, node_id, term, now, propose)
    for n in queries.notices(state, 100):  # sent at once (the receiver is not simulated)
        settle = c.SettleNotice(n.job_id, n.occurrence_ms, n.attempt, n.trigger, n.event)
        _once(jobs, ("settle", n.key), now, propose, settle)


def _start_allow_run(jobs: NodeJobs, node_id: str, term: int, now: int, propose: Propose) -> None:
    """Start the allow job's occurrence once it is due (StartRun), its schedule moving
    on by RUN_EVERY_MS, whatever runs of it are still in flight."""
    job = queries.get_job(jobs.state, ALLOW_JOB)
    if job is None or job.paused or job.status is not JobStatus.PENDING:
        return
    at = job.next_run_at_ms
    if at is None or at > now:
        return
    cmd = c.StartRun(ALLOW_JOB, at, node_id, term, now, at + RUN_EVERY_MS)
    _once(jobs, ("start", at), now, propose, cmd)


def _take_over(
    jobs: NodeJobs, a: Attempt, node_id: str, term: int, now: int, propose: Propose
) -> None:
    """An attempt an older term left open: claim the next one, or time it out."""
    job = queries.get_job(jobs.state, a.job_id)
    if job is None:
        return
    what = ("claim", a.job_id, a.scheduled_at_ms, a.attempt_num + 1)
    if a.attempt_num < POLICY.attempts_for(job.spec):
        due = queries.Due(job, a.scheduled_at_ms, a.attempt_num, a.start_time_ms, trigger=True)
        _once(jobs, what, now, propose, firing.claim(due, node_id, term, now))
    else:
        _time_out(jobs, a, now, propose)


def _time_out(jobs: NodeJobs, a: Attempt, now: int, propose: Propose) -> None:
    """An open attempt whose outcome will never come: a timeout (retried if it may)."""
    lost = firing.Attempted(ok=False, end_ms=now, timed_out=True, retryable=True,
                            error_type="timeout", error_message="no outcome")  # fmt: skip
    (cmd,) = firing.after_attempt(job_spec(a.job_id), a.scheduled_at_ms, a.attempt_num, lost,
                                  POLICY, Random(0), trigger=True)  # fmt: skip
    _once(jobs, ("outcome", a.job_id, a.scheduled_at_ms, a.attempt_num), now, propose, cmd)


def outcome(a: Attempt, ok: bool, now: int, rng: Random) -> c.Command:
    """The outcome command of a delivered attempt (the response came at ``now``)."""
    result = firing.Attempted(ok=ok, end_ms=now, retryable=not ok, http_status=200 if ok else 503,
                              response_time_ms=1)  # fmt: skip
    spec = job_spec(a.job_id)
    (cmd,) = firing.after_attempt(spec, a.scheduled_at_ms, a.attempt_num, result, POLICY, rng,
                                  trigger=True)  # fmt: skip
    return cmd


def _once(
    jobs: NodeJobs, what: tuple[object, ...], now: int, propose: Propose, cmd: c.Command
) -> None:
    """Propose ``cmd`` unless it was proposed less than RESEND_MS ago (its entry may be
    lost with a leader: then the state still asks for it, and it goes again)."""
    last = jobs.proposed.get(what)
    if last is not None and now - last < RESEND_MS:
        return
    jobs.proposed[what] = now
    data = c.encode_command(cmd)
    jobs.memo.remember(data, cmd)
    propose(data)
