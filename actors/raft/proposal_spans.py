"""The ``raft propose`` spans of traced proposals (actors/runtime/tracing.py).

With tracing on, the HTTP side names the requests whose commands an entry carries
(``Propose.traceparents``); each gets a span of its own, from the proposal to the
apply, with an event when the entry is known committed and one when it is applied.
One span per request, not per entry: many requests share an entry (the batcher),
and each request's trace should show its own wait.  With tracing off nothing is
ever held here, and the Raft actor only asks whether anything is.
"""

from __future__ import annotations

from actors.runtime import tracing
from scheduled_db.raft.messages import Entry


class ProposalSpans:
    """The open spans of this leader's traced proposals, by entry index."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[tracing.Span, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def start(self, entry: Entry, traceparents: tuple[str, ...]) -> None:
        """The proposal of ``entry`` for the requests of ``traceparents``."""
        attributes = {"scheduled_db.raft.index": entry.index, "scheduled_db.raft.term": entry.term}
        spans = (
            tracing.start_span("raft propose", parent=tp, attributes=attributes)
            for tp in traceparents
        )
        self._open[entry.index] = tuple(span for span in spans if span is not None)

    def committed(self, index: int) -> None:
        for span in self._open.get(index, ()):
            span.add_event("committed")

    def end(self, index: int, error: str | None = None) -> None:
        """The entry at ``index`` was applied, or (``error``) will never be for us."""
        for span in self._open.pop(index, ()):
            if error is None:
                span.add_event("applied")
            tracing.end_span(span, error)

    def fail_all(self, why: str) -> None:
        for index in list(self._open):
            self.end(index, why)
