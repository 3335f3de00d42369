"""The hot window's slot index: ms order within and across slots, replace, remove."""

import random

from hypothesis import given
from hypothesis import strategies as st

from scheduled_db.firing.slots import SlotIndex


def test_items_fire_in_ms_order_within_and_across_slots() -> None:
    idx: SlotIndex[str] = SlotIndex(10_000)
    for key, at in [("c", 25_001), ("a", 10_005), ("b", 10_004), ("d", 9_999)]:
        idx.add(key, at, key.upper())
    assert idx.next_at() == 9_999
    assert idx.pop_due(10_004) == [(9_999, "D"), (10_004, "B")]
    assert idx.pop_due(10_004) == []
    assert idx.pop_due(30_000) == [(10_005, "A"), (25_001, "C")]
    assert len(idx) == 0 and idx.next_at() is None


def test_adding_a_key_again_replaces_it() -> None:
    idx: SlotIndex[int] = SlotIndex(1_000)
    idx.add("job", 5_000, 1)
    idx.add("job", 1_500, 2)  # rescheduled earlier, into another slot
    assert len(idx) == 1 and idx.get("job") == 2
    assert idx.pop_due(10_000) == [(1_500, 2)]


def test_removed_items_never_fire() -> None:
    idx: SlotIndex[int] = SlotIndex(1_000)
    idx.add("a", 100, 1)
    idx.add("b", 200, 2)
    assert idx.remove("a") == 1
    assert idx.remove("a") is None
    assert "a" not in idx and "b" in idx
    assert idx.pop_due(1_000) == [(200, 2)]


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 100_000), st.booleans()),
        max_size=60,
    ),
    st.integers(1, 20_000),
)
def test_matches_a_plain_dict_model(ops: list[tuple[str, int, bool]], gap: int) -> None:
    idx: SlotIndex[int] = SlotIndex(gap)
    model: dict[str, int] = {}
    for key, at, remove in ops:
        if remove:
            idx.remove(key)
            model.pop(key, None)
        else:
            idx.add(key, at, at)
            model[key] = at
    now = random.Random(len(ops)).randint(0, 100_000)
    due = idx.pop_due(now)
    expected = sorted(at for at in model.values() if at <= now)
    assert [at for at, _ in due] == expected
    assert len(idx) == sum(1 for at in model.values() if at > now)
