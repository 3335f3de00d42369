"""Backups out of a real RocksDB, restores into new directories, and the forced new
cluster of ``recover``: the state comes through whole, membership is the new one,
and a damaged or short file is refused before anything is written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from actors.storage.backup import (
    BackupSource,
    derived_cluster_id,
    read_node_id,
    recover_data_dir,
    restore_data_dir,
)
from actors.storage.datadir import BACKUP_DIR, DataDirError
from actors.storage.store import NodeStore
from scheduled_db.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
)
from scheduled_db.state import queries
from scheduled_db.state.backup_format import BackupFormatError, verify
from scheduled_db.state.records import CONF, encode_member
from tests.actors.storage.conftest import close_store, open_store
from tests.command_gen import entry_at

VOTERS = ("n1", "n2", "n3")


def _filled(path: Path, n: int) -> NodeStore:
    store = open_store(path)
    store.bootstrap(VOTERS)
    entries = [entry_at(5, i, term=2) for i in range(2, n + 2)]
    store.persist_ready(HardState(2, "n1", n + 1), entries)
    store.apply(entries)
    return store


def _backup(store: NodeStore) -> bytes:
    path, cf = store.checkpoint_for_backup()
    source = BackupSource(path, cf, "n1")
    try:
        data = b"".join(source.pieces())
    finally:
        source.close()
    assert not path.exists()
    return data


def test_a_backup_holds_the_state_at_the_applied_index(tmp_path: Path) -> None:
    store = _filled(tmp_path / "n1", 60)
    data = _backup(store)
    contents = verify(io.BytesIO(data))
    assert (contents.header.index, contents.header.term) == store.applied() == (61, 2)
    assert contents.header.digest == store.digest()
    assert contents.header.voters == VOTERS
    assert not any((tmp_path / "n1" / BACKUP_DIR).iterdir())


def test_a_restored_directory_starts_a_new_cluster_with_the_same_state(tmp_path: Path) -> None:
    store = _filled(tmp_path / "n1", 60)
    data = _backup(store)
    digest = store.digest()
    header, cid = restore_data_dir(io.BytesIO(data), tmp_path / "r2", "n2", VOTERS)
    assert header.digest == digest
    assert cid == derived_cluster_id(verify(io.BytesIO(data)).checksum, VOTERS)
    restored = open_store(tmp_path / "r2", "n2")
    assert restored.digest() == digest  # the same members: the same bytes
    assert restored.cluster_id == cid
    assert restored.log.initial_state() == (HardState(2, "", 61), ConfState(VOTERS))
    assert restored.has_raft_state()
    # A node of another cluster id cannot open it.
    close_store(restored)
    with pytest.raises(DataDirError, match="belongs to cluster"):
        NodeStore.open(tmp_path / "r2", "n2", "another")


def test_restore_into_other_members_forgets_the_old_addresses(tmp_path: Path) -> None:
    store = _filled(tmp_path / "n1", 5)
    add = ConfChange(ConfChangeType.ADD_LEARNER, "n4", encode_member("h:1", "h:2"))
    entry = Entry(2, 7, EntryType.CONF_CHANGE, add.encode())
    store.persist_ready(HardState(2, "n1", 7), [entry])
    store.apply([entry], ConfState(VOTERS, ("n4",)))
    assert queries.members(store.view())
    data = _backup(store)
    restore_data_dir(io.BytesIO(data), tmp_path / "a", "a", ("a", "b"))
    restored = open_store(tmp_path / "a", "a")
    assert queries.conf_state(restored.view()) == ConfState(("a", "b"))
    assert queries.members(restored.view()) == {}
    assert queries.counters(restored.view()) == queries.counters(store.view())


@pytest.mark.parametrize("cut", [5, 40, -40, -1])
def test_a_short_or_changed_file_is_refused_and_nothing_is_written(
    tmp_path: Path, cut: int
) -> None:
    data = _backup(_filled(tmp_path / "n1", 30))
    short = data[:cut]
    with pytest.raises(BackupFormatError):
        restore_data_dir(io.BytesIO(short), tmp_path / "r", "n1", VOTERS)
    flipped = bytearray(data)
    flipped[cut] ^= 0x01
    with pytest.raises(BackupFormatError):
        restore_data_dir(io.BytesIO(bytes(flipped)), tmp_path / "r", "n1", VOTERS)
    assert not (tmp_path / "r").exists()


def test_restore_refuses_a_used_directory_and_a_node_not_among_the_members(
    tmp_path: Path,
) -> None:
    data = _backup(_filled(tmp_path / "n1", 3))
    with pytest.raises(ValueError, match="not one of"):
        restore_data_dir(io.BytesIO(data), tmp_path / "r", "n9", VOTERS)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("mine")
    with pytest.raises(DataDirError, match="not empty"):
        restore_data_dir(io.BytesIO(data), tmp_path / "used", "n1", VOTERS)
    assert (tmp_path / "used" / "x").read_text() == "mine"


def test_recover_keeps_every_entry_of_the_log_and_leaves_this_node_alone(tmp_path: Path) -> None:
    store = _filled(tmp_path / "n1", 20)
    # Entries the lost majority never confirmed: appended, not committed, not applied.
    tail = [entry_at(5, i, term=3) for i in range(22, 30)]
    store.persist_ready(HardState(3, "n2", 21), tail)
    close_store(store)
    expected = open_store(tmp_path / "copy")
    expected.bootstrap(VOTERS)
    everything = [entry_at(5, i, term=2) for i in range(2, 22)] + tail
    expected.persist_ready(HardState(3, "n2", 29), everything)
    expected.apply(everything)
    meta, cid = recover_data_dir(tmp_path / "n1")
    assert (meta.index, meta.term, meta.conf_state) == (29, 3, ConfState(("n1",)))
    assert read_node_id(tmp_path / "n1") == "n1"
    recovered = open_store(tmp_path / "n1")
    assert recovered.cluster_id == cid
    assert recovered.log.initial_state() == (HardState(3, "", 29), ConfState(("n1",)))
    # Everything the log held is applied: the state is the one that applying all of
    # it gives, but for the membership.
    assert _pairs(recovered) == _pairs(expected)
    assert queries.conf_state(expected.view()) == ConfState(VOTERS)


def _pairs(store: NodeStore) -> dict[bytes, bytes]:
    pairs = dict(store.view().iter_range(b"", b"\xff\xff\xff\xff"))
    del pairs[CONF]
    return pairs


def test_restore_takes_a_freshly_formatted_volume(tmp_path: Path) -> None:
    """A volume's lost+found makes no directory used, for restore as for a node."""
    data = _backup(_filled(tmp_path / "n1", 3))
    (tmp_path / "vol" / "lost+found").mkdir(parents=True)
    restore_data_dir(io.BytesIO(data), tmp_path / "vol", "n1", VOTERS)
    assert open_store(tmp_path / "vol").has_raft_state()


def test_a_source_that_cannot_read_its_checkpoint_removes_it(tmp_path: Path) -> None:
    store = _filled(tmp_path / "n1", 3)
    path, _ = store.checkpoint_for_backup()
    with pytest.raises(Exception, match="state-nope|column family|Invalid"):
        BackupSource(path, "state-nope", "n1")
    assert not path.exists()
