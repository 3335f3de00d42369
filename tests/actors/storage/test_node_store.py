"""NodeStore and its Raft log store: MemoryStorage semantics, damaged directories,
snapshot install atomicity, and self-healing of a lost checkpoint."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from rocksdict import Rdict

from actors.storage.datadir import DB_DIR, META_KEY, SNAPSHOT_DIR, DataDirError, rocks_options
from actors.storage.store import NodeStore, StoreOptions
from scheduled_db.jobs.model import JobSpec, JobType
from scheduled_db.raft.messages import ConfState, Entry, HardState
from scheduled_db.raft.storage import CompactedError, MemoryStorage, Storage, UnavailableError
from scheduled_db.state import commands as c
from scheduled_db.state import queries
from tests.actors.storage.conftest import OPTS, close_store, open_store
from tests.command_gen import entry_at


def _filled(path: Path, n: int, seed: int = 3, snapshot: bool = True) -> NodeStore:
    store = open_store(path)
    entries = [entry_at(seed, i) for i in range(1, n + 1)]
    store.persist_ready(HardState(1, "n1", n), entries)
    store.apply(entries, ConfState(("n1",)))
    if snapshot:
        store.create_snapshot()
    return store


def test_a_snapshot_is_due_once_the_applied_log_holds_its_bytes(tmp_path: Path) -> None:
    opts = StoreOptions(snapshot_entries=10_000, keep_entries=2, snapshot_bytes=10_000)
    store = NodeStore.open(tmp_path, "n1", options=opts)
    entries = [Entry(1, i, data=bytes(984)) for i in range(1, 40)]  # 1,000 bytes each
    store.persist_ready(HardState(1, "n1", 39), entries[:1])
    store.apply(entries[:1], ConfState(("n1",)))
    seen = []
    for i in range(2, 40):  # applied one or two at a time, counted on from the last
        store.persist_ready(HardState(1, "n1", 39), entries[i - 1 : i])
        store.apply(entries[i - 1 : i])
        seen.append(store.should_snapshot())
        if i == 25:
            assert store.create_snapshot() is not None  # counting starts again after it
    # seen[k] is after entry k + 2: 10,000 bytes since the start once entry 10 applies.
    assert seen.index(True) == 10 - 2
    assert seen[25 - 2] and not seen[26 - 2]  # the snapshot at 25 restarts the count
    assert seen[26 - 2 :].index(True) == 35 - 26  # 26..35: ten entries again
    store.close()


def test_memtables_start_flushing_once_a_snapshot_is_near_once_per_snapshot(
    tmp_path: Path,
) -> None:
    """At 9 of 10 entries (FLUSH_AHEAD_AT) a flush starts in RocksDB's threads, so the
    snapshot's checkpoint finds little left to flush on the storage thread."""
    opts = StoreOptions(snapshot_entries=10, keep_entries=2)
    store = NodeStore.open(tmp_path, "n1", options=opts)
    started = []
    for i in range(1, 26):
        entry = Entry(1, i, data=b"x" * 100)
        store.persist_ready(HardState(1, "n1", i), [entry])
        store.apply([entry], ConfState(("n1",)) if i == 1 else None)
        if store.should_snapshot():
            assert store.create_snapshot() is not None
        elif store.flush_ahead_of_snapshot():
            started.append(i)
    assert started == [9, 19]  # snapshots at 10 and 20; none started again at 10 or 20
    store.close()


def _same_reads(mem: MemoryStorage, store: NodeStore) -> None:
    log = store.log
    assert (log.first_index(), log.last_index()) == (mem.first_index(), mem.last_index())
    for i in range(mem.first_index() - 3, mem.last_index() + 3):
        for fn in (_term(i), _window(i)):
            try:
                expected: object = fn(mem)
            except (CompactedError, UnavailableError) as exc:
                expected = type(exc)
            try:
                got: object = fn(log)
            except (CompactedError, UnavailableError) as exc:
                got = type(exc)
            assert got == expected, i


def _term(i: int) -> Callable[[Storage], object]:
    return lambda s: s.term(i)


def _window(i: int) -> Callable[[Storage], object]:
    return lambda s: s.entries(i, i + 2, 40)


@pytest.mark.parametrize("seed", range(4))
def test_log_store_behaves_like_memory_storage(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    mem, store = MemoryStorage(), open_store(tmp_path / "n")
    term = 1
    for _ in range(25):
        last = mem.last_index()
        if rng.random() < 0.2 and last > mem.first_index():  # a new leader's conflicting tail
            term += 1
            start = rng.randint(max(mem.first_index(), store.applied()[0] + 1), last + 1)
        else:
            start = last + 1
        batch = [Entry(term, i, data=b"d%d" % i) for i in range(start, start + rng.randint(1, 4))]
        mem.append(batch)
        store.persist_ready(None, batch)
        if rng.random() < 0.3:  # apply a committed prefix and maybe snapshot it
            upto = rng.randint(store.applied()[0], mem.last_index())
            store.apply(store.log.entries(store.applied()[0] + 1, upto + 1) if upto else [])
            meta = store.create_snapshot()
            if meta is not None:
                mem.create_snapshot(meta.index, meta.conf_state, b"")
                compact_to = store.log.first_index() - 1
                if compact_to > mem.first_index() - 1:
                    mem.compact(compact_to)
        _same_reads(mem, store)
    store.close()
    _same_reads(mem, open_store(tmp_path / "n"))


def test_restart_hands_back_everything(tmp_path: Path) -> None:
    store = _filled(tmp_path / "n", 25)
    state = (store.log.initial_state(), store.log.snapshot(), store.applied(), store.digest())
    tail = store.log.entries(store.log.first_index(), store.log.last_index() + 1)
    store.close()
    again = open_store(tmp_path / "n")
    assert (
        again.log.initial_state(),
        again.log.snapshot(),
        again.applied(),
        again.digest(),
    ) == state
    assert again.log.entries(again.log.first_index(), again.log.last_index() + 1) == tail
    assert again.log.initial_state()[1] == ConfState(("n1",))


def test_interrupted_install_leaves_the_old_state(tmp_path: Path) -> None:
    leader = _filled(tmp_path / "leader", 30, seed=5)
    chunks = list(leader.snapshot_chunks())
    follower = _filled(tmp_path / "follower", 12, seed=6)
    before = follower.digest()
    for data in chunks[: len(chunks) // 2]:
        follower.stage_snapshot_chunk(data)
    follower.close()  # a crash mid-stream
    follower = open_store(tmp_path / "follower")
    assert follower.digest() == before
    for data in chunks:
        follower.stage_snapshot_chunk(data)
    follower.close()  # a crash after the stream, before the flip
    follower = open_store(tmp_path / "follower")
    assert follower.digest() == before
    cfs = Rdict.list_cf(str(tmp_path / "follower" / DB_DIR), rocks_options())
    assert [n for n in cfs if n.startswith("state-")] == ["state-1"]
    follower.install_snapshot(chunks)
    assert follower.digest() == leader.digest()
    assert len(list((tmp_path / "follower" / SNAPSHOT_DIR).iterdir())) == 1


def test_a_lost_checkpoint_is_retaken(tmp_path: Path) -> None:
    store = _filled(tmp_path / "n", 20)
    digest = store.digest()
    store.close()
    shutil.rmtree(tmp_path / "n" / SNAPSHOT_DIR)
    store = open_store(tmp_path / "n")
    fresh = open_store(tmp_path / "other")
    fresh.install_snapshot(store.snapshot_chunks())
    assert fresh.digest() == digest


def test_a_snapshot_carries_triggered_runs_and_the_digest_covers_them(tmp_path: Path) -> None:
    spec = JobSpec("j", JobType.UNICO, 10**12, webhook_url="https://hooks.example.com/j")
    cmds: list[c.Command] = [
        c.CreateJob(spec, 1, 10**12),
        c.TriggerJob("j", 5_000),
        c.ClaimOccurrence("j", 5_000, 1, "n1", 1, 5_001, trigger=True),
        c.TriggerJob("j", 6_000),
    ]
    entries = [Entry(1, i, data=c.encode_command(x)) for i, x in enumerate(cmds, 1)]
    store = open_store(tmp_path / "leader")
    store.persist_ready(HardState(1, "n1", len(entries)), entries)
    store.apply(entries, ConfState(("n1",)))
    store.create_snapshot(force=True)
    fresh = open_store(tmp_path / "fresh")
    fresh.install_snapshot(store.snapshot_chunks())
    assert fresh.digest() == store.digest()
    view = fresh.view()
    assert [(g.asked_ms, g.claim_open) for g in queries.triggers(view)] == [
        (5_000, True),
        (6_000, False),
    ]
    assert [d.occurrence_ms for d in queries.due_triggers(view, 10**9)] == [6_000]
    (claimed,) = queries.open_claims(view)
    assert claimed.trigger and claimed.scheduled_at_ms == 5_000
    before = store.digest()
    store.apply([Entry(1, 5, data=c.encode_command(c.TriggerJob("j", 7_000)))], None)
    assert store.digest() != before  # a run's record alone changes the digest


# --- damaged and foreign directories -----------------------------------------------


def _meta(path: Path, **changes: object) -> None:
    db = Rdict(str(path / DB_DIR), rocks_options(), column_families=None)
    meta = msgpack.unpackb(db[META_KEY])
    meta.update(changes)
    db[META_KEY] = msgpack.packb(meta)
    db.close()


def _damage_current(p: Path) -> None:
    (p / DB_DIR / "CURRENT").write_text("garbage")


def _truncate_manifest(p: Path) -> None:
    for f in (p / DB_DIR).glob("MANIFEST-*"):
        f.write_bytes(f.read_bytes()[:10])


def _truncate_sst(p: Path) -> None:
    for f in (p / DB_DIR).glob("*.sst"):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_damage_current, "CURRENT"),
        (_truncate_manifest, "MANIFEST"),
        (_truncate_sst, "size mismatch"),
        (lambda p: _meta(p, format=99), "format version 99"),
        (lambda p: _meta(p, node_id="n7"), "belongs to node 'n7'"),
        (lambda p: shutil.rmtree(p / DB_DIR), "not a scheduled-db data directory"),
    ],
)
def test_damaged_or_foreign_directory_stops_with_a_clear_error(
    tmp_path: Path, damage: object, problem: str
) -> None:
    path = tmp_path / "n"
    _filled(path, 15).close()
    (path / "keep.txt").write_text("so the directory is not empty")
    damage(path)  # type: ignore[operator]
    with pytest.raises(DataDirError) as err:
        NodeStore.open(path, "n1", options=OPTS)
    assert problem in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_other_node_cluster_or_a_plain_file(tmp_path: Path) -> None:
    NodeStore.open(tmp_path / "n", "n1", cluster_id="c1").close()
    with pytest.raises(DataDirError, match="belongs to node 'n1'"):
        NodeStore.open(tmp_path / "n", "n2")
    with pytest.raises(DataDirError, match="belongs to cluster 'c1'"):
        NodeStore.open(tmp_path / "n", "n1", cluster_id="c2")
    NodeStore.open(tmp_path / "n", "n1", cluster_id="c1").close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataDirError, match="is not a directory"):
        NodeStore.open(tmp_path / "file", "n1")
    assert issubclass(DataDirError, RuntimeError)


def test_an_interrupted_first_open_is_finished(tmp_path: Path) -> None:
    NodeStore.open(tmp_path / "n", "n1").close()
    db = Rdict(str(tmp_path / "n" / DB_DIR), rocks_options())
    for key in list(db.keys()):  # as if the first open died before its metadata write
        del db[key]
    db.close()
    store = NodeStore.open(tmp_path / "n", "n1")
    assert store.applied() == (0, 0)
    store.close()


def test_bootstrap_gives_every_initial_member_the_same_start(tmp_path: Path) -> None:
    voters = ("n3", "n1", "n2")
    stores = [open_store(tmp_path / f"n{i}") for i in range(3)]
    metas = {s.bootstrap(voters) for s in stores}
    assert len(metas) == 1 and len({s.digest() for s in stores}) == 1
    with pytest.raises(ValueError, match="twice"):
        stores[0].bootstrap(voters)
    stores[0].close()
    again = open_store(tmp_path / "n0")
    assert again.log.initial_state() == (HardState(1, "", 1), ConfState(("n1", "n2", "n3")))
    assert (again.log.first_index(), again.log.last_index(), again.applied()) == (2, 1, (1, 1))
    joiner = open_store(tmp_path / "joiner")
    joiner.install_snapshot(again.snapshot_chunks())
    assert joiner.digest() == again.digest()
    follow = [entry_at(9, i) for i in range(2, 12)]
    for s in (again, joiner):
        s.persist_ready(HardState(1, "", 11), follow)
        s.apply(follow)
    assert joiner.digest() == again.digest()


def test_a_fresh_volume_with_lost_and_found_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "volume"
    (path / "lost+found").mkdir(parents=True)
    store = NodeStore.open(path, "n1")
    try:
        assert store.log.last_index() == 0
    finally:
        store.close()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stray.txt").write_text("not ours")
    with pytest.raises(DataDirError, match="not a scheduled-db data directory"):
        NodeStore.open(tmp_path / "other", "n1")


def test_only_a_new_commit_index_is_written_without_a_sync(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n1")
    entries = tuple(Entry(1, i, data=b"x") for i in range(1, 4))
    store.persist_ready(HardState(1, "n1", 0), entries)  # entries: synced
    store.persist_ready(HardState(1, "n1", 3), ())  # only the commit moved: not synced
    assert store.synced_writes == 1
    store.persist_ready(HardState(2, "", 3), ())  # a new term must survive a crash
    store.persist_ready(HardState(2, "n2", 3), ())  # so must a vote
    store.persist_ready(None, (Entry(2, 4, data=b"y"),))
    assert store.synced_writes == 4
    close_store(store)
    again = open_store(tmp_path / "n1")  # a clean close keeps the unsynced write too
    assert again.log.hard_state() == HardState(2, "n2", 3) and again.log.last_index() == 4
