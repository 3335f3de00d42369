"""A linearizability checker for recorded histories.

The checker is Wing & Gong's search with Lowe's memoization (porcupine's
approach, written afresh): call and return events sit in one time-ordered linked
list; the search linearizes any operation whose call precedes the first pending
return, lifts it out of the list, and backtracks when none fits.  A
configuration seen before, (bitset of linearized ops, model state), is not
explored again.  ``Model.partition`` splits a history into independent keys
first (linearizability is compositional).  Two operations are concurrent unless
one returns *strictly* before the other's call.

An operation whose outcome is unknown (a timeout, a 503, a lost connection) has
``ret=None`` (see :meth:`Operation.unknown` and :class:`HistoryRecorder`): it
may take effect at any instant after its call, or never, and ``Model.step``
gets the :data:`UNKNOWN` sentinel as its output, which it must accept.

The model of the job API is in :mod:`tests.linearizability_jobs`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar

S = TypeVar("S")
Partition = Callable[[Sequence["Operation"]], list[list["Operation"]]]
_EXPLAIN_LIMIT = 20


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
"""The output ``Model.step`` is given for an operation whose outcome is unknown."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation: ``ret=None`` means its outcome is unknown."""

    client: int
    call: float
    ret: float | None
    input: Any
    output: Any = None

    def __post_init__(self) -> None:
        if self.ret is not None and self.ret < self.call:
            raise ValueError(f"operation returns ({self.ret}) before its call ({self.call})")

    @staticmethod
    def unknown(client: int, call: float, input: Any) -> Operation:
        return Operation(client, call, None, input, UNKNOWN)


def describe(op: Operation) -> str:
    ret = "?" if op.ret is None else f"{op.ret:g}"
    out = "UNKNOWN" if op.ret is None else repr(op.output)
    return f"client {op.client} [{op.call:g}, {ret}] {op.input!r} -> {out}"


@dataclass(frozen=True)
class Model(Generic[S]):
    """A sequential specification.

    ``step(state, input, output)`` says whether ``output`` is a legal answer to
    ``input`` in ``state`` and gives the next state; it never mutates ``state``.
    States must be hashable, or ``key`` must map them to something hashable.
    ``partition`` splits a history into independently checked histories.
    """

    init: S
    step: Callable[[S, Any, Any], tuple[bool, S]]
    key: Callable[[S], Hashable] | None = None
    partition: Partition | None = None


class Verdict(Enum):
    OK = "linearizable"
    ILLEGAL = "not linearizable"
    UNKNOWN = "unknown (search budget exhausted)"


@dataclass(frozen=True)
class CheckResult:
    """The verdict; on ILLEGAL, the longest linearization found and where it stuck."""

    verdict: Verdict
    steps: int
    explanation: str = ""
    linearized: tuple[Operation, ...] = ()
    stuck: tuple[Operation, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def __str__(self) -> str:
        return self.explanation or self.verdict.value


def partition_by(key: Callable[[Any], Hashable]) -> Partition:
    """A ``Model.partition`` grouping operations by ``key(op.input)``, order kept."""

    def split(history: Sequence[Operation]) -> list[list[Operation]]:
        groups: dict[Hashable, list[Operation]] = {}
        for op in history:
            groups.setdefault(key(op.input), []).append(op)
        return list(groups.values())

    return split


def check(
    history: Sequence[Operation],
    model: Model[S],
    *,
    max_steps: int | None = 1_000_000,
    timeout_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CheckResult:
    """Is ``history`` linearizable with respect to ``model``?

    The search stops after ``max_steps`` search steps (over all partitions) or
    ``timeout_s`` seconds of ``clock``; it then answers ``Verdict.UNKNOWN``,
    never OK.  Partitions are searched smallest first, and an ILLEGAL one found
    before the budget runs out wins over an exhausted one.
    """
    parts = model.partition(history) if model.partition else [list(history)]
    parts = sorted(parts, key=len)
    budget = _Budget(max_steps, timeout_s, clock)
    exhausted = False
    for i, ops in enumerate(parts):
        search = _Search(ops, model, budget)
        verdict = search.run()
        if verdict is Verdict.ILLEGAL:
            return _illegal(search, f"partition {i + 1} of {len(parts)}")
        exhausted = exhausted or verdict is Verdict.UNKNOWN
        if budget.exhausted:
            break
    if exhausted:
        why = f"gave up after {budget.steps} steps; the history is neither passed nor failed"
        return CheckResult(Verdict.UNKNOWN, budget.steps, why)
    return CheckResult(Verdict.OK, budget.steps)


class _Budget:
    def __init__(
        self, max_steps: int | None, timeout_s: float | None, clock: Callable[[], float]
    ) -> None:
        self.steps = 0
        self.exhausted = False
        self._max = max_steps
        self._clock = clock
        self._deadline = None if timeout_s is None else clock() + timeout_s

    def spend(self) -> bool:
        """Count one step; False once the budget is gone (the clock is read every 256)."""
        self.steps += 1
        if self._max is not None and self.steps > self._max:
            self.exhausted = True
        elif self._deadline is not None and self.steps % 256 == 1:
            self.exhausted = self._clock() > self._deadline
        return not self.exhausted


class _Node:
    """A call or return event in the doubly linked list the search walks."""

    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op: int, is_call: bool) -> None:
        self.op = op
        self.is_call = is_call
        self.match: _Node | None = None
        self.prev: _Node | None = None
        self.next: _Node | None = None


def _event_list(ops: Sequence[Operation]) -> _Node:
    """The head of the list; an unknown outcome has no return event (it is +inf)."""
    events: list[tuple[float, int, int, _Node]] = []
    for i, op in enumerate(ops):
        call = _Node(i, True)
        events.append((op.call, 0, i, call))
        if op.ret is not None:
            call.match = _Node(i, False)
            events.append((op.ret, 1, i, call.match))
    events.sort(key=lambda e: e[:3])  # a call at the time of a return comes first
    head = prev = _Node(-1, False)
    for *_, node in events:
        prev.next, node.prev, prev = node, prev, node
    return head


def _unlink(node: _Node) -> None:
    assert node.prev is not None
    node.prev.next = node.next
    if node.next is not None:
        node.next.prev = node.prev


def _relink(node: _Node) -> None:
    assert node.prev is not None
    node.prev.next = node
    if node.next is not None:
        node.next.prev = node


def _lift(call: _Node) -> None:
    _unlink(call)
    if call.match is not None:
        _unlink(call.match)


def _unlift(call: _Node) -> None:
    if call.match is not None:
        _relink(call.match)
    _relink(call)


class _Search(Generic[S]):
    """The search over one partition."""

    def __init__(self, ops: Sequence[Operation], model: Model[S], budget: _Budget) -> None:
        self.ops = ops
        self.step = model.step
        self.key = model.key
        self.budget = budget
        self.head = _event_list(ops)
        self.state = model.init
        self.linearized = 0
        self.remaining = sum(op.ret is not None for op in ops)  # known ops not yet placed
        self.stack: list[tuple[_Node, S]] = []
        self.seen: set[tuple[int, Hashable]] = set()
        self.best: list[int] = []
        self.blocker: int | None = None

    def run(self) -> Verdict:
        entry = self.head.next
        while self.remaining:
            if not self.budget.spend():
                return Verdict.UNKNOWN
            if entry is not None and entry.is_call:
                entry = self._try(entry)
                continue
            if self.blocker is None and len(self.stack) == len(self.best) and entry is not None:
                self.blocker = entry.op
            if not self.stack:
                return Verdict.ILLEGAL
            entry = self._backtrack()
        return Verdict.OK

    def _try(self, entry: _Node) -> _Node | None:
        op = self.ops[entry.op]
        ok, new = self.step(self.state, op.input, UNKNOWN if op.ret is None else op.output)
        if not ok:
            return entry.next
        linearized = self.linearized | (1 << entry.op)
        seen = (linearized, new if self.key is None else self.key(new))
        if seen in self.seen:
            return entry.next
        self.seen.add(seen)
        self.stack.append((entry, self.state))
        self.state, self.linearized = new, linearized
        self.remaining -= op.ret is not None
        _lift(entry)
        if len(self.stack) > len(self.best):
            self.best, self.blocker = [e.op for e, _ in self.stack], None
        return self.head.next

    def _backtrack(self) -> _Node | None:
        entry, self.state = self.stack.pop()
        self.linearized &= ~(1 << entry.op)
        self.remaining += self.ops[entry.op].ret is not None
        _unlift(entry)
        return entry.next


def _illegal(search: _Search[Any], where: str) -> CheckResult:
    ops = search.ops
    placed = [ops[i] for i in search.best]
    chosen = set(search.best)
    limit = float("inf") if search.blocker is None else ops[search.blocker].ret
    assert limit is not None
    stuck = tuple(op for i, op in enumerate(ops) if i not in chosen and op.call <= limit)
    lines = [f"not linearizable ({where}, {len(ops)} operations)."]
    lines.append(f"Longest linearizable prefix ({len(placed)} ops, last {_EXPLAIN_LIMIT} shown):")
    lines += [f"  {describe(op)}" for op in placed[-_EXPLAIN_LIMIT:]]
    if search.blocker is not None:
        lines.append(f"No op fits next, before the return of: {describe(ops[search.blocker])}")
    lines.append("Candidates that could not be placed next:")
    lines += [f"  {describe(op)}" for op in stuck[:_EXPLAIN_LIMIT]]
    return CheckResult(Verdict.ILLEGAL, search.budget.steps, "\n".join(lines), tuple(placed), stuck)


class HistoryRecorder:
    """Collects a history as clients run (thread-safe).  An operation never
    completed is an unknown outcome: :meth:`history` gives it ``ret=None``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: list[tuple[int, float, Any]] = []
        self._returns: dict[int, tuple[float, Any]] = {}

    def invoke(self, client: int, input: Any) -> int:
        """Note a call; the token it returns is passed to :meth:`complete`."""
        with self._lock:
            self._calls.append((client, self._clock(), input))
            return len(self._calls) - 1

    def complete(self, token: int, output: Any) -> None:
        with self._lock:
            self._returns[token] = (self._clock(), output)

    def history(self) -> list[Operation]:
        with self._lock:
            ops = []
            for token, (client, call, input) in enumerate(self._calls):
                done = self._returns.get(token)
                if done is None:
                    ops.append(Operation.unknown(client, call, input))
                else:
                    ops.append(Operation(client, call, done[0], input, done[1]))
            return ops
