"""What a fault run's deliveries say about the scheduler's promises (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.faults.receiver import Arrival

# Keys carry milliseconds and arrivals are timed to the microsecond on the same
# clock: a delivery is early when it arrived before its scheduled millisecond began.
EARLY_TOLERANCE_S = 0.0


@dataclass
class Figures:
    """One run of one scenario, as numbers; ``notes`` explain the bounds used."""

    scenario: str
    jobs: int = 0
    deliveries: int = 0
    early: int = 0
    max_early_ms: float = 0.0
    missed: int = 0
    duplicated_keys: int = 0
    duplicate_bound: int = 0
    stale_after_newer_term: int = 0
    lost_acknowledged: int = 0
    late_p50_ms: float = 0.0
    late_p99_ms: float = 0.0
    late_p99_bound_ms: float | None = None  # where a scenario promises punctuality
    notes: dict[str, float] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every broken promise in this run (empty when it kept them all)."""
        found = []
        if self.early:
            found.append(f"{self.early} early deliveries (up to {self.max_early_ms:.0f} ms)")
        if self.missed:
            found.append(f"{self.missed} occurrences never delivered")
        if self.duplicated_keys > self.duplicate_bound:
            found.append(
                f"{self.duplicated_keys} keys delivered twice (bound {self.duplicate_bound})"
            )
        if self.stale_after_newer_term:
            found.append(f"{self.stale_after_newer_term} deliveries of an older term after a newer")
        if self.late_p99_bound_ms is not None and self.late_p99_ms > self.late_p99_bound_ms:
            found.append(
                f"p99 lateness {self.late_p99_ms:.0f} ms (bound {self.late_p99_bound_ms:.0f})"
            )
        if self.lost_acknowledged:
            found.append(f"{self.lost_acknowledged} acknowledged writes lost")
        return found


def early(arrivals: Iterable[Arrival]) -> list[float]:
    """How early (ms) each early delivery was."""
    return [(a.scheduled - a.at) * 1000 for a in arrivals if a.at < a.scheduled - EARLY_TOLERANCE_S]


def duplicated_keys(arrivals: Iterable[Arrival]) -> int:
    seen: dict[str, int] = {}
    for a in arrivals:
        seen[a.key] = seen.get(a.key, 0) + 1
    return sum(1 for n in seen.values() if n > 1)


def stale_after_newer_term(arrivals: Iterable[Arrival]) -> int:
    """Deliveries that arrived after a delivery of the same key from a newer term:
    sent by a node that was no longer the leader when it sent them."""
    newest: dict[str, int] = {}
    stale = 0
    for a in sorted(arrivals, key=lambda a: a.at):
        if a.term < newest.get(a.key, 0):
            stale += 1
        newest[a.key] = max(newest.get(a.key, 0), a.term)
    return stale


def lateness_ms(arrivals: Iterable[Arrival]) -> list[float]:
    """Lateness of each key's first arrival, in ms, sorted."""
    first: dict[str, Arrival] = {}
    for a in arrivals:
        if a.key not in first or a.at < first[a.key].at:
            first[a.key] = a
    return sorted(max(0.0, (a.at - a.scheduled) * 1000) for a in first.values())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def summarize(name: str, expected: set[str], arrivals: list[Arrival]) -> Figures:
    """The figures every scenario shares; the caller adds its own bounds and notes."""
    ahead = early(arrivals)
    late = lateness_ms(arrivals)
    got = {a.key for a in arrivals}
    return Figures(
        scenario=name,
        jobs=len(expected),
        deliveries=len(arrivals),
        early=len(ahead),
        max_early_ms=max(ahead, default=0.0),
        missed=len(expected - got),
        duplicated_keys=duplicated_keys(arrivals),
        stale_after_newer_term=stale_after_newer_term(arrivals),
        late_p50_ms=percentile(late, 0.5),
        late_p99_ms=percentile(late, 0.99),
    )
