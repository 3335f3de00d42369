"""The job record: what the state machine stores and the API shows.

Times are integer milliseconds since the Unix epoch (UTC) everywhere inside the
system; the API converts at its edge.  Records are frozen: a change of state is a
new record, made by the state machine when it applies a command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from operator import attrgetter
from typing import Any, TypeVar
from urllib.parse import quote

MAX_JOB_ID_CHARS = 256  # characters (code points); the other rules: jobs.validation


class JobType(StrEnum):
    UNICO = "unico"  # one-time: fires once at ``timestamp_ms``
    RECURRENTE = "recurrente"  # recurring: fires on ``cron_expression``


class JobStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    # Of an executions entry only, never of a job: runs of a recurring job that were
    # not fired (overlap, misfire, paused), recorded as one entry per decision.
    SKIPPED = "skipped"


JOB_STATUSES = tuple(s for s in JobStatus if s is not JobStatus.SKIPPED)  # a job's statuses


class SkipReason(StrEnum):
    OVERLAP = "overlap"  # due while the previous occurrence was still being delivered
    MISFIRE = "misfire"  # due while nothing fired it (a downtime): the misfire policy
    PAUSED = "paused"  # due while the job was paused


FINISHED_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class MisfirePolicy(StrEnum):
    FIRE_ONCE = "fire_once"  # runs missed while the cluster was down fire once on recovery
    SKIP = "skip"  # missed runs are dropped; the next run on schedule fires


class Overlap(StrEnum):
    """What a recurring job does with a run that comes due while its previous
    occurrence is still being delivered (retries included)."""

    SKIP = "skip"  # the run is skipped (counted); the schedule goes on after it
    BUFFER_ONE = "buffer_one"  # the latest such run is kept and fires once, late
    ALLOW = "allow"  # the run fires on time, beside the one in flight


class ErrorType(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    DNS_ERROR = "dns_error"
    TLS_ERROR = "tls_error"
    HTTP_ERROR = "http_error"


@dataclass(frozen=True, slots=True)
class Callback:
    """A job's ``on_failure`` or ``on_success``: where a notification of an
    occurrence's outcome goes (scheduled_db.state.notices), with the headers it
    carries (as a job's: secret ones resolved by the sending leader)."""

    url: str
    headers: tuple[tuple[str, str, bool], ...] = ()
    every_attempt: bool = False  # on_failure only: on every failed attempt, not the last

    def to_wire(self) -> list[Any]:
        return [self.url, headers_to_wire(self.headers), self.every_attempt]

    @staticmethod
    def from_wire(w: Any) -> Callback:
        return Callback(str(w[0]), headers_from_wire(w[1]), bool(w[2]))


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a client asked for: the validated, normalised body of ``POST /jobs``."""

    id: str
    type: JobType
    timestamp_ms: int | None = None  # unico: when; recurrente: no run before it
    cron_expression: str | None = None
    timezone: str = "UTC"
    last_date_ms: int | None = None
    webhook_url: str | None = None
    payload: dict[str, Any] | None = None
    misfire_policy: MisfirePolicy = MisfirePolicy.FIRE_ONCE
    max_attempts: int | None = None  # per-job override, capped by the cluster setting
    timeout_ms: int | None = None  # per-attempt delivery timeout override
    # The name of a webhooks.signing_secrets entry, never a secret.  Absent from the
    # wire form when None, so entries and records written before it existed decode.
    signing_secret_ref: str | None = None
    # Labels, as sorted (key, value) pairs: hashable like the rest of a spec, and
    # one order for equal sets.  Absent from the wire form when empty (as above).
    labels: tuple[tuple[str, str], ...] = ()
    # The HTTP method of deliveries; None is POST (absent from the wire, as above).
    method: str | None = None
    # Extra request headers as (name, value, secret) triples in the client's order:
    # with ``secret`` the value is the name of a webhooks.header_secrets entry,
    # resolved by the sending leader, so no secret enters the Raft log.
    headers: tuple[tuple[str, str, bool], ...] = ()
    # Each occurrence's first attempt fires a pseudo-random [0, jitter_ms) after its
    # scheduled time, the same on every leader (scheduled_db.jobs.schedule.jitter_offset).
    jitter_ms: int | None = None
    # Notifications of an occurrence's outcome (absent from the wire when None).
    on_failure: Callback | None = None
    on_success: Callback | None = None
    # A recurring job's overlap policy; None is skip (absent from the wire).
    overlap: Overlap | None = None

    @property
    def overlap_policy(self) -> Overlap:
        return self.overlap or Overlap.SKIP

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def http_method(self) -> str:
        return self.method or "POST"

    def to_wire(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = self.type.value
        d["misfire_policy"] = self.misfire_policy.value
        for name in SPEC_ADDED_LATER:
            if d[name] in (None, ()):
                del d[name]
        if self.labels:
            d["labels"] = [list(pair) for pair in self.labels]
        if self.headers:
            d["headers"] = headers_to_wire(self.headers)
        callbacks_to_wire(self, d)
        return d

    @staticmethod
    def from_wire(d: dict[str, Any]) -> JobSpec:
        on_failure, on_success, overlap = d.get("on_failure"), d.get("on_success"), d.get("overlap")
        return JobSpec(
            **{
                **d,
                "type": JobType(d["type"]),
                "misfire_policy": MisfirePolicy(d["misfire_policy"]),
                "labels": tuple((str(k), str(v)) for k, v in d.get("labels") or ()),
                "headers": headers_from_wire(d.get("headers") or ()),
                "on_failure": None if on_failure is None else Callback.from_wire(on_failure),
                "on_success": None if on_success is None else Callback.from_wire(on_success),
                "overlap": None if overlap is None else Overlap(overlap),
            }
        )


def callbacks_to_wire(spec: JobSpec, d: dict[str, Any]) -> None:
    """Put the spec's callbacks and overlap policy into its wire form ``d`` (where
    they are absent while unset, see SPEC_ADDED_LATER)."""
    for name in ("on_failure", "on_success"):
        callback: Callback | None = getattr(spec, name)
        if callback is None:
            d.pop(name, None)
        else:
            d[name] = callback.to_wire()
    if spec.overlap is None:
        d.pop("overlap", None)
    else:
        d["overlap"] = spec.overlap.value


def headers_to_wire(headers: tuple[tuple[str, str, bool], ...]) -> list[list[Any]]:
    """``[[name, value], ...]``, a secret's as ``[name, ref, 1]``."""
    return [[n, v, 1] if secret else [n, v] for n, v, secret in headers]


def headers_from_wire(w: Any) -> tuple[tuple[str, str, bool], ...]:
    return tuple((str(h[0]), str(h[1]), len(h) > 2 and bool(h[2])) for h in w)


# Spec fields added after the first records and entries were written: on the wire
# only when set (not None, not empty), so what was written before decodes, and a
# spec that does not use them encodes exactly as before.
SPEC_ADDED_LATER = (
    "signing_secret_ref",
    "labels",
    "method",
    "headers",
    "jitter_ms",
    "on_failure",
    "on_success",
    "overlap",
)


T = TypeVar("T")


def field_values(cls: type[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the values of all of dataclass ``cls``'s fields, in order,
    in one call (an ``attrgetter``; a tuple even for a single field), for the copies,
    encodings and pickles made by the thousand a second that would otherwise walk
    ``dataclasses.fields`` every time."""
    names = [f.name for f in fields(cls)]
    if len(names) == 1:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return attrgetter(*names)


# Per dataclass: its field values getter, and each field's position.
_SHAPES: dict[type, tuple[Callable[[Any], tuple[Any, ...]], dict[str, int]]] = {}


def evolved(obj: T, **changes: Any) -> T:
    """``dataclasses.replace(obj, **changes)`` for the plain dataclasses of the state
    (every field in ``__init__``, no ``__post_init__``), at half its cost: it reads
    the fields in one call instead of walking them on every use, and the state
    machine makes several new versions of records for every occurrence it fires."""
    cls = type(obj)
    shape = _SHAPES.get(cls)
    if shape is None:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        shape = _SHAPES[cls] = (field_values(cls), {n: i for i, n in enumerate(names)})
    args = list(shape[0](obj))
    for name, value in changes.items():
        at = shape[1].get(name)
        if at is None:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
        args[at] = value
    return cls(*args)


# On the wire only when set (not None).
JOB_ADDED_LATER = ("cancellation_reason", "cancelled_at_ms", "traceparent")
FIRST_VERSION = 1


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job: its spec plus the state the cluster keeps about it."""

    spec: JobSpec
    created_at_ms: int
    next_run_at_ms: int | None  # None once no further run is due
    status: JobStatus = JobStatus.PENDING
    paused: bool = False
    attempt_count: int = 0
    first_attempt_at_ms: int | None = None
    last_attempt_at_ms: int | None = None
    completed_at_ms: int | None = None
    executing_node_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # forward-compatible fields
    # Set by a cancel (cancelled_at_ms equals completed_at_ms then).  Added later:
    # absent from the wire when None, so older records decode and the records of
    # jobs never cancelled are byte for byte what they were.
    cancellation_reason: str | None = None
    cancelled_at_ms: int | None = None
    # Counts the changes clients made to the job: 1 at create, +1 for every update,
    # pause and resume that changed it (a fire does not).  ``If-Match`` compares it.
    # Added later: absent from the wire while 1, as in records written before.
    version: int = FIRST_VERSION
    # The W3C trace context of the request that created the job, when that request
    # was traced (actors/runtime/tracing.py): its deliveries join that trace.  Added
    # later: absent from the wire when None, so a job created with tracing off is
    # stored byte for byte as before.
    traceparent: str | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def evolve(self, **changes: Any) -> Job:
        return evolved(self, **changes)

    def to_wire(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_wire()
        d["status"] = self.status.value
        for name in JOB_ADDED_LATER:
            if d[name] is None:
                del d[name]
        if self.version == FIRST_VERSION:
            del d["version"]
        return d

    @staticmethod
    def from_wire(d: dict[str, Any]) -> Job:
        status = JobStatus(d["status"])
        if status is JobStatus.CANCELLED and "cancelled_at_ms" not in d:
            # Cancelled before the field existed: the cancel set completed_at_ms.
            d = {**d, "cancelled_at_ms": d.get("completed_at_ms")}
        return Job(**{**d, "spec": JobSpec.from_wire(d["spec"]), "status": status})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of one occurrence of a job."""

    job_id: str
    scheduled_at_ms: int  # the occurrence time: with job_id, the idempotency key
    attempt_num: int
    node_id: str
    term: int
    start_time_ms: int
    end_time_ms: int | None = None
    status: JobStatus = JobStatus.IN_PROGRESS
    http_status: int | None = None
    response_time_ms: int | None = None
    error_message: str | None = None
    error_type: ErrorType | None = None
    # When the attempt was claimed, which is up to the scheduler's claim-ahead
    # before it was due; ``start_time_ms`` is when it began (the request went out).
    # Added later: None in records written before, whose start_time_ms is the claim
    # time; absent from the wire when None.
    claimed_at_ms: int | None = None
    # A delivery asked for by ``POST /jobs/{id}/trigger``, outside the schedule: its
    # ``scheduled_at_ms`` is when it was asked for.  Added later: absent from the
    # wire when False.
    trigger: bool = False
    # An entry of skipped runs (status SKIPPED, attempt_num 0): why, and how many runs
    # from ``scheduled_at_ms`` on it stands for.  Added later: absent when unset.
    skip_reason: SkipReason | None = None
    skipped_runs: int = 0
    # With ``trigger`` (an attempt of a run record): the run is a scheduled occurrence
    # of an ``overlap: allow`` job, started beside the schedule (not a manual run), so
    # its key and body are a scheduled run's.  Added later: absent when False.
    scheduled: bool = False

    @property
    def manual(self) -> bool:
        """Is this an attempt of a run asked for by ``POST /jobs/{id}/trigger``?"""
        return self.trigger and not self.scheduled

    @property
    def claim_ms(self) -> int:
        """When the attempt was claimed: what the in-progress timeout counts from
        and the pruning index is keyed by (it never changes, unlike the start)."""
        return self.start_time_ms if self.claimed_at_ms is None else self.claimed_at_ms

    def to_wire(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["error_type"] = self.error_type.value if self.error_type else None
        if self.claimed_at_ms is None:
            del d["claimed_at_ms"]
        if not self.trigger:
            del d["trigger"]
        skip_to_wire(self, d)
        return d

    @staticmethod
    def from_wire(d: dict[str, Any]) -> Attempt:
        reason = d.get("skip_reason")
        return Attempt(
            **{
                **d,
                "status": JobStatus(d["status"]),
                "error_type": ErrorType(d["error_type"]) if d["error_type"] else None,
                "skip_reason": None if reason is None else SkipReason(reason),
            }
        )


def skip_to_wire(a: Attempt, d: dict[str, Any]) -> None:
    """An attempt's skip fields in its wire form ``d``: only on a skipped entry (and
    ``scheduled`` only when set)."""
    if not a.scheduled:
        d.pop("scheduled", None)
    if a.skip_reason is None:
        d.pop("skip_reason", None)
        d.pop("skipped_runs", None)
    else:
        d["skip_reason"] = a.skip_reason.value


def idempotency_key(job_id: str, scheduled_at_ms: int, trigger: bool = False) -> str:
    """Identical across retries and failovers of one occurrence.

    It travels in an HTTP header, which carries ASCII only: the id is
    percent-encoded (UTF-8) but for letters, digits and ``- . _ ~ :``, so an id of
    only those reads as itself (``invoice-42:1800000000000``), ``job 1`` as
    ``job%201``, and no two ids share a key.

    A triggered delivery (``trigger``) has ``t`` before its time
    (``invoice-42:t1800000000123``): a scheduled occurrence may fall on the very
    millisecond a trigger was asked for, and the two are different deliveries.
    Read from the right, the last ``:`` ends the id, and what follows is digits
    (scheduled) or ``t`` and digits (triggered), so no two keys are equal."""
    return f"{quote(job_id, safe=':')}:{'t' if trigger else ''}{scheduled_at_ms}"
