"""The durability watermark: its file, its check, and NodeStore keeping it true.

A watermark must never claim more than the durable log holds (no false alarm
after a legitimate rewrite or a crash in the middle of one), and a log that
lost what it claims must stop the store from opening.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from rocksdict import Rdict

from actors.storage import watermark
from actors.storage.datadir import DB_DIR, RAFT_CF, WATERMARK_FILE, DataDirError, open_rocks
from actors.storage.raft_log_store import HARD_STATE, entry_key
from actors.storage.watermark import Mark, Watermark, WatermarkError
from scheduled_db.raft.messages import ConfState, Entry, HardState
from tests.actors.storage.conftest import close_store, open_store
from tests.command_gen import entry_at


def _entries(lo: int, hi: int, term: int) -> list[Entry]:
    return [Entry(term, i, data=b"e%d" % i) for i in range(lo, hi + 1)]


def _tamper(path: Path, fn: Callable[[Rdict], object]) -> None:
    """Change the raft column family behind the store's back (as a damaged log would)."""
    db = open_rocks(path / DB_DIR)
    try:
        fn(db.get_column_family(RAFT_CF))
    finally:
        db.close()


# -- the file ----------------------------------------------------------------------


def test_the_newest_whole_slot_wins_and_a_torn_one_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "wm"
    wm = Watermark(path)
    assert not wm.found and wm.mark == Mark()
    wm.write(Mark(5, 1, 1, "n1", 5))
    wm.write(Mark(9, 2, 2, "n2", 8))
    wm.close()
    assert Watermark(path).mark == Mark(9, 2, 2, "n2", 8)
    with open(path, "r+b") as f:  # tear the slot of the newer mark (sequence 2: slot 0)
        f.seek(10)
        f.write(b"\xff\xff")
    again = Watermark(path)
    assert again.found and again.mark == Mark(5, 1, 1, "n1", 5)
    again.close()


def test_a_file_with_no_whole_slot_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "wm"
    path.write_bytes(b"\x01" * 600)
    with pytest.raises(WatermarkError, match="unreadable"):
        Watermark(path)


# -- the check ---------------------------------------------------------------------


class _Log:
    def __init__(self, hs: HardState, terms: dict[int, int]) -> None:
        self.hs, self.terms = hs, terms

    def hard_state(self) -> HardState:
        return self.hs

    def last_index(self) -> int:
        return max(self.terms)

    def term(self, index: int) -> int:
        return self.terms[index]


@pytest.mark.parametrize(
    ("mark", "problem"),
    [
        (Mark(12, 2, 2, "n1", 10), "log entries 11..12 were made durable but are missing"),
        (Mark(10, 3, 2, "n1", 10), "log entry 10 of term 3 is missing"),
        (Mark(10, 2, 3, "", 10), "the hard state of term 3 is missing"),
        (Mark(10, 2, 2, "n2", 10), "the vote for n2 in term 2 is missing"),
        (Mark(10, 2, 2, "n1", 11), "the commit index 11 is missing"),
        (Mark(10, 0, 2, "n1", 9), None),  # a lowered mark: the term is not compared
        (Mark(8, 1, 2, "n1", 9), None),
    ],
)
def test_the_check_names_what_is_missing(mark: Mark, problem: str | None) -> None:
    log = _Log(HardState(2, "n1", 10), {8: 1, 9: 2, 10: 2})
    found = watermark.check(mark, log)
    assert found == problem if problem is None else found is not None and problem in found


# -- NodeStore keeps it true -------------------------------------------------------


def test_a_new_leader_rewriting_the_tail_is_no_loss(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n")
    store.persist_ready(HardState(1, "n1", 0), _entries(1, 10, 1))
    store.persist_ready(HardState(2, "n2", 0), _entries(6, 8, 2))
    close_store(store)
    again = open_store(tmp_path / "n")
    assert again.log.last_index() == 8 and again.log.term(8) == 2


def test_a_crash_between_lowering_the_mark_and_the_rewrite_is_no_loss(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n")
    store.persist_ready(HardState(1, "n1", 0), _entries(1, 10, 1))

    class Crash(Exception):
        pass

    def crash(*_: object) -> None:
        raise Crash

    real_db = store._db
    store._db = type("Db", (), {"write": staticmethod(crash)})()  # type: ignore[assignment]
    with pytest.raises(Crash):
        store.persist_ready(HardState(2, "n2", 0), _entries(6, 8, 2))
    store._db = real_db
    close_store(store)
    again = open_store(tmp_path / "n")  # the old log, under the lowered mark
    assert again.log.last_index() == 10 and again.log.term(10) == 1


def test_an_installed_snapshot_is_no_loss(tmp_path: Path) -> None:
    leader = open_store(tmp_path / "leader")
    entries = [entry_at(5, i) for i in range(1, 31)]
    leader.persist_ready(HardState(1, "n1", 30), entries)
    leader.apply(entries, ConfState(("n1",)))
    leader.create_snapshot()
    follower = open_store(tmp_path / "follower")
    follower.persist_ready(HardState(1, "n1", 0), _entries(1, 40, 1))
    follower.install_snapshot(list(leader.snapshot_chunks()))
    assert follower.log.last_index() == 30
    close_store(follower)
    assert open_store(tmp_path / "follower").log.last_index() == 30


def test_a_log_that_lost_durable_entries_does_notopen_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n")
    store.persist_ready(HardState(1, "n1", 0), _entries(1, 10, 1))
    close_store(store)
    _tamper(tmp_path / "n", lambda raft: raft.delete_range(entry_key(8), entry_key(11)))
    with pytest.raises(DataDirError, match=r"entries 8\.\.10 were made durable but are missing"):
        open_store(tmp_path / "n")


def test_a_hard_state_that_lost_its_vote_does_notopen_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n")
    store.persist_ready(HardState(3, "n2", 0), _entries(1, 4, 1))
    close_store(store)
    older = bytes(msgpack.packb([3, "", 0]))
    _tamper(tmp_path / "n", lambda raft: raft.put(HARD_STATE, older))
    with pytest.raises(DataDirError, match="the vote for n2 in term 3 is missing"):
        open_store(tmp_path / "n")


def test_removing_the_watermark_accepts_what_is_left(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n")
    store.persist_ready(HardState(1, "n1", 0), _entries(1, 10, 1))
    close_store(store)
    _tamper(tmp_path / "n", lambda raft: raft.delete_range(entry_key(8), entry_key(11)))
    (tmp_path / "n" / WATERMARK_FILE).unlink()
    assert open_store(tmp_path / "n").log.last_index() == 7


def test_a_store_opened_before_watermarks_existed_gets_one(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n")
    store.persist_ready(HardState(1, "n1", 0), _entries(1, 5, 1))
    close_store(store)
    (tmp_path / "n" / WATERMARK_FILE).unlink()
    close_store(open_store(tmp_path / "n"))
    wm = Watermark(tmp_path / "n" / WATERMARK_FILE)
    assert wm.found and wm.mark.last_index == 5
    wm.close()
