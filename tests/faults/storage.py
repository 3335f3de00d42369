"""Damaged data directories: does a node that lost acknowledged writes say so?

A single node acknowledges JOBS creates and is SIGKILLed, so its write-ahead log
still holds them.  Each damage is applied to a copy of its directory, as the issue
measured it: the log cut to half, 256 bytes flipped in its middle, 64 bytes
flipped near its end.  A node started on the copy must either refuse to start, or
serve every acknowledged job: serving with some missing is silent loss.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from scheduled_db.testing.harness import NodeProcess
from tests.faults.figures import Figures
from tests.integration.storage_damage_tools import (
    create_jobs,
    cut_to_half,
    flip,
    start_on,
    total_jobs,
    wal_of,
)

JOBS = 3000

DAMAGES: dict[str, Callable[[Path], None]] = {
    "log cut to half": cut_to_half,
    "256 bytes flipped mid-log": lambda log: flip(log, log.stat().st_size // 2),
    "64 bytes flipped near the end": lambda log: flip(log, log.stat().st_size - 200, 64),
}


def damaged_log(root: Path, jobs: int = JOBS) -> Figures:
    """For each damage: detected (refused to start) or how many acknowledged jobs a
    node that started anyway had lost."""
    node = NodeProcess(root / "orig" / "data")
    node.data_dir.parent.mkdir(parents=True)
    node.start()
    try:
        create_jobs(node, jobs)
    finally:
        node.stop(signal.SIGKILL)
    figures = Figures("wal", jobs=jobs * len(DAMAGES))
    for i, (name, damage) in enumerate(DAMAGES.items()):
        data = root / f"copy{i}" / "data"
        shutil.copytree(node.data_dir, data)
        damage(wal_of(data))
        lost = _lost_on_start(data, jobs)
        figures.notes[name] = -1 if lost is None else lost  # -1: refused to start
        figures.lost_acknowledged += lost or 0
    return figures


def _lost_on_start(data: Path, jobs: int) -> int | None:
    """None if the node refused to start (exit != 0), else the jobs it lacked."""
    node, code = start_on(data)
    if code is not None:
        assert code != 0, node.log()[-2000:]
        return None
    try:
        return jobs - total_jobs(node)
    finally:
        node.stop()
