"""The StorageActor over a real RocksDB: persist, apply, events, snapshots, restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.runtime.replies import Reply, wait_reply
from actors.storage.actor import StorageActor
from actors.storage.messages import (
    Applied,
    ApplyEntries,
    DiskFull,
    PersistReady,
    Read,
    ReadResult,
    ReadSnapshotChunk,
    ReadyPersisted,
    SnapshotChunkRead,
    SnapshotChunkRejected,
    SnapshotChunkStaged,
    SnapshotInstalled,
    SnapshotTaken,
    SnapshotUnavailable,
    StageSnapshotChunk,
    Subscribe,
)
from actors.storage.store import NodeStore, SnapshotNotStagedError, StoreOptions
from scheduled_db.jobs.model import JobStatus
from scheduled_db.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    SnapshotMeta,
)
from scheduled_db.state import commands as c
from scheduled_db.state.commands import CommandKind
from scheduled_db.state.fsm import ApplyOrderError
from scheduled_db.state.queries import JobPage
from scheduled_db.state.reads import (
    DueBefore,
    GetApplied,
    GetCounters,
    GetDigest,
    GetJob,
    ListJobs,
    Query,
)
from scheduled_db.state.results import ResultCode
from scheduled_db.testing.harness import wait_until
from tests.actors.memory_backend import MemoryBackend
from tests.actors.probe import start_probe
from tests.command_gen import entry_at
from tests.core.state.test_reads import SAMPLES as QUERY_SAMPLES
from tests.fsm_helpers import spec

T = 5.0  # seconds: the bound on every wait


class Node:
    """A StorageActor over a store in ``path``; ``restart`` reopens the same directory."""

    def __init__(self, path: Path, options: StoreOptions | None = None) -> None:
        self.path, self.options = path, options
        self.probe, self.inbox = start_probe()
        self.start()

    def start(self) -> None:
        self.store = NodeStore.open(self.path, "n1", options=self.options)
        self.ref: pykka.ActorRef[Any] = StorageActor.start(self.store)

    def ask(self, msg: object) -> None:
        """Tell ``msg`` and wait until it is handled (a barrier: handlers return nothing)."""
        self.ref.ask(msg, timeout=T)

    def answer(self, make: Callable[[Reply], object]) -> Any:
        """The answer to the request ``make(reply)``."""
        return wait_reply(self.ref, make, T)

    def read(self, query: Query) -> Any:
        result: ReadResult = self.answer(lambda r: Read(0, query, r))
        assert result.error is None, result.error
        return result.value

    def restart(self) -> None:
        self.ref.stop(timeout=T)  # on_stop closes the store
        self.start()

    def stop(self) -> None:
        for ref in (self.ref, self.probe):
            if ref.is_alive():
                ref.stop(timeout=T)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "n1")
    yield n
    n.stop()


def _cmd_entries(*cmds: c.Command, start: int = 1, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(term, start + i, data=c.encode_command(x)) for i, x in enumerate(cmds))


def test_persist_then_reload_log_and_hard_state(node: Node) -> None:
    first = tuple(Entry(1, i, data=b"x%d" % i) for i in range(1, 6))
    reply = node.answer(lambda r: PersistReady(1, HardState(2, "n1", 0), first, reply=r))
    assert reply == ReadyPersisted(1, HardState(2, "n1", 0), 5, 0)
    # A new leader overwrites the uncommitted tail: entry 4 with term 3 drops entry 5.
    node.ask(PersistReady(2, HardState(3, "n2", 3), (Entry(3, 4, data=b"y"),)))
    node.restart()
    log = node.store.log
    assert (log.first_index(), log.last_index(), log.term(3), log.term(4)) == (1, 4, 1, 3)
    assert log.initial_state()[0] == HardState(3, "n2", 3)
    assert [e.data for e in log.entries(1, 5)] == [b"x1", b"x2", b"x3", b"y"]


def test_apply_reports_results_to_the_proposer_and_subscribers(node: Node) -> None:
    sub, sub_inbox = start_probe()
    try:
        node.ask(Subscribe(sub))
        entries = _cmd_entries(
            c.CreateJob(spec("a"), 1, 100),
            c.CreateJob(spec("a", payload={"other": 1}), 1, 100),
            c.ClaimOccurrence("ghost", 100, 1, "n1", 1, 101),
        ) + (Entry(1, 4, data=b"\x01garbage"), Entry(1, 5))
        node.ask(PersistReady(1, HardState(1, "n1", 5), entries))
        node.ref.tell(ApplyEntries(entries, reply=node.probe.tell))
        applied = node.inbox.wait_for(Applied, timeout=T)
        assert sub_inbox.wait_for(Applied, timeout=T) == applied
        assert applied.applied_index == 5
        codes = [[r.code for r in e.results] for e in applied.entries]
        assert codes == [
            [ResultCode.OK],
            [ResultCode.EXISTS_DIFFERENT],
            [ResultCode.NOT_FOUND],
            [ResultCode.INVALID],
            [],
        ]
        created = [r.job_id for r in applied.results if r.changed and r.kind is CommandKind.CREATE]
        assert created == ["a"]
    finally:
        sub.stop(timeout=T)


def test_the_actor_answers_every_query_type_as_its_in_memory_twin(node: Node) -> None:
    twin = MemoryBackend()
    create = c.CreateJob(spec("job-1"), 1, 5_000)
    twin.apply(create)
    entries = _cmd_entries(create)
    node.ask(PersistReady(1, HardState(1, "n1", 1), entries))
    node.ask(ApplyEntries(entries))
    for query in QUERY_SAMPLES:
        assert node.read(query) == twin.query(query), query


def test_applied_index_is_stored_with_the_state_and_replay_is_harmless(node: Node) -> None:
    entries = _cmd_entries(c.CreateJob(spec("a"), 1, 100), c.CancelJob("a", 5), c.PauseJob("a"))
    node.ask(PersistReady(1, HardState(1, "n1", 3), entries))
    node.ask(ApplyEntries(entries[:2]))
    digest = node.read(GetDigest())
    again = node.answer(lambda r: ApplyEntries(entries[:2], reply=r))
    assert again.entries == () and node.read(GetDigest()) == digest
    node.restart()
    assert node.read(GetApplied()) == (2, 1)
    assert node.read(GetDigest()) == digest
    job = node.read(GetJob("a"))
    assert job.status is JobStatus.CANCELLED
    # The whole tail again, as after a crash:
    tail = node.answer(lambda r: ApplyEntries(entries, reply=r))
    assert [e.index for e in tail.entries] == [3]
    with pytest.raises(ApplyOrderError):  # an ask: the host bug comes back, the actor lives
        node.ask(ApplyEntries((Entry(1, 9),)))
    assert node.ref.is_alive()


def test_conf_state_is_persisted_with_the_applied_batch(node: Node) -> None:
    cc = Entry(1, 1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_VOTER, "n2").encode())
    node.ask(PersistReady(1, HardState(1, "n1", 1), (cc,)))
    node.ask(ApplyEntries((cc,), ConfState(("n1", "n2"))))
    node.restart()
    assert node.store.log.initial_state() == (HardState(1, "n1", 1), ConfState(("n1", "n2")))


def test_reads_by_tell_and_an_invalid_cursor(node: Node) -> None:
    entries = _cmd_entries(*(c.CreateJob(spec(f"j{i}"), 1, 100 + i) for i in range(5)))
    node.ask(ApplyEntries(entries))
    node.ref.tell(Read(7, ListJobs(limit=2), node.probe.tell))
    result = node.inbox.wait_for(ReadResult, lambda r: r.request_id == 7, T)
    assert isinstance(result.value, JobPage) and len(result.value.jobs) == 2
    node.ref.tell(Read(8, ListJobs(cursor="%%%"), node.probe.tell))
    bad = node.inbox.wait_for(ReadResult, lambda r: r.request_id == 8, T)
    assert bad.value is None and bad.error is not None and "cursor" in bad.error
    assert [j.id for j in node.read(DueBefore(103))] == ["j0", "j1", "j2"]
    assert node.read(GetCounters()).jobs == 5


def _fill(node: Node, seed: int, lo: int, hi: int, step: int = 5) -> None:
    for start in range(lo, hi, step):
        batch = tuple(entry_at(seed, i) for i in range(start, min(start + step, hi)))
        node.ask(PersistReady(start, HardState(1, "n1", batch[-1].index), batch))
        node.ref.tell(ApplyEntries(batch, reply=node.probe.tell))
    node.inbox.wait_for(Applied, lambda a: a.applied_index == hi - 1, T)


def _stream(node: Node, index: int) -> list[bytes]:
    chunks, cursor = [], None
    while True:
        reply = node.answer(lambda r: ReadSnapshotChunk(index, cursor, r))
        assert isinstance(reply, SnapshotChunkRead)
        chunks.append(reply.data)
        if (cursor := reply.next_cursor) is None:
            return chunks


def test_snapshot_create_stream_install_round_trip(tmp_path: Path) -> None:
    opts = StoreOptions(snapshot_entries=10, keep_entries=3, chunk_bytes=600)
    leader, follower = Node(tmp_path / "a", opts), Node(tmp_path / "b", opts)
    try:
        _fill(leader, seed=11, lo=1, hi=31)
        leader.inbox.wait_for(SnapshotTaken, lambda t: t.meta.index == 30, T)
        taken = leader.inbox.of_type(SnapshotTaken)
        assert [t.meta.index for t in taken] == [10, 20, 30]
        assert leader.store.log.first_index() == 28  # compacted, 3 entries kept
        meta = leader.store.log.snapshot().meta
        chunks = _stream(leader, meta.index)
        assert len(chunks) > 3 and all(len(x) < 600 + 800 for x in chunks)
        sub, sub_inbox = start_probe()
        follower.ask(Subscribe(sub))
        for data in chunks:
            follower.ref.tell(StageSnapshotChunk(data, follower.probe.tell))
        staged = follower.inbox.wait_for(SnapshotChunkStaged, lambda s: s.complete, T)
        assert staged.meta == meta
        follower.ask(PersistReady(1, HardState(1, "n1", meta.index), (), snapshot=meta))
        assert sub_inbox.wait_for(SnapshotInstalled, timeout=T).meta == meta
        sub.stop(timeout=T)
        assert follower.read(GetDigest()) == leader.read(GetDigest())
        follower.restart()
        log = follower.store.log
        assert (log.first_index(), log.last_index(), log.snapshot().meta) == (31, 30, meta)
        assert log.initial_state()[1] == meta.conf_state
        assert follower.read(GetApplied()) == (30, 1)
        tail = tuple(entry_at(11, i) for i in range(31, 36))
        for n in (leader, follower):
            n.ask(PersistReady(99, None, tail))
            n.ask(ApplyEntries(tail))
        assert follower.read(GetDigest()) == leader.read(GetDigest())
    finally:
        leader.stop()
        follower.stop()


def test_snapshot_rejections(node: Node) -> None:
    assert node.answer(lambda r: ReadSnapshotChunk(999, None, r)) == SnapshotUnavailable(999, 0)
    rejected = node.answer(lambda r: StageSnapshotChunk(b"garbage", r))
    assert isinstance(rejected, SnapshotChunkRejected)
    meta = SnapshotMeta(5, 1)
    with pytest.raises(SnapshotNotStagedError):
        node.ask(PersistReady(1, None, (), snapshot=meta))
    assert node.ref.is_alive()


def test_events_survive_a_dead_subscriber(node: Node) -> None:
    dead, _ = start_probe()
    node.ask(Subscribe(dead))
    dead.stop(timeout=T)
    node.ask(ApplyEntries(_cmd_entries(c.CreateJob(spec("a"), 1, 100))))
    assert node.ref.is_alive()


class FillingStore(NodeStore):
    """A real store whose disk can be declared full: every write then fails as
    RocksDB's does, and the space check says no until it is emptied again."""

    full = False

    def persist_ready(self, *args: Any, **kw: Any) -> None:
        self._maybe_full()
        super().persist_ready(*args, **kw)

    def apply(self, *args: Any, **kw: Any) -> Any:
        self._maybe_full()
        return super().apply(*args, **kw)

    def _maybe_full(self) -> None:
        if self.full:
            raise Exception("IO error: No space left on device: While appending to file")

    def has_room(self) -> bool:
        return not self.full


def test_a_full_disk_holds_writes_in_order_serves_reads_and_resumes(tmp_path: Path) -> None:
    store = FillingStore.open(tmp_path / "n1", "n1")
    assert isinstance(store, FillingStore)
    ref = StorageActor.start(store, retry_s=0.01)
    probe, inbox = start_probe()
    try:
        ref.tell(Subscribe(probe))
        first = _cmd_entries(c.CreateJob(spec("a"), 1, 2))
        ref.ask(PersistReady(1, HardState(1, "n1", 1), first, reply=probe.tell), timeout=T)
        ref.ask(ApplyEntries(first), timeout=T)
        store.full = True
        second = _cmd_entries(c.CreateJob(spec("b"), 1, 2), start=2)
        ref.tell(PersistReady(2, HardState(1, "n1", 2), second, reply=probe.tell))
        ref.tell(ApplyEntries(second))
        assert inbox.wait_for(DiskFull, timeout=T).full
        assert wait_reply(ref, lambda r: Read(0, GetApplied(), r), T).value[0] == 1  # reads go on
        assert wait_reply(ref, lambda r: Read(0, GetJob("a"), r), T).value is not None
        assert not [r for r in inbox.of_type(ReadyPersisted) if r.ready_id == 2]
        store.full = False
        inbox.wait_for(DiskFull, lambda e: not e.full, timeout=T)
        kinds = [type(x) for x in inbox.items if type(x) in (ReadyPersisted, Applied)]
        assert kinds[-2:] == [ReadyPersisted, Applied]  # persisted, then applied
        assert inbox.of_type(Applied)[-1].applied_index == 2
        assert wait_reply(ref, lambda r: Read(0, GetJob("b"), r), T).value is not None
    finally:
        ref.stop(timeout=T)
        probe.stop()
    again = NodeStore.open(tmp_path / "n1", "n1")
    assert again.log.last_index() == 2 and again.applied()[0] == 2
    again.close()


class DamagedStore(NodeStore):
    """A real store whose reads meet a damaged block once ``damaged``."""

    damaged = False

    def view(self) -> Any:
        if self.damaged:
            raise Exception("Corruption: block checksum mismatch in /x/db/000017.sst offset 4")
        return super().view()


def test_corruption_met_while_running_stops_the_actor_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DamagedStore.open(tmp_path / "n1", "n1")
    assert isinstance(store, DamagedStore)
    store.damaged = True
    ref = StorageActor.start(store)
    answers: list[object] = []
    ref.tell(Read(0, GetJob("a"), answers.append))
    wait_until(lambda: not ref.is_alive(), T, "the storage actor to stop")
    assert answers == []  # the actor stopped: no answer
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
    message = errors[0].getMessage()
    assert str(tmp_path / "n1") in message and "corruption" in message and "\n" not in message
