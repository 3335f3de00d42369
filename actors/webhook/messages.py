"""Messages of the WebhookActor (actors/webhook/actor.py).

Every message is a frozen dataclass; a request that is answered carries a
``reply`` (:data:`actors.runtime.replies.Reply`).  See docs/architecture.md,
"One way to reply".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from actors.runtime.replies import Reply
from scheduled_db.jobs.model import field_values
from scheduled_db.state.records import Notice

T = TypeVar("T")


def _pickled_by_fields(cls: type[T]) -> type[T]:
    """Pickle ``cls`` as its class and its fields' values in one tuple.  A frozen
    dataclass with slots pickles by walking its fields on every instance, about three
    times the cost: deliveries and their outcomes cross to and from the delivery
    workers (actors/webhook/workers.py) by the thousand a second in a burst."""
    values = field_values(cls)

    def __reduce__(self: T) -> tuple[type[T], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Deliver:
    """Make one delivery attempt of a claimed occurrence; :class:`DeliveryOutcome`
    goes to ``reply``.  The request is sent at once (the caller fires on time),
    but never before ``not_before_ms``, and only while the node's lease holds ``term``."""

    job_id: str
    job_type: str  # "unico" | "recurrente"
    scheduled_at_ms: int  # with job_id, the idempotency key
    attempt: int
    term: int
    url: str
    payload: dict[str, Any] | None
    timeout_ms: int
    reply: Reply | None = None
    signing_secret_ref: str | None = None  # a webhooks.signing_secrets name
    not_before_ms: int = 0  # never sent earlier (epoch ms): the attempt's fire time
    trigger: bool = False  # a run asked for by POST /jobs/{id}/trigger (its own key)
    # The job's stored trace context (its creating request's), when it has one: the
    # attempt's span joins that trace (actors/webhook/actor.py, _span).
    traceparent: str | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str, bool], ...] = ()  # the job's (name, value, secret)
    # How far the job's jitter moved the occurrence (the body says), 0 included; None
    # for a delivery without jitter (the job has none, or it is a manual run).
    jittered_ms: int | None = None
    # A notice of an outcome (scheduled_db.state.notices), not an occurrence: its
    # body and idempotency key are the notice's, ``attempt`` counts its sends.
    notice: Notice | None = None
    # With ``trigger`` (a run record's attempt): the run is an ``overlap: allow`` job's
    # scheduled occurrence, not a manual run: its key and body are a scheduled run's.
    scheduled: bool = False
    # ``reply`` takes :class:`DeliveryOutcomes`: the outcomes of deliveries to one reply
    # that end together (in one turn of the WebhookActor's loop) come in one message.
    batched: bool = False

    @property
    def manual(self) -> bool:
        """A run asked for by POST /jobs/{id}/trigger (its own key and body mark)."""
        return self.trigger and not self.scheduled


@dataclass(frozen=True, slots=True)
class AbortDelivery:
    """Abort the in-flight delivery of ``job_id`` (the job was cancelled or deleted);
    its outcome is still reported, as an error of type ``aborted``."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Take back the deliveries of ``job_id``'s ``occurrences`` (each a Deliver's
    ``(scheduled_at_ms, trigger)``) that have not been sent yet: those handed over
    ahead of their time, or waiting for their destination's turn (the job was
    paused).  Each is answered with an outcome of type ``withdrawn``, nothing sent;
    one already on its way is left to finish and answered as usual."""

    job_id: str
    occurrences: tuple[tuple[int, bool], ...]


@dataclass(frozen=True, slots=True)
class AbortAll:
    """Abort every in-flight delivery (this node stopped leading)."""


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one attempt ended.  ``retryable``: a timeout, connection/DNS/TLS error,
    5xx, 408 or 429; ``retry_after_ms`` is the server's Retry-After, if any."""

    job_id: str
    scheduled_at_ms: int
    attempt: int
    ok: bool
    start_ms: int
    end_ms: int
    sent_ms: int | None = None  # when the request went out (for lateness)
    http_status: int | None = None
    response_time_ms: int | None = None
    error_type: str | None = None  # ErrorType value, or "aborted"
    error_message: str | None = None
    retryable: bool = False
    retry_after_ms: int | None = None
    trigger: bool = False  # the Deliver's
    notice: bytes | None = None  # the Deliver's notice's key


@dataclass(frozen=True, slots=True)
class DeliveryOutcomes:
    """The outcomes of batched Delivers (``Deliver.batched``) that ended together, in
    the order they ended: one message for a burst's answers, not one each."""

    outcomes: tuple[DeliveryOutcome, ...]


@dataclass(frozen=True, slots=True)
class Messages:
    """Several of the messages above, handled in order as if told one by one: how a
    delivery worker (actors/webhook/workers.py) passes on a batch from its pipe."""

    items: tuple[Any, ...]
