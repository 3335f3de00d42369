"""scheduled_db/raft/formation.py: which voters a cluster listed by address forms with."""

from __future__ import annotations

from scheduled_db.raft.formation import Formation

LISTED = ("h1:7000", "h2:7000", "h3:7000")


def test_no_voters_until_every_listed_address_has_answered() -> None:
    f = Formation("node-2", LISTED, expect=3)
    assert f.voters() is None and f.waiting_for() == LISTED
    f.identified("h1:7000", "node-1")
    f.identified("h2:7000", "node-2")  # itself
    assert f.voters() is None and f.waiting_for() == ("h3:7000",)
    f.identified("h3:7000", "node-3")
    assert f.voters() == ("node-1", "node-2", "node-3") and f.problem() is None


def test_every_node_forms_the_same_voters_whatever_the_order() -> None:
    answers = {"h1:7000": "c", "h2:7000": "a", "h3:7000": "b"}
    seen = set()
    for me, order in (("a", LISTED), ("b", LISTED[::-1]), ("c", LISTED[1:] + LISTED[:1])):
        f = Formation(me, LISTED)
        for address in order:
            f.identified(address, answers[address])
        seen.add(f.voters())
    assert seen == {("a", "b", "c")}


def test_a_node_not_in_the_list_counts_itself() -> None:
    f = Formation("node-4", LISTED, expect=4)
    for n, address in enumerate(LISTED, 1):
        f.identified(address, f"node-{n}")
    assert f.voters() == ("node-1", "node-2", "node-3", "node-4")


def test_a_count_that_differs_from_expect_is_a_problem_not_a_cluster() -> None:
    short = Formation("node-1", LISTED, expect=4)  # listed with itself: 3 nodes
    for n, address in enumerate(LISTED, 1):
        short.identified(address, f"node-{n}")
    assert short.voters() is None
    assert "bootstrap_expect is 4" in str(short.problem())
    over = Formation("node-9", LISTED, expect=2)
    over.identified("h1:7000", "node-1")
    over.identified("h2:7000", "node-2")  # 3 with itself already: never 2
    assert over.problem() is not None and over.voters() is None


def test_two_names_for_one_node_count_once_and_unlisted_addresses_are_ignored() -> None:
    f = Formation("a", ("h1:1", "10.0.0.1:1", "h2:1"), expect=2)
    f.identified("h1:1", "b")
    f.identified("10.0.0.1:1", "b")
    f.identified("elsewhere:1", "z")
    f.identified("h2:1", "a")
    assert f.voters() == ("a", "b")
