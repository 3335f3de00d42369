"""State-machine commands and their versioned msgpack encoding.

A command is what the leader proposes as the data of a NORMAL Raft entry.  The
leader decides every value a command carries (times, the next run, the node
that executes), so applying it is a pure function of (state, command).

Encoding: one version byte (:data:`COMMAND_VERSION`) followed by a msgpack
array ``[kind, field, ...]``; a :class:`Batch` carries its commands as nested
arrays without their own version byte.  :func:`decode_command` raises
:class:`CommandDecodeError` and nothing else for anything malformed, so the
state machine can turn a bad entry into a deterministic rejection.

A field added to a command later goes at the end, with a default, and is counted
in :data:`_ADDED_LATER`: entries written before it existed (shorter arrays) still
decode, with the default; and while it holds its default it is left off the
wire, so such a command is encoded exactly as before.  (A ``trigger`` flag, False
by default, was added so to the claim and the outcome of an attempt; a
``traceparent``, None by default, to the create.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import Enum, IntEnum
from typing import Any

import msgpack

from scheduled_db.jobs.model import (
    SPEC_ADDED_LATER,
    ErrorType,
    JobSpec,
    JobStatus,
    SkipReason,
    field_values,
)
from scheduled_db.state.records import spec_to_wire

COMMAND_VERSION = 1


class CommandDecodeError(ValueError):
    """Raised for any entry data that is not a valid command of this version."""


class CommandKind(IntEnum):
    CREATE = 1
    DELETE = 2
    CANCEL = 3
    CLAIM = 4
    RECORD_OUTCOME = 5
    COMPLETE = 6
    UPDATE = 7
    PAUSE = 8
    RESUME = 9
    PRUNE_HISTORY = 10
    BATCH = 11
    TRIGGER = 12
    SETTLE_NOTICE = 13
    START_RUN = 14


@dataclass(frozen=True, slots=True)
class CreateJob:
    """Add a job; ``next_run_at_ms`` is its first fire time, computed by the leader.
    ``traceparent``: the W3C trace context of the creating request, kept with the
    job when tracing is on (added later: absent when None)."""

    spec: JobSpec
    created_at_ms: int
    next_run_at_ms: int
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteJob:
    """Remove a job with its execution state and history, whatever its status."""

    job_id: str


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Stop a pending or in-progress job for good; later outcomes are rejected.
    ``reason`` is the client's, kept with the job (added later: may be absent)."""

    job_id: str
    at_ms: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimOccurrence:
    """Reserve one attempt of one occurrence for ``node_id`` (claim before fire)."""

    job_id: str
    scheduled_at_ms: int
    attempt: int
    node_id: str
    term: int
    at_ms: int
    trigger: bool = False  # of a triggered run (added later: absent when False)


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """The result of a claimed attempt; ``retry_at_ms`` re-queues a failed one.

    ``response_time_ms`` counts from when the request went out to ``end_time_ms``
    (None if nothing was sent), so their difference is the attempt's start time."""

    job_id: str
    scheduled_at_ms: int
    attempt: int
    status: JobStatus  # completed | failed | timeout
    end_time_ms: int
    http_status: int | None = None
    response_time_ms: int | None = None
    error_message: str | None = None
    error_type: ErrorType | None = None
    retry_at_ms: int | None = None
    trigger: bool = False  # of a triggered run (added later: absent when False)


@dataclass(frozen=True, slots=True)
class Skip:
    """Runs of a recurring job that were not fired, decided by the leader: ``runs``
    of them from ``first_ms`` on, for ``reason``.  Recorded as one executions entry."""

    reason: SkipReason
    first_ms: int
    runs: int


@dataclass(frozen=True, slots=True)
class CompleteOccurrence:
    """Close an occurrence: reschedule at ``next_run_at_ms`` or finish with a status.
    ``skips``: runs passed over on the way (added later: absent when none)."""

    job_id: str
    scheduled_at_ms: int
    next_run_at_ms: int | None
    final_status: JobStatus | None
    at_ms: int
    skips: tuple[Skip, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdateJob:
    """Replace the spec of an unfinished job with no attempt in flight (same id) and
    its next fire time.  ``expected_version``: applied only if the job's version is
    still this one (added later: may be absent)."""

    spec: JobSpec
    next_run_at_ms: int
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class PauseJob:
    job_id: str


@dataclass(frozen=True, slots=True)
class ResumeJob:
    """Unpause; a pending job may be given a new next fire time (misfire policy),
    and the runs missed while paused recorded as ``skips`` (added later: absent
    when none; ``at_ms`` is then the time of the resume)."""

    job_id: str
    next_run_at_ms: int | None = None
    skips: tuple[Skip, ...] = ()
    at_ms: int = 0


@dataclass(frozen=True, slots=True)
class TriggerJob:
    """One run of the job now, outside its schedule (``POST /jobs/{id}/trigger``):
    ``at_ms`` is when it was asked for, decided by the leader, and becomes the run's
    occurrence (the next free millisecond if the job has a run asked for at that one)."""

    job_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class StartRun:
    """Claim the first attempt of an ``overlap: allow`` job's occurrence as a run of its
    own (a run record, as a triggered run's), and move the job on to
    ``next_run_at_ms`` (None: its schedule is over), so its next occurrence may start
    while this one is in flight.  ``skips``: runs passed over on the way (a late start
    fires once for the runs missed meanwhile), as :class:`CompleteOccurrence`'s."""

    job_id: str
    scheduled_at_ms: int
    node_id: str
    term: int
    at_ms: int
    next_run_at_ms: int | None
    skips: tuple[Skip, ...] = ()


@dataclass(frozen=True, slots=True)
class SettleNotice:
    """A send of the notice keyed by (job, occurrence, attempt, trigger, event) ended:
    with ``retry_at_ms`` it failed and goes again then; without, it is done (sent,
    or given up on) and goes away."""

    job_id: str
    occurrence_ms: int
    attempt: int
    trigger: bool
    event: str
    retry_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PruneHistory:
    """Drop attempts that started before ``cutoff_ms`` (at most ``limit`` of them)."""

    cutoff_ms: int
    limit: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Many commands in one entry; each is applied (or rejected) on its own."""

    commands: tuple[Command, ...]


Command = (
    CreateJob
    | DeleteJob
    | CancelJob
    | ClaimOccurrence
    | RecordOutcome
    | CompleteOccurrence
    | UpdateJob
    | PauseJob
    | ResumeJob
    | PruneHistory
    | TriggerJob
    | SettleNotice
    | StartRun
    | Batch
)

# --- field codecs: (to wire, from wire with validation) -------------------------

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise CommandDecodeError(what)


def _uint_in(v: Any) -> int:
    _check(type(v) is int and v >= 0, "expected a non-negative integer")
    return int(v)


def _str_in(v: Any) -> str:
    _check(isinstance(v, str), "expected a string")
    return str(v)


def _optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else inner(v)


def _enum_codec(cls: type[Enum]) -> Codec:
    return (lambda v: v.value, lambda v: cls(v))


def _opt_enum_codec(cls: type[Enum]) -> Codec:
    return (lambda v: None if v is None else v.value, _optional(lambda v: cls(v)))


_SPEC_FIELDS = frozenset(f.name for f in fields(JobSpec))
_SPEC_OPTIONAL = frozenset(SPEC_ADDED_LATER)  # on the wire only when set


_SPEC_REQUIRED = _SPEC_FIELDS - _SPEC_OPTIONAL
_SPEC_UINTS = ("timestamp_ms", "last_date_ms", "max_attempts", "timeout_ms")
_SPEC_UINTS_LATER = ("jitter_ms",)  # added later: absent when unset
_SPEC_STRS = ("cron_expression", "webhook_url", "signing_secret_ref", "method")


def _spec_in(v: Any) -> JobSpec:
    # The hot path of applying creates: plain checks, no closures (a batch of 1,000
    # creates decodes 1,000 of these on every replica).
    _check(isinstance(v, dict), "bad job spec fields")
    keys = v.keys()
    _check(keys >= _SPEC_REQUIRED and keys <= _SPEC_FIELDS, "bad job spec fields")
    for name in _SPEC_UINTS:
        n = v[name]
        _check(n is None or (type(n) is int and n >= 0), "expected a non-negative integer")
    for name in _SPEC_UINTS_LATER:
        n = v.get(name)
        _check(n is None or (type(n) is int and n >= 0), "expected a non-negative integer")
    for name in _SPEC_STRS:
        text = v.get(name)
        _check(text is None or isinstance(text, str), "expected a string")
    _check(isinstance(v["id"], str) and isinstance(v["timezone"], str), "bad job spec")
    payload = v["payload"]
    _check(payload is None or isinstance(payload, dict), "bad payload")
    labels = v.get("labels", ())
    _check(isinstance(labels, list | tuple), "bad labels")
    for pair in labels:
        _check(isinstance(pair, list) and len(pair) == 2, "bad labels")
        _check(isinstance(pair[0], str) and isinstance(pair[1], str), "bad labels")
    _headers_in(v.get("headers", ()))
    for name in ("on_failure", "on_success"):
        callback = v.get(name)
        if callback is not None:
            _check(isinstance(callback, list) and len(callback) == 3, f"bad {name}")
            _check(isinstance(callback[0], str) and type(callback[2]) is bool, f"bad {name}")
            _headers_in(callback[1])
    overlap = v.get("overlap")
    _check(overlap is None or isinstance(overlap, str), "bad overlap")
    return JobSpec.from_wire(v)  # the enums are checked by their constructors


def _headers_in(headers: Any) -> None:
    _check(isinstance(headers, list | tuple), "bad headers")
    for h in headers:
        _check(isinstance(h, list) and len(h) in (2, 3), "bad headers")
        _check(isinstance(h[0], str) and isinstance(h[1], str), "bad headers")
        _check(len(h) == 2 or h[2] == 1, "bad headers")


def _ident(v: Any) -> Any:
    return v


def _bool_in(v: Any) -> bool:
    _check(type(v) is bool, "expected a boolean")
    return bool(v)


UINT: Codec = (_ident, _uint_in)
OPT_UINT: Codec = (_ident, _optional(_uint_in))
STR: Codec = (_ident, _str_in)
OPT_STR: Codec = (_ident, _optional(_str_in))
BOOL: Codec = (_ident, _bool_in)
SPEC: Codec = (spec_to_wire, _spec_in)


def _skips_in(v: Any) -> tuple[Skip, ...]:
    _check(isinstance(v, list), "bad skips")
    out = []
    for item in v:
        _check(isinstance(item, list) and len(item) == 3, "bad skip")
        out.append(Skip(SkipReason(item[0]), _uint_in(item[1]), _uint_in(item[2])))
    return tuple(out)


SKIPS: Codec = (lambda v: [[s.reason.value, s.first_ms, s.runs] for s in v], _skips_in)
STATUS = _enum_codec(JobStatus)
OPT_STATUS = _opt_enum_codec(JobStatus)
OPT_ERROR = _opt_enum_codec(ErrorType)

_SCHEMA: dict[CommandKind, tuple[type[Any], tuple[Codec, ...]]] = {
    CommandKind.CREATE: (CreateJob, (SPEC, UINT, UINT, OPT_STR)),
    CommandKind.DELETE: (DeleteJob, (STR,)),
    CommandKind.CANCEL: (CancelJob, (STR, UINT, OPT_STR)),
    CommandKind.CLAIM: (ClaimOccurrence, (STR, UINT, UINT, STR, UINT, UINT, BOOL)),
    CommandKind.RECORD_OUTCOME: (
        RecordOutcome,
        (STR, UINT, UINT, STATUS, UINT, OPT_UINT, OPT_UINT, OPT_STR, OPT_ERROR, OPT_UINT, BOOL),
    ),
    CommandKind.COMPLETE: (CompleteOccurrence, (STR, UINT, OPT_UINT, OPT_STATUS, UINT, SKIPS)),
    CommandKind.UPDATE: (UpdateJob, (SPEC, UINT, OPT_UINT)),
    CommandKind.PAUSE: (PauseJob, (STR,)),
    CommandKind.RESUME: (ResumeJob, (STR, OPT_UINT, SKIPS, UINT)),
    CommandKind.PRUNE_HISTORY: (PruneHistory, (UINT, UINT)),
    CommandKind.TRIGGER: (TriggerJob, (STR, UINT)),
    CommandKind.SETTLE_NOTICE: (SettleNotice, (STR, UINT, UINT, BOOL, STR, OPT_UINT)),
    CommandKind.START_RUN: (StartRun, (STR, UINT, STR, UINT, UINT, OPT_UINT, SKIPS)),
}
# How many of a command's last fields were added after its first version: absent
# from older entries, and left off the wire while they hold their default (see the
# module docstring).
_ADDED_LATER: dict[CommandKind, int] = {
    CommandKind.CREATE: 1,
    CommandKind.CANCEL: 1,
    CommandKind.CLAIM: 1,
    CommandKind.RECORD_OUTCOME: 1,
    CommandKind.UPDATE: 1,
    CommandKind.COMPLETE: 1,
    CommandKind.RESUME: 2,
}
_KIND_OF: dict[type[Any], CommandKind] = {cls: kind for kind, (cls, _) in _SCHEMA.items()}
_KIND_OF[Batch] = CommandKind.BATCH


def kind_of(command: Command) -> CommandKind:
    return _KIND_OF[type(command)]


@dataclass(frozen=True, slots=True)
class _Shape:
    """How a kind of command goes to the wire, worked out once per kind (the entry
    encoding runs for every command a leader proposes)."""

    kind: int
    values: Callable[[Any], tuple[Any, ...]]  # all the fields' values, in order
    encoders: tuple[Callable[[Any], Any], ...]
    defaults: tuple[Any, ...]  # of the fields added later, last first


def _shape(cls: type[Any], kind: CommandKind) -> _Shape:
    described = fields(cls)
    later = described[len(described) - _ADDED_LATER.get(kind, 0) :]
    return _Shape(
        int(kind),
        field_values(cls),
        tuple(enc for enc, _ in _SCHEMA[kind][1]),
        tuple(f.default for f in reversed(later)),
    )


_SHAPES: dict[type[Any], _Shape] = {cls: _shape(cls, kind) for kind, (cls, _) in _SCHEMA.items()}


def _to_wire(command: Command) -> list[Any]:
    if isinstance(command, Batch):
        return [int(CommandKind.BATCH), [_to_wire(c) for c in command.commands]]
    shape = _SHAPES[type(command)]
    values = shape.values(command)
    wire = [shape.kind] + [enc(v) for enc, v in zip(shape.encoders, values, strict=True)]
    for i, default in enumerate(shape.defaults, start=1):  # trailing defaults stay off
        if values[-i] != default:
            break
        wire.pop()
    return wire


def _from_wire(w: Any, nested: bool) -> Command:
    _check(isinstance(w, list) and len(w) >= 1, "a command is a non-empty array")
    kind = CommandKind(w[0])
    if kind is CommandKind.BATCH:
        _check(not nested, "batches do not nest")
        _check(len(w) == 2 and isinstance(w[1], list), "bad batch")
        return Batch(tuple(_from_wire(c, nested=True) for c in w[1]))
    cls, codecs = _SCHEMA[kind]
    given = len(w) - 1
    oldest = len(codecs) - _ADDED_LATER.get(kind, 0)
    _check(oldest <= given <= len(codecs), f"{kind.name}: wrong number of fields")
    values = (dec(v) for (_, dec), v in zip(codecs[:given], w[1:], strict=True))
    return cls(*values)  # type: ignore[no-any-return]


def encode_command(command: Command) -> bytes:
    """The entry data for ``command``: version byte + msgpack array."""
    body = msgpack.packb(_to_wire(command), use_bin_type=True)
    return bytes([COMMAND_VERSION]) + bytes(body)


def encode_batch(encoded: Sequence[bytes]) -> bytes:
    """``encode_command(Batch(commands))`` from each command's ``encode_command``
    bytes, without encoding any of them again: msgpack writes an array as its
    length then its items, so the batch's bytes are those items' bytes after a
    header (tests check the two are equal byte for byte)."""
    n = len(encoded)
    if n <= 15:
        header = bytes([0x90 | n])
    elif n <= 0xFFFF:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    head = bytes([COMMAND_VERSION, 0x92, int(CommandKind.BATCH)]) + header
    return head + b"".join(memoryview(e)[1:] for e in encoded)


def decode_command(data: bytes) -> Command:
    """Decode entry data made by :func:`encode_command`; raise CommandDecodeError otherwise."""
    if not data:
        raise CommandDecodeError("empty command")
    if data[0] != COMMAND_VERSION:
        raise CommandDecodeError(f"unsupported command version {data[0]}")
    try:
        return _from_wire(msgpack.unpackb(data[1:], raw=False, strict_map_key=True), False)
    except CommandDecodeError:
        raise
    except Exception as exc:  # msgpack, enum, dataclass and type errors alike
        raise CommandDecodeError(f"malformed command: {type(exc).__name__}") from None
