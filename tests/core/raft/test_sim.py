"""The simulator: CI's share of seeds, replay, and proof that its checks can fail."""

import pytest

from scheduled_db.raft.core import Raft
from scheduled_db.raft.log import RaftLog
from scheduled_db.raft.messages import Entry, HardState
from scheduled_db.raft.storage import MemoryStorage
from scheduled_db.testing import sim

CI_SEEDS = 300


@pytest.mark.parametrize("block", range(0, CI_SEEDS, 50))
def test_ci_seeds_have_no_violations(block: int) -> None:
    failures = []
    for seed in range(block, block + 50):
        result = sim.run_seed(seed)
        if result.violations:
            failures.append((seed, result.violations[:2]))
        assert result.liveness_ticks is not None and result.converged_ticks is not None
    assert failures == []


def test_a_seed_replays_exactly() -> None:
    a, b = sim.run_seed(7), sim.run_seed(7)
    assert (a.events, a.liveness_ticks, a.converged_ticks) == (
        b.events,
        b.liveness_ticks,
        b.converged_ticks,
    )
    assert a.events != sim.run_seed(8).events


def test_cli_prints_the_summary_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim.main(["--seeds", "4", "--start", "100", "--jobs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("seeds=4 violations=0 events=")


def _first_violation(seeds: int) -> str | None:
    for seed in range(seeds):
        result = sim.run_seed(seed)
        if result.violations:
            return result.violations[0]
    return None


def test_forgetting_the_vote_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that does not persist the vote could vote twice in one term."""
    keep = MemoryStorage.set_hard_state

    def no_vote(self: MemoryStorage, hs: HardState) -> None:
        keep(self, HardState(hs.term, "", hs.commit))

    monkeypatch.setattr(MemoryStorage, "set_hard_state", no_vote)
    found = _first_violation(20)
    assert found is not None and "vote" in found


def test_sending_before_persisting_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    keep = sim.Simulation._persist

    def send_first(self: sim.Simulation, nid: str, incarnation: int) -> None:
        node = self._alive(nid, incarnation)
        if node is not None and node.pending is not None and self.checker is not None:
            for m in node.pending.messages:  # what an eager host would put on the wire
                self.checker.sending(nid, m, node.storage)
        keep(self, nid, incarnation)

    monkeypatch.setattr(sim.Simulation, "_persist", send_first)
    found = _first_violation(20)
    assert found is not None and "durable" in found


def test_voting_for_stale_logs_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without §5.4.1's up-to-date check a leader can lack committed entries."""
    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, index, term: True)
    found = _first_violation(100)
    assert found is not None


def test_accepting_entries_without_log_matching_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Appending without checking the previous entry's term breaks Log Matching (§5.3)."""

    def blind_append(
        self: RaftLog, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> int | None:
        if index > self.last_index():
            return None
        conflict = self.find_conflict(ents)
        if conflict > self.committed:
            self.append(list(ents[conflict - index - 1 :]))
        self.commit_to(min(committed, index + len(ents)))
        return index + len(ents)

    monkeypatch.setattr(RaftLog, "maybe_append", blind_append)
    found = _first_violation(150)
    assert found is not None


def test_a_crashing_core_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Raft) -> None:
        raise RuntimeError("deliberate")

    monkeypatch.setattr(Raft, "tick", boom)
    result = sim.run_seed(1)
    assert any("deliberate" in v for v in result.violations)


def test_removing_the_5_4_2_rule_breaks_figure_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random faults rarely reach figure 8 (a new leader's own entries usually travel
    with the old one); the deterministic scenario does, and must then fail."""
    from tests.core.raft import test_scenarios

    def count_any_term(self: RaftLog, index: int, term: int) -> bool:
        if index > self.committed:
            self.commit_to(index)
            return True
        return False

    test_scenarios.test_figure8_old_term_entry_on_a_majority_is_not_committed()
    monkeypatch.setattr(RaftLog, "maybe_commit", count_any_term)
    with pytest.raises(AssertionError):
        test_scenarios.test_figure8_old_term_entry_on_a_majority_is_not_committed()


def test_an_over_long_lease_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lease longer than the voters' election timeout lets a paused leader wake
    believing in a lease while a newer leader exists: the lease check reports it."""
    monkeypatch.setattr(sim, "LEASE_MS", 10_000)
    found = _first_violation(40)
    assert found is not None and "holds a lease" in found


def test_leases_are_held_and_checked_in_ordinary_runs() -> None:
    """The check has work to do: leaders hold leases through most of a run."""
    result = sim.run_seed(3)
    assert result.violations == [] and result.lease_events > result.events // 4
