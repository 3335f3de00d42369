"""The key layout of the job state and the encoding of its records.

Every replica stores exactly these keys and values, so a digest over them in key
order compares replicas byte for byte.  Integers in keys are big-endian and fixed
width so that byte order is numeric order; job ids never contain NUL (the state
machine rejects such ids), so ``<id>\\0`` ends an id inside a key.

=========================================  ===========================================
key                                        value
=========================================  ===========================================
``m/applied``                              ``[index, term]`` of the last applied entry
``m/conf``                                 ``[voters, learners]`` as of that entry
``m/counters``                             ``[jobs, bytes, [count per status], last run?]``
``j/<id>``                                 the :class:`Job` record
``x/<id>``                                 the :class:`Execution` record
``s/<status>\\0<id>``                       empty: jobs by status
``d/<be64 fire ms><id>``                   empty: the due index
``c/<id>``                                 empty: a claim without outcome
``h/<id>\\0<be64 occurrence><be32 n>``      the :class:`Attempt` record
``t/<be64 claim ms><id>\\0<be64 occ><be32 n>`` empty: attempts by claim time (pruning)
``y/<type>\\0<id>``                         empty: jobs by type
``l/<key>\\0<value>\\0<id>``                empty: jobs by label (keys, values: no NUL)
``p/<id>``                                 empty: paused jobs
``m/indexes``                              the version of the index set above (see txn)
``g/<id>\\0<be64 asked ms>``                the :class:`Trigger` record of a triggered run
``q/<be64 fire ms><id>\\0<be64 asked ms>``   empty: the due index of triggered runs
``n/<id>\\0<be64 occ><be32 n><mark><e>``  a :class:`Notice` to send (``<e>``: its event)
=========================================  ===========================================

A triggered run (``POST /jobs/{id}/trigger``) is an occurrence of its own, beside
the job's schedule: its state is a ``g/`` record (not the job's ``x/``), due in
``q/`` (not ``d/``), and its attempts are ``h/`` and ``t/`` keys with
:data:`TRIGGER_MARK` after the attempt number, so a scheduled occurrence that falls
on the same millisecond never shares a key with it.  Keys without the mark are
those of scheduled attempts, byte for byte as before triggers existed.  An
``overlap: allow`` job's occurrences are kept the same way once started (a ``g/``
record with ``scheduled`` set, scheduled_db.state.triggers.start_run).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import msgpack

from scheduled_db.jobs.model import (
    FIRST_VERSION,
    JOB_ADDED_LATER,
    JOB_STATUSES,
    MAX_JOB_ID_CHARS,
    Attempt,
    Job,
    JobSpec,
    JobStatus,
    JobType,
    callbacks_to_wire,
    headers_from_wire,
    headers_to_wire,
    skip_to_wire,
)
from scheduled_db.raft.messages import ConfState

RECORD_VERSION = 1
# A job id is at most MAX_JOB_ID_CHARS characters (scheduled_db.jobs.validation),
# each at most 4 bytes of UTF-8: every valid id fits.  The state machine checks the
# bytes, what a key holds, as its own last line of defence.
MAX_JOB_ID_BYTES = 4 * MAX_JOB_ID_CHARS

APPLIED = b"m/applied"
CONF = b"m/conf"
COUNTERS = b"m/counters"
META_PREFIX = b"m/"
MEMBER = b"m/member/"  # + node id: [raft address, http address] of a cluster member
JOB = b"j/"
EXEC = b"x/"
STATUS = b"s/"
DUE = b"d/"
CLAIM = b"c/"
HISTORY = b"h/"
BY_START = b"t/"
BY_TYPE = b"y/"
BY_LABEL = b"l/"
PAUSED = b"p/"
INDEXES = b"m/indexes"
# The index set of this code: 2 added y/, l/ and p/.  A state without the key was
# written by an older version; its first apply builds them (txn.Txn.finish).
INDEXES_VERSION = 2
TRIGGER = b"g/"
TRIGGER_DUE = b"q/"
TRIGGER_MARK = b"t"  # ends the h/ and t/ keys of a triggered run's attempts
NOTICE = b"n/"

STATUS_ORDER = JOB_STATUSES  # fixed order of the per-status counters

T = TypeVar("T")
_U64 = struct.Struct(">Q")
_OCC = struct.Struct(">QI")  # occurrence ms, attempt number


class RecordError(ValueError):
    """A stored value that does not decode: the state is damaged."""


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def u64(n: int) -> bytes:
    return _U64.pack(n)


def id_bytes(job_id: str) -> bytes:
    return job_id.encode()


def job_key(job_id: str) -> bytes:
    return JOB + id_bytes(job_id)


def exec_key(job_id: str) -> bytes:
    return EXEC + id_bytes(job_id)


def claim_key(job_id: str) -> bytes:
    return CLAIM + id_bytes(job_id)


def status_prefix(status: JobStatus) -> bytes:
    return STATUS + status.value.encode() + b"\0"


def status_key(status: JobStatus, job_id: str) -> bytes:
    return status_prefix(status) + id_bytes(job_id)


def type_prefix(job_type: JobType) -> bytes:
    return BY_TYPE + job_type.value.encode() + b"\0"


def label_prefix(key: str, value: str) -> bytes:
    return BY_LABEL + key.encode() + b"\0" + value.encode() + b"\0"


def paused_key(job_id: str) -> bytes:
    return PAUSED + id_bytes(job_id)


def index_keys(job: Job) -> list[bytes]:
    """The keys of the by-type, by-label and paused indexes that hold ``job``."""
    keys = [type_prefix(job.spec.type) + id_bytes(job.id)]
    keys.extend(label_prefix(k, v) + id_bytes(job.id) for k, v in job.spec.labels)
    if job.paused:
        keys.append(paused_key(job.id))
    return keys


def new_job_bytes(job: Job) -> int:
    """What storing a new ``job`` adds to :attr:`Counters.bytes`: its record, its
    execution record and its index keys (the figure a create is admitted by)."""
    encoded = encode_job(job)
    keys = [
        job_key(job.id),
        exec_key(job.id),
        status_key(job.status, job.id),
        *index_keys(job),
    ]
    if job.next_run_at_ms is not None:
        keys.append(due_key(job.next_run_at_ms, job.id))
    execution = encode_execution(Execution(job.next_run_at_ms))
    return len(encoded) + len(execution) + sum(len(k) for k in keys)


def due_key(at_ms: int, job_id: str) -> bytes:
    return DUE + u64(at_ms) + id_bytes(job_id)


def history_prefix(job_id: str) -> bytes:
    return HISTORY + id_bytes(job_id) + b"\0"


def _mark(trigger: bool) -> bytes:
    return TRIGGER_MARK if trigger else b""


def history_key(job_id: str, scheduled_at_ms: int, attempt: int, trigger: bool = False) -> bytes:
    return history_prefix(job_id) + _OCC.pack(scheduled_at_ms, attempt) + _mark(trigger)


def by_start_key(
    start_ms: int, job_id: str, scheduled_at_ms: int, attempt: int, trigger: bool = False
) -> bytes:
    occ = _OCC.pack(scheduled_at_ms, attempt) + _mark(trigger)
    return BY_START + u64(start_ms) + id_bytes(job_id) + b"\0" + occ


def parse_by_start_key(key: bytes) -> tuple[str, int, int, bool]:
    """``(job id, occurrence ms, attempt, trigger)`` of a ``t/`` key.  The id ends
    at its NUL (an id has none); after it, 12 bytes, and the mark if triggered."""
    body = key[len(BY_START) + 8 :]
    end = body.index(b"\0")
    occ, attempt = _OCC.unpack(body[end + 1 : end + 1 + _OCC.size])
    return body[:end].decode(), occ, attempt, len(body) > end + 1 + _OCC.size


def trigger_prefix(job_id: str) -> bytes:
    return TRIGGER + id_bytes(job_id) + b"\0"


def trigger_key(job_id: str, asked_ms: int) -> bytes:
    return trigger_prefix(job_id) + u64(asked_ms)


def trigger_due_key(fire_ms: int, job_id: str, asked_ms: int) -> bytes:
    return TRIGGER_DUE + u64(fire_ms) + id_bytes(job_id) + b"\0" + u64(asked_ms)


def notice_key(job_id: str, occurrence_ms: int, attempt: int, trigger: bool, event: str) -> bytes:
    """The key of the notice of ``event`` ("failure" or "success") about an attempt."""
    occ = _OCC.pack(occurrence_ms, attempt) + _mark(trigger)
    return NOTICE + id_bytes(job_id) + b"\0" + occ + event.encode()


def parse_trigger_key(key: bytes) -> tuple[str, int]:
    """``(job id, asked ms)`` of a ``g/`` key."""
    return key[len(TRIGGER) : -9].decode(), _U64.unpack(key[-8:])[0]


def parse_trigger_due_key(key: bytes) -> tuple[int, str, int]:
    """``(fire ms, job id, asked ms)`` of a ``q/`` key."""
    fire = _U64.unpack(key[2:10])[0]
    return fire, key[10:-9].decode(), _U64.unpack(key[-8:])[0]


def parse_due_key(key: bytes) -> tuple[int, str]:
    return _U64.unpack(key[2:10])[0], key[10:].decode()


# --- records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Execution:
    """Where a job is in its current occurrence: the attempt count and any open claim."""

    occurrence_ms: int | None
    attempt: int = 0  # attempts claimed for this occurrence so far
    claim_open: bool = False
    claim_node: str | None = None
    claim_term: int = 0


@dataclass(frozen=True, slots=True)
class Trigger:
    """A triggered run of a job, from ``POST /jobs/{id}/trigger`` until its outcome is
    final (then it is deleted; its attempts stay in the history).

    ``asked_ms`` is its occurrence (when it was asked for, decided by the leader);
    ``fire_at_ms`` when its current attempt is to be sent (the occurrence, then a
    retry time).  It is due (in ``q/``) while no attempt is claimed.  The attempt
    count and the open claim are kept as :class:`Execution` keeps them for the
    job's scheduled occurrence."""

    job_id: str
    asked_ms: int
    fire_at_ms: int
    attempt: int = 0  # attempts claimed so far
    claim_open: bool = False
    claim_node: str | None = None
    claim_term: int = 0
    # Not a manual run: a scheduled occurrence of an ``overlap: allow`` job, started
    # beside the schedule (scheduled_db.state.triggers.start_run).  Added later.
    scheduled: bool = False

    @property
    def key(self) -> bytes:
        return trigger_key(self.job_id, self.asked_ms)

    @property
    def due_key(self) -> bytes | None:
        if self.claim_open:
            return None
        return trigger_due_key(self.fire_at_ms, self.job_id, self.asked_ms)


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification of an occurrence's outcome to a job's ``on_failure`` or
    ``on_success`` URL (scheduled_db.state.notices), from the outcome that called for
    it until it was sent or given up on.  Everything the request needs is here (the
    job may be deleted meanwhile); ``body`` was fixed when the outcome was applied.
    ``tries`` counts the sends that failed; the next goes at ``next_at_ms``."""

    job_id: str
    occurrence_ms: int
    attempt: int
    trigger: bool
    event: str  # "failure" | "success"
    url: str
    headers: tuple[tuple[str, str, bool], ...]
    signing_secret_ref: str | None
    body: dict[str, Any]
    tries: int = 0
    next_at_ms: int = 0

    @property
    def key(self) -> bytes:
        return notice_key(self.job_id, self.occurrence_ms, self.attempt, self.trigger, self.event)


@dataclass(frozen=True, slots=True)
class Counters:
    """Capacity counters kept with every applied batch (O(1) to read)."""

    jobs: int = 0
    bytes: int = 0  # sum of len(key) + len(value) over all non-``m/`` keys
    by_status: tuple[tuple[JobStatus, int], ...] = tuple((s, 0) for s in STATUS_ORDER)
    # The latest end of an attempt that ran (completed, failed or timed out), if any
    # did: /health's last_executed_at.  Never decreases, deleted jobs or not.
    last_executed_ms: int | None = None

    def count(self, status: JobStatus) -> int:
        return dict(self.by_status)[status]


def member_key(node_id: str) -> bytes:
    return MEMBER + node_id.encode()


def encode_member(raft_address: str, http_address: str) -> bytes:
    """Also the context of a conf change that adds a node: where it can be reached."""
    return _pack([raft_address, http_address])


def decode_member(data: bytes) -> tuple[str, str]:
    def build(w: Any) -> tuple[str, str]:
        raft_address, http_address = w
        if not isinstance(raft_address, str) or not isinstance(http_address, str):
            raise RecordError("member addresses are not strings")
        return raft_address, http_address

    return _decoded("member", data, build)


def _pack(obj: Any) -> bytes:
    return bytes([RECORD_VERSION]) + bytes(msgpack.packb(obj, use_bin_type=True))


def _unpack(data: bytes) -> Any:
    if not data or data[0] != RECORD_VERSION:
        raise RecordError("unknown record version")
    try:
        return msgpack.unpackb(data[1:], raw=False)
    except Exception as exc:
        raise RecordError(f"malformed record: {type(exc).__name__}") from None


def _decoded(what: str, data: bytes, build: Callable[[Any], T]) -> T:
    try:
        return build(_unpack(data))
    except RecordError:
        raise
    except Exception as exc:
        raise RecordError(f"malformed {what} record: {exc}") from None


_SPEC_FIELDS = tuple(f.name for f in fields(JobSpec))
_JOB_FIELDS = tuple(f.name for f in fields(Job) if f.name != "spec")
_ATTEMPT_FIELDS = tuple(f.name for f in fields(Attempt))


def spec_to_wire(spec: JobSpec) -> dict[str, Any]:
    """``spec.to_wire()`` without ``asdict``'s deep copy (the hot path of apply).

    Same keys, same order, same values: the bytes msgpack makes of it are equal.
    """
    d = {name: getattr(spec, name) for name in _SPEC_FIELDS}
    d["type"] = spec.type.value
    d["misfire_policy"] = spec.misfire_policy.value
    if spec.signing_secret_ref is None:
        del d["signing_secret_ref"]
    if spec.labels:
        d["labels"] = [list(pair) for pair in spec.labels]
    else:
        del d["labels"]
    if spec.method is None:
        del d["method"]
    if spec.headers:
        d["headers"] = headers_to_wire(spec.headers)
    else:
        del d["headers"]
    if spec.jitter_ms is None:
        del d["jitter_ms"]
    callbacks_to_wire(spec, d)
    return d


def job_to_wire(job: Job, spec_wire: dict[str, Any] | None = None) -> dict[str, Any]:
    """``spec_wire``: :func:`spec_to_wire` of ``job.spec``, if the caller has it."""
    d: dict[str, Any] = {"spec": spec_to_wire(job.spec) if spec_wire is None else spec_wire}
    d.update((name, getattr(job, name)) for name in _JOB_FIELDS)
    d["status"] = job.status.value
    for name in JOB_ADDED_LATER:
        if d[name] is None:
            del d[name]
    if job.version == FIRST_VERSION:
        del d["version"]
    return d


def encode_job(job: Job, spec_wire: dict[str, Any] | None = None) -> bytes:
    return _pack(job_to_wire(job, spec_wire))


def decode_job(data: bytes) -> Job:
    return _decoded("job", data, Job.from_wire)


def encode_attempt(a: Attempt) -> bytes:
    d = {name: getattr(a, name) for name in _ATTEMPT_FIELDS}
    d["status"] = a.status.value
    d["error_type"] = a.error_type.value if a.error_type else None
    if a.claimed_at_ms is None:
        del d["claimed_at_ms"]
    if not a.trigger:
        del d["trigger"]
    skip_to_wire(a, d)
    return _pack(d)


def decode_attempt(data: bytes) -> Attempt:
    return _decoded("attempt", data, Attempt.from_wire)


def encode_execution(e: Execution) -> bytes:
    return _pack([e.occurrence_ms, e.attempt, e.claim_open, e.claim_node, e.claim_term])


def decode_execution(data: bytes) -> Execution:
    return _decoded("execution", data, lambda w: Execution(*w))


def encode_trigger(g: Trigger) -> bytes:
    fields = [g.fire_at_ms, g.attempt, g.claim_open, g.claim_node, g.claim_term]
    if g.scheduled:  # added later: absent from a manual run's record
        fields.append(True)
    return _pack(fields)


def decode_trigger(key: bytes, data: bytes) -> Trigger:
    job_id, asked_ms = parse_trigger_key(key)
    return _decoded("trigger", data, lambda w: Trigger(job_id, asked_ms, *w))


def encode_notice(n: Notice) -> bytes:
    return _pack(
        [
            n.job_id,
            n.occurrence_ms,
            n.attempt,
            n.trigger,
            n.event,
            n.url,
            headers_to_wire(n.headers),
            n.signing_secret_ref,
            n.body,
            n.tries,
            n.next_at_ms,
        ]
    )


def decode_notice(data: bytes) -> Notice:
    def build(w: Any) -> Notice:
        job_id, occ, attempt, trigger, event, url, headers, ref, body, tries, next_at = w
        return Notice(
            str(job_id),
            int(occ),
            int(attempt),
            bool(trigger),
            str(event),
            str(url),
            headers_from_wire(headers),
            None if ref is None else str(ref),
            dict(body),
            int(tries),
            int(next_at),
        )

    return _decoded("notice", data, build)


def encode_counters(c: Counters) -> bytes:
    fields = [c.jobs, c.bytes, [n for _, n in c.by_status]]
    if c.last_executed_ms is not None:  # absent until a first run: older states' bytes
        fields.append(c.last_executed_ms)
    return _pack(fields)


def decode_counters(data: bytes) -> Counters:
    def build(w: Any) -> Counters:
        jobs, size, counts, *rest = w  # rest: [last executed] once anything ran
        by_status = tuple(zip(STATUS_ORDER, counts, strict=True))
        return Counters(jobs, size, by_status, int(rest[0]) if rest else None)

    return _decoded("counters", data, build)


def encode_indexes_version(version: int) -> bytes:
    return _pack(version)


def encode_applied(index: int, term: int) -> bytes:
    return _pack([index, term])


def decode_applied(data: bytes) -> tuple[int, int]:
    return _decoded("applied", data, lambda w: (int(w[0]), int(w[1])))


def encode_conf(cs: ConfState) -> bytes:
    return _pack([list(cs.voters), list(cs.learners)])


def decode_conf(data: bytes) -> ConfState:
    return _decoded("conf", data, lambda w: ConfState(tuple(w[0]), tuple(w[1])))
