"""SIGKILL the storage layer at random moments; after every restart the applied
index and the state agree, and everything reported durable is there.

The expected state is recomputed independently: the entry stream is a pure
function of its seed, so replaying entries 1..applied into the in-memory twin
must give the digest of what RocksDB recovered.
"""

from __future__ import annotations

import os
import random
import selectors
import subprocess
import sys
import time
from pathlib import Path

from actors.storage.store import NodeStore
from scheduled_db.state import fsm
from scheduled_db.state.stateview import MemoryState, state_digest
from tests.command_gen import entry_at
from tests.fsm_helpers import check_invariants
from tests.integration.storage_crash_worker import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
SEED = 20_260_611
ROUNDS = 24
LINE_TIMEOUT = 20.0


def _run_until_killed(data: Path, lines_before_kill: int) -> tuple[int, int]:
    """Start the worker, SIGKILL it after that many report lines; (persisted, applied)."""
    cmd = [sys.executable, "-m", "tests.integration.storage_crash_worker", str(data), str(SEED)]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        out = _read_lines(proc, lines_before_kill)
        proc.kill()
        proc.wait(timeout=LINE_TIMEOUT)
        out += proc.stdout.read()
        err = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == -9, f"worker exited by itself ({proc.returncode}): {err}"
    assert out.count(b"\n") >= lines_before_kill, f"worker too slow or stuck: {err}"
    persisted = applied = 0
    for line in out.decode().splitlines():
        what, _, n = line.partition(" ")
        if what == "persisted":
            persisted = max(persisted, int(n))
        elif what == "applied":
            applied = max(applied, int(n))
    return persisted, applied


def _read_lines(proc: subprocess.Popen[bytes], n: int) -> bytes:
    """Read the worker's stdout until ``n`` lines arrived (bounded by LINE_TIMEOUT)."""
    assert proc.stdout is not None
    buf, deadline = b"", time.monotonic() + LINE_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while buf.count(b"\n") < n and proc.poll() is None:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            buf += os.read(proc.stdout.fileno(), 65536)
    return buf


def test_state_and_applied_index_agree_after_every_sigkill(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data = tmp_path / "node"
    twin, twin_applied = MemoryState(), 0
    for round_no in range(ROUNDS):
        persisted, applied = _run_until_killed(data, rng.choice((1, 2, 5, 20, 60, 120)))
        store = NodeStore.open(data, "n1", options=OPTIONS)
        try:
            got_applied, last = store.applied()[0], store.log.last_index()
            assert last >= persisted, f"round {round_no}: durable entries lost"
            assert got_applied >= applied, f"round {round_no}: applied batches lost"
            assert got_applied <= last
            first = store.log.first_index()
            expected = [entry_at(SEED, i) for i in range(first, last + 1)]
            assert store.log.entries(first, last + 1) == expected
            out = fsm.apply_entries(
                twin, [entry_at(SEED, i) for i in range(twin_applied + 1, got_applied + 1)]
            )
            twin.apply(out.writes)
            twin_applied = got_applied
            assert store.digest() == state_digest(twin), f"round {round_no}: state diverged"
            check_invariants(store.view())
        finally:
            store.close()
    assert twin_applied > 100, "the workers made too little progress to mean anything"
