"""When the client sends a request again: a pure decision, tested with plain calls.

Decisions:

- A request is retried only when sending it twice cannot do harm.  Each call is
  marked with its :class:`Safety`:

  - ``IDEMPOTENT``: a second copy leaves the state as one would.  Reads; DELETE;
    cancel, pause and resume (each sets a state: doing it again is a no-op 200);
    a PATCH without ``If-Match`` (a merge patch applied twice gives the same job);
    ``POST /jobs`` *with* an ``id`` (the server answers a re-sent identical create
    with the stored job, not a second one) and a batch whose every job has an id.
  - ``UNMADE_ONLY``: a second copy would act again.  ``POST /jobs`` without an id
    (the server picks the id, so a create whose answer was lost and that is sent
    again makes a second job), a trigger (each one is a delivery), a PATCH with
    ``If-Match`` (its retry would be refused 412 by its own success).  These are
    retried only when the request certainly was not carried out.

- "Certainly not carried out": the connection was refused (nothing was sent),
  a 429 ``rate_limited``, or a 503 whose code is ``no_leader``, ``not_leader``
  or ``overloaded``: the server documents each as refused before anything was
  proposed.  Any call is retried on these.
- Only ``IDEMPOTENT`` calls are retried after a doubt: a 503 ``unknown_outcome``
  (leadership changed before the write was confirmed; it may have been made), a
  503 without our code (a proxy in front), or a connection dropped after the
  request went out.
- Never retried: a timeout (the caller's ``timeout`` is how long they are
  willing to wait, a retry would multiply it), a TLS or name failure (not
  transient), every other status, and the probes (``/health``, ``/ready``,
  ``/livez``: they ask how the node is now; the client sends them once).
- The wait honours ``Retry-After`` (seconds), cut to ``max_retry_after_s``;
  without one, a connection refused or dropped waits ``backoff_s``, doubling,
  up to 1 s (0.2 + 0.4 + 0.8 + 1 + 1 s by default: a node restarting, or a
  leader being elected, takes one to two seconds).  A client given several
  nodes' URLs tries the next one at once on a refused connection.  The whole
  call stops after ``attempts`` tries or when the next wait would take the
  sleeping past ``max_wait_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

UNMADE_CODES = frozenset({"no_leader", "not_leader", "overloaded", "rate_limited"})
DOUBT_CODES = frozenset({"unknown_outcome", ""})  # "" : a 503 with no code of ours
_MAX_BACKOFF_S = 1.0
_DEFAULT_RETRY_AFTER_S = 1.0


class Safety(Enum):
    """Whether a request may be sent twice (see the module's decisions)."""

    IDEMPOTENT = "idempotent"
    UNMADE_ONLY = "unmade_only"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a call tries.  ``attempts`` counts every try, the first included;
    ``RetryPolicy(attempts=1)`` never retries."""

    attempts: int = 6
    max_wait_s: float = 15.0
    max_retry_after_s: float = 5.0
    backoff_s: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.max_wait_s, self.max_retry_after_s, self.backoff_s) < 0:
            raise ValueError("the waits must not be negative")


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one try: an answer's ``status`` and ``code`` (and its
    ``Retry-After``), or no answer (``status`` ``None``): ``refused`` when the
    connection was refused, ``dropped`` when it broke after the request was sent."""

    status: int | None = None
    code: str = ""
    retry_after: float | None = None
    refused: bool = False
    dropped: bool = False


def retry_delay(
    policy: RetryPolicy, safety: Safety, failure: Failure, tries: int, waited: float
) -> float | None:
    """Seconds to wait before the next try, or ``None`` to give up.

    ``tries`` is how many tries were made so far (1 after the first), ``waited``
    the seconds already slept between them.
    """
    if tries >= policy.attempts:
        return None
    kind = _kind(failure)
    if kind is None or (kind == "doubt" and safety is not Safety.IDEMPOTENT):
        return None
    if failure.status is None:
        delay = min(policy.backoff_s * 2.0 ** (tries - 1), _MAX_BACKOFF_S)
    else:
        given = failure.retry_after
        delay = _DEFAULT_RETRY_AFTER_S if given is None or given < 0 else given
        delay = min(delay, policy.max_retry_after_s)
    if waited + delay > policy.max_wait_s:
        return None
    return delay


def _kind(failure: Failure) -> str | None:
    """``"unmade"``, ``"doubt"``, or ``None`` for a failure no retry can help."""
    if failure.status is None:
        if failure.refused:
            return "unmade"
        return "doubt" if failure.dropped else None
    if failure.status == 429 or (failure.status == 503 and failure.code in UNMADE_CODES):
        return "unmade"
    if failure.status == 503 and failure.code in DOUBT_CODES:
        return "doubt"
    return None


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delay form; an HTTP date is not used here)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds else None
