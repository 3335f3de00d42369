"""One contract, two backends: the in-memory twin and the RocksDB state agree.

Every test here runs against :class:`MemoryState` and against the state column
family of a real :class:`NodeStore`, so the property tests of the pure state
machine (which use the twin) also hold for what a node actually stores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from actors.storage.store import NodeStore
from scheduled_db.jobs.model import JobStatus
from scheduled_db.raft.messages import ConfState, Entry
from scheduled_db.state import commands as c
from scheduled_db.state import fsm, queries
from scheduled_db.state.stateview import MemoryState, Overlay, StateView, state_digest
from tests.command_gen import entry_at
from tests.fsm_helpers import ALL, check_invariants, spec


class Backend(Protocol):
    def view(self) -> StateView: ...

    def apply(
        self, entries: Sequence[Entry], conf: ConfState | None = None
    ) -> fsm.ApplyOutcome: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.state = MemoryState()

    def view(self) -> StateView:
        return self.state

    def apply(self, entries: Sequence[Entry], conf: ConfState | None = None) -> fsm.ApplyOutcome:
        out = fsm.apply_entries(self.state, entries, conf)
        self.state.apply(out.writes)
        return out


class RocksBackend:
    def __init__(self, path: Path) -> None:
        self.store = NodeStore.open(path, "n1")
        self.store.persist_ready(None, [Entry(1, i) for i in range(1, 200)])

    def view(self) -> StateView:
        return self.store.view()

    def apply(self, entries: Sequence[Entry], conf: ConfState | None = None) -> fsm.ApplyOutcome:
        return self.store.apply(entries, conf)


@pytest.fixture(params=["memory", "rocksdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    rocks = RocksBackend(tmp_path / "node")
    yield rocks
    rocks.store.close()


def _entries(*cmds: c.Command, start: int = 1) -> list[Entry]:
    return [Entry(1, start + i, data=c.encode_command(x)) for i, x in enumerate(cmds)]


def test_get_and_iter_range(backend: Backend) -> None:
    backend.apply(_entries(*(c.CreateJob(spec(f"j{i}"), 1, 500 - i) for i in range(5))))
    view = backend.view()
    assert view.get(b"j/missing") is None
    keys = [k for k, _ in view.iter_range(b"j/", b"j0")]
    assert keys == [f"j/j{i}".encode() for i in range(5)]
    assert [k for k, _ in view.iter_range(b"j/j1", b"j/j3")] == [b"j/j1", b"j/j2"]
    assert list(view.iter_range(b"j/j9", b"j/j9\xff")) == []
    all_keys = [k for k, _ in view.iter_range(*ALL)]
    assert all_keys == sorted(all_keys)


def test_overlay_merges_pending_writes_over_the_base(backend: Backend) -> None:
    backend.apply(_entries(*(c.CreateJob(spec(f"j{i}"), 1, 100) for i in range(4))))
    ov = Overlay(backend.view())
    ov.delete(b"j/j1")
    ov.put(b"j/j15", b"new")
    ov.put(b"j/j3", b"changed")
    ov.put(b"j/j9", b"new")
    ov.delete(b"j/nothing")
    got = [(k, v) for k, v in ov.iter_range(b"j/", b"j0")]
    assert [k for k, _ in got] == [b"j/j0", b"j/j15", b"j/j2", b"j/j3", b"j/j9"]
    assert dict(got)[b"j/j3"] == b"changed" and ov.get(b"j/j1") is None
    assert backend.view().get(b"j/j1") is not None  # the base is untouched


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_stream_matches_the_twin(backend: Backend, seed: int) -> None:
    twin = MemoryBackend()
    for lo in range(1, 150, 25):
        entries = [entry_at(seed, i) for i in range(lo, lo + 25)]
        out, expected = backend.apply(entries), twin.apply(entries)
        assert out.results == expected.results
    check_invariants(backend.view())
    assert state_digest(backend.view()) == state_digest(twin.view())


def test_queries_answer_alike(backend: Backend) -> None:
    twin = MemoryBackend()
    cmds: list[c.Command] = [c.CreateJob(spec(f"j{i}"), 1, 1_000 + i) for i in range(12)]
    cmds += [c.ClaimOccurrence("j3", 1_003, 1, "n1", 1, 1_004), c.CancelJob("j5", 9)]
    for b in (backend, twin):
        b.apply(_entries(*cmds))
    for view in (backend.view(), twin.view()):
        page = queries.list_jobs(view, JobStatus.PENDING, None, 5)
        assert [j.id for j in page.jobs] == ["j0", "j1", "j10", "j11", "j2"]
        assert [j.id for j in queries.due_before(view, 1_005)] == ["j0", "j1", "j2", "j4"]
        assert [a.job_id for a in queries.open_claims(view)] == ["j3"]
        assert queries.counters(view).count(JobStatus.CANCELLED) == 1
    assert queries.list_jobs(backend.view(), None, None, 100) == queries.list_jobs(
        twin.view(), None, None, 100
    )
