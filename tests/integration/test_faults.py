"""A bounded round of the fault-injection suite (``python -m tests.faults``) in CI.

Each test runs one scenario on a fresh cluster of three real node processes with a
real receiver, prints its figures, and fails on any broken promise: a delivery
before its time, an occurrence never delivered, more duplicates than the bound, a
delivery from a deposed leader after its successor delivered the same key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import scenarios
from tests.faults.figures import Figures
from tests.faults.storage import damaged_log

pytestmark = pytest.mark.slow


def _check(figures: Figures) -> None:
    print(f"\n{figures}")
    assert figures.deliveries > 0, "nothing was delivered: the scenario did not run"
    assert figures.problems() == []


def test_a_graceful_hand_over_before_a_burst_sends_nothing_early(tmp_path: Path) -> None:
    _check(scenarios.handover_before_burst(tmp_path, n=300, spread_s=2.0))


def test_a_paused_leader_sends_nothing_once_a_newer_term_took_over(tmp_path: Path) -> None:
    figures = scenarios.pause_mid_burst(tmp_path, n=300, spread_s=3.0, pause_s=4.0)
    _check(figures)


def test_a_leader_killed_mid_burst_redelivers_only_its_last_moments(tmp_path: Path) -> None:
    figures = scenarios.kill_mid_burst(tmp_path, n=600, spread_s=2.0)
    _check(figures)
    assert figures.duplicate_bound < figures.jobs // 4  # the bound itself stays small


def test_a_per_second_cron_loses_no_run_across_failovers(tmp_path: Path) -> None:
    _check(scenarios.cron_across_failovers(tmp_path, kills=2))


def test_hanging_receivers_leave_other_jobs_on_time(tmp_path: Path) -> None:
    _check(scenarios.hanging_receivers(tmp_path, hanging=600, normal=100))


def test_a_damaged_log_never_loses_acknowledged_writes_silently(tmp_path: Path) -> None:
    figures = damaged_log(tmp_path, jobs=400)
    print(f"\n{figures}")
    assert figures.problems() == []
    assert -1 in figures.notes.values(), "no damage was detected: the scenario did not bite"
