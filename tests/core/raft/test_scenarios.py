"""Scenario tests of the pure Raft core, driven through :mod:`tests.core.raft.harness`.

Each test names what it checks in the Raft paper (Ongaro & Ousterhout 2014, "In
Search of an Understandable Consensus Algorithm (Extended Version)", cited as §N)
or in the Raft thesis (Ongaro 2014, "Consensus: Bridging Theory and Practice",
cited as thesis §N).  Every initial member bootstraps from the snapshot at index 1,
term 1, so the first election is for term 2 and the first leader's no-op sits at 2.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from scheduled_db.raft.core import NotLeader, ProposalDropped, Raft
from scheduled_db.raft.messages import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
)
from scheduled_db.raft.replication import Config, Role
from scheduled_db.raft.storage import MemoryStorage
from tests.core.raft.harness import Cluster, Predicate

APP = MessageType.APP
VOTE = MessageType.VOTE


def is_(kind: MessageType, frm: str | None = None, to: str | None = None) -> Predicate:
    """A message predicate: of ``kind``, optionally from ``frm`` and/or to ``to``."""

    def pred(m: Message) -> bool:
        return m.type is kind and frm in (None, m.frm) and to in (None, m.to)

    return pred


def carries_term(term: int) -> Predicate:
    """Matches APP messages carrying an entry of ``term``."""
    return lambda m: m.type is APP and any(e.term == term for e in m.entries)


def entry_at(c: Cluster, nid: str, index: int) -> Entry | None:
    return next((e for e in c.log(nid) if e.index == index), None)


def logs_match(c: Cluster, ids: Iterable[str]) -> bool:
    logs = [[(e.index, e.term, e.data) for e in c.log(n)] for n in ids]
    return all(log == logs[0] for log in logs)


# -- leader election (§5.2) --


def test_campaign_elects_one_leader_that_followers_learn() -> None:
    """§5.2: a candidate with votes from a majority becomes leader of its new term;
    its AppendEntries make the others followers that know it, all in one term."""
    c = Cluster("abcde")
    c.elect("c")
    assert [n for n in c.nodes if c[n].role is Role.LEADER] == ["c"]
    assert {c[n].term for n in c.nodes} == {2}
    assert {c[n].lead for n in c.nodes} == {"c"}


def test_election_timeout_elects_a_single_leader() -> None:
    """§5.2: with no leader, randomized election timeouts make one follower time out
    first and win; the others learn it, and every term has at most one leader."""
    c = Cluster("abcde", seed=7)
    ticks = c.tick_until(lambda: c.leader() is not None)
    assert ticks < 2 * c.config["election_tick"] + 2
    lead = c.leader()
    c.tick(n=30)  # heartbeats keep it in power
    assert c.leader() == lead
    assert [n for n in c.nodes if c[n].role is Role.LEADER] == [lead]
    assert {c[n].lead for n in c.nodes} == {lead}
    assert len({c[n].term for n in c.nodes}) == 1


def test_split_vote_elects_nobody_and_a_later_timeout_resolves_it() -> None:
    """§5.2: two candidates of one term splitting the votes both lose that term;
    randomized election timeouts then let one of them (or another node) win later."""
    c = Cluster("abcd", pre_vote=False)
    c.campaign("a")
    c.campaign("b")
    assert c["a"].term == c["b"].term == 2
    crosswise = {("a", "c"), ("b", "d"), ("a", "b"), ("b", "a")}
    c.deliver(lambda m: m.type is VOTE and (m.frm, m.to) in crosswise)
    c.deliver_all()  # a's request to d and b's to c are refused: each has 2 of 4 votes
    assert c.leader() is None
    assert {c[n].term for n in c.nodes} == {2}
    assert {c[n].vote for n in c.nodes} == {"a", "b"}

    c.tick_until(lambda: c.leader() is not None)
    lead = c.leader()
    assert lead is not None and c[lead].term > 2
    assert [n for n in c.nodes if c[n].role is Role.LEADER] == [lead]


# -- vote rules (§5.2, §5.4.1) --


def test_one_vote_per_term() -> None:
    """§5.2: each server votes for at most one candidate in a term, first come first
    served; a second candidate of the same term is refused."""
    c = Cluster("abc", pre_vote=False, check_quorum=False)
    c.campaign("a")
    c.deliver(is_(VOTE, "a", "c"))
    assert c["c"].vote == "a"
    c.campaign("b")
    assert c["b"].term == 2
    c.deliver(is_(VOTE, "b", "c"))
    (resp,) = [m for m in c.sent if m.frm == "c" and m.to == "b"]
    assert resp.type is MessageType.VOTE_RESP and resp.reject and resp.term == 2
    assert c["c"].vote == "a"


def test_vote_refused_to_a_candidate_with_a_less_up_to_date_log() -> None:
    """§5.4.1: a voter denies its vote if its own log is more up to date than the
    candidate's (by last term, then by length)."""
    c = Cluster("abc", pre_vote=False, check_quorum=False)
    c.elect("a")
    c.drop(is_(APP, "a", "c"))
    c.propose("a", b"x")
    c.deliver_all()
    assert c.applied("b") == [b"x"] and c.log("c")[-1].index < c.log("b")[-1].index
    c.heal()
    c.campaign("c")
    c.deliver_all()
    refusals = [m for m in c.sent if m.type is MessageType.VOTE_RESP and m.to == "c"]
    assert {m.frm for m in refusals} == {"a", "b"} and all(m.reject for m in refusals)
    assert c["c"].role is Role.FOLLOWER and c["c"].term == 3
    assert c.leader() is None  # a stepped down to term 3 but nobody won it yet


def test_vote_survives_crash_and_restart() -> None:
    """§5.2 / Figure 2 (persistent state): votedFor is durable before the vote is
    sent, so a voter that crashes and restarts cannot vote twice in one term."""
    c = Cluster("abc", pre_vote=False, check_quorum=False)
    c.campaign("a")
    c.deliver(is_(VOTE, "a", "c"))
    assert c.nodes["c"].storage.hard_state == HardState(2, "a", 1)
    c.crash("c")
    c.restart("c")
    assert (c["c"].term, c["c"].vote) == (2, "a")
    c.campaign("b")
    c.deliver(is_(VOTE, "b", "c"))
    (resp,) = [m for m in c.sent if m.frm == "c" and m.to == "b"]
    assert resp.type is MessageType.VOTE_RESP and resp.reject


# -- crashes (§5.5) --


def test_restarted_nodes_recover_their_state_from_storage() -> None:
    """§5.5 and Figure 2 (persistent state): a server that restarts keeps its term,
    vote and log, re-applies what was committed (from its snapshot on), and the
    cluster goes on with the same history."""
    c = Cluster("abc")
    c.elect("a")
    for i in range(4):
        c.propose("a", b"x%d" % i)
    c.deliver_all()
    c.compact("b")
    c.propose("a", b"y")
    c.deliver_all()
    before = {n: (c[n].term, c[n].vote, c.log(n)) for n in c.nodes}
    for n in c.nodes:
        c.crash(n)
        c.restart(n)
        assert (c[n].term, c[n].vote, c.log(n)) == before[n]
    c.flush()
    assert all(c.applied(n) == [b"x0", b"x1", b"x2", b"x3", b"y"] for n in c.nodes)
    c.tick_until(lambda: c.leader() is not None)
    c.propose(c.leader(), b"z")
    c.deliver_all()
    assert all(c.applied(n)[-2:] == [b"y", b"z"] for n in c.nodes)


def test_duplicated_append_entries_are_harmless() -> None:
    """§5.5: Raft RPCs are idempotent; a follower that receives entries it already
    has ignores them, and a repeated acknowledgement changes nothing."""
    c = Cluster("abc")
    c.elect("a")
    mark = len(c.delivered)
    for i in range(3):
        c.propose("a", b"x%d" % i)
    c.deliver_all()
    c.queue.extend(c.delivered[mark:])  # every append and every answer, once more
    c.deliver_all()
    assert logs_match(c, "abc")
    assert all(c.applied(n) == [b"x0", b"x1", b"x2"] for n in c.nodes)


# -- a stale leader (§5.1, thesis §6.2) --


def test_isolated_leader_steps_down_and_its_uncommitted_entries_are_overwritten() -> None:
    """§5.1 and thesis §6.2 (CheckQuorum): a leader cut off from a majority steps down
    an election timeout after it last heard from a majority (checked every tick, so
    no later), commits nothing while isolated, and after the partition heals follows
    the newer term, which replaces its uncommitted entries (§5.3)."""
    c = Cluster("abcde")
    c.elect("a")
    c.isolate("a")
    stale = c.propose("a", b"stale")
    assert c.log("a")[-1] == stale
    et = c.config["election_tick"]
    for _ in range(et - 1):
        c.tick("a")
        assert c["a"].role is Role.LEADER  # heard from a majority less than et ago
    c.tick("a")
    assert c["a"].role is Role.FOLLOWER and c["a"].term == 2
    assert c["a"].log.committed < stale.index
    with pytest.raises(NotLeader):
        c.propose("a", b"refused")

    c.tick_until(lambda: c.leader() not in (None, "a"))
    new = c.leader()
    assert new is not None and c[new].term > 2
    c.propose(new, b"fresh")
    c.heal()
    c.tick(n=3)
    assert c["a"].term == c[new].term and c["a"].lead == new
    assert logs_match(c, "abcde")
    assert all(c.applied(n) == [b"fresh"] for n in c.nodes)
    assert all(e.data != b"stale" for e in c.log("a"))


# -- log repair (§5.3) --


def diverge(c: Cluster, old: int, new: int) -> None:
    """Leader a (term 2) gives ``old`` entries to b only while c (term 3, with d and e)
    commits ``new`` entries that e misses the last few of; then everything heals."""
    c.elect("a")
    c.propose("a", b"base")
    c.deliver_all()
    c.partition("ab", "cde")
    for i in range(old):
        c.propose("a", b"old%d" % i)
    c.deliver_all()
    c.elect("c")
    for i in range(new):
        if i == new - 3:
            c.drop(is_(APP, "c", "e"))
        c.propose("c", b"new%d" % i)
    c.deliver_all()
    c.heal()


def test_followers_with_extra_or_missing_entries_converge_to_the_leaders_log() -> None:
    """§5.3 (Figure 7): the leader forces followers' logs to duplicate its own;
    conflicting uncommitted entries from an older term are overwritten and missing
    entries are filled in, until every log equals the leader's."""
    c = Cluster("abcde", pre_vote=False, check_quorum=False)
    diverge(c, old=5, new=6)
    assert len(c.log("b")) == len(c.log("a")) and not logs_match(c, "abc")
    assert len(c.log("e")) < len(c.log("d"))
    c.elect("d")
    c.tick(n=2)
    assert logs_match(c, "abcde")
    expected = [b"base"] + [b"new%d" % i for i in range(6)]
    assert all(c.applied(n) == expected for n in c.nodes)


def test_fast_backtracking_needs_few_round_trips_for_a_long_divergent_tail() -> None:
    """§5.3 (the optimization at the end): a rejection carries the conflicting term,
    so the leader skips a whole term per round trip instead of one entry."""
    c = Cluster("abcde", pre_vote=False, check_quorum=False)
    diverge(c, old=50, new=50)
    mark = len(c.sent)
    c.elect("d")  # d's nextIndex for b starts past the end of b's 50-entry tail (term 2)
    assert logs_match(c, "abcde")
    apps = [m for m in c.sent[mark:] if m.type is APP and m.to == "b"]
    rejections = [m for m in c.sent[mark:] if m.frm == "b" and m.reject]
    assert len(rejections) == 1
    assert len(apps) <= 4  # probe, the repair, then commit updates; not 50 probes


# -- Figure 8: committing entries from previous terms (§5.4.2) --


def figure8_until_c() -> tuple[Cluster, int]:
    """Figure 8 (a)-(c) with s1..s5; one entry per AppendEntries so replication of the
    old entry and of the new leader's no-op can be separated.  Returns (cluster, index
    of the term-2 entry)."""
    servers = ["s1", "s2", "s3", "s4", "s5"]
    c = Cluster(servers, pre_vote=False, check_quorum=False, max_entries_per_msg=1)
    # (a) s1 leads term 2 and replicates its entry only to s2.
    c.elect("s1")
    c.drop(lambda m: m.type is APP and m.to not in ("s1", "s2"))
    x = c.propose("s1", b"x")
    c.deliver_all()
    c.heal()
    # (b) s1 crashes; s5 wins term 3 with s3 and s4, its own entry at x's index stays local.
    c.crash("s1")
    c.drop(is_(APP, "s5"))
    c.elect("s5")
    assert c.log("s5")[-1].index == x.index and c.log("s5")[-1].term == 3
    c.heal()
    # (c) s5 crashes; s1 restarts and wins term 4; x reaches s3 and s4, the no-op nobody.
    c.crash("s5")
    c.restart("s1")
    c.campaign("s1")  # term 3: s3 and s4 already voted for s5
    c.deliver_all()
    # The no-op is lost wherever it could be stored; probes to logs lacking x get through.
    c.drop(lambda m: carries_term(4)(m) and c.nodes[m.to].storage.last_index() >= x.index)
    c.elect("s1")  # term 4
    assert c["s1"].term == 4
    return c, x.index


def test_figure8_old_term_entry_on_a_majority_is_not_committed() -> None:
    """§5.4.2 (Figure 8 c, d): an entry of an older term stored on a majority is not
    committed by counting replicas, and indeed a later leader may overwrite it."""
    c, x = figure8_until_c()
    holders = [n for n in c.alive() if (e := entry_at(c, n, x)) and e.data == b"x"]
    assert len(holders) >= 3  # a majority of five
    assert c["s1"].log.committed < x
    # (d) s1 crashes; s5 (last term 3) wins term 5 and overwrites x everywhere.
    c.crash("s1")
    c.heal()
    c.restart("s5")
    c.campaign("s5")
    c.deliver_all()
    c.elect("s5")
    assert c["s5"].term == 5
    assert logs_match(c, ["s2", "s3", "s4", "s5"])
    assert all(e.data != b"x" for e in c.log("s2"))
    assert not any(b"x" in c.applied(n) for n in c.nodes)


def test_figure8_entry_of_the_current_term_commits_older_ones_for_good() -> None:
    """§5.4.2 (Figure 8 e): once the leader replicates an entry of its own term on a
    majority, it and every entry before it are committed; no later leader lacks them."""
    c, x = figure8_until_c()
    c.heal()
    c.tick("s1", deliver=False)  # a heartbeat; the answers let the no-op through
    c.deliver(lambda m: m.to != "s4")
    c.drop(lambda m: m.to == "s4" or m.frm == "s4")
    c.deliver_all()
    assert c["s1"].log.committed == x + 1
    assert c.applied("s1") == [b"x"]
    # s1 crashes; s5 (last term 3) cannot win against logs ending in term 4.
    c.crash("s1")
    c.heal()
    c.restart("s5")
    for _ in range(3):
        c.campaign("s5")
        c.deliver_all()
    assert c["s5"].role is not Role.LEADER
    c.elect("s2")
    c.tick(n=2)
    assert entry_at(c, "s5", x) == entry_at(c, "s2", x) and c.applied("s5") == [b"x"]
    assert all(c.applied(n) == [b"x"] for n in ("s2", "s3", "s4", "s5"))


# -- the no-op on election (§5.4.2, thesis §6.4) --


def test_new_leader_commits_earlier_entries_through_its_no_op() -> None:
    """§5.4.2 / thesis §6.4: a new leader appends an empty entry of its term at once;
    earlier entries it holds become committed when that entry is."""
    c = Cluster("abc", pre_vote=False, check_quorum=False)
    c.elect("a")
    c.drop(is_(MessageType.APP_RESP, to="a"))  # b and c store x, a never learns it
    x = c.propose("a", b"x")
    c.deliver_all()
    assert all(c.log(n)[-1] == x for n in c.nodes)
    assert all(c[n].log.committed < x.index for n in c.nodes)
    c.heal()
    c.crash("a")
    c.campaign("b")
    c.deliver(is_(VOTE))
    c.deliver(is_(MessageType.VOTE_RESP))
    assert c["b"].role is Role.LEADER
    noop = c.log("b")[-1]
    assert (noop.index, noop.term, noop.type, noop.data) == (x.index + 1, 3, EntryType.NORMAL, b"")
    assert c["b"].log.committed < x.index  # x is of term 2: not committed by itself
    c.deliver_all()
    assert c["b"].log.committed == noop.index
    assert c.applied("b") == c.applied("c") == [b"x"]


# -- Pre-Vote (thesis §9.6) and the CheckQuorum lease (thesis §4.2.3, §6.2) --


@pytest.mark.parametrize("pre_vote, disrupted", [(True, False), (False, True)])
def test_rejoining_partitioned_node_disrupts_only_without_pre_vote(
    pre_vote: bool, disrupted: bool
) -> None:
    """Thesis §9.6: with Pre-Vote a node that was partitioned away does not raise its
    term while it cannot win, so on rejoining it leaves a healthy leader alone.
    Without Pre-Vote it comes back with a higher term that deposes the leader."""
    c = Cluster("abc", pre_vote=pre_vote)
    c.elect("a")
    c.isolate("c")
    c.tick(n=5 * c.config["election_tick"])
    assert c["c"].role is not Role.LEADER
    assert (c["c"].term > 2) == disrupted
    c.heal()
    c.tick(n=3)
    assert (c.leader() != "a" or c["a"].term > 2) == disrupted
    if not disrupted:
        assert {c[n].term for n in c.nodes} == {2} and c["c"].lead == "a"


def test_followers_within_the_leader_lease_ignore_higher_term_vote_requests() -> None:
    """Thesis §4.2.3 (and §6.2 with CheckQuorum): a server that heard from a current
    leader within the minimum election timeout neither grants a vote nor adopts the
    requester's term; once that timeout passes without the leader, it does."""
    c = Cluster("abc", pre_vote=False)
    c.elect("a")
    c.tick(n=3)
    mark = len(c.sent)
    c.campaign("c")  # term 3, while b hears from a every tick
    c.deliver(is_(VOTE, "c"))
    assert (c["b"].term, c["b"].vote, c["b"].lead) == (2, "a", "a")
    assert c["a"].role is Role.LEADER and c["a"].term == 2
    assert [m.type for m in c.sent[mark:]] == [VOTE, VOTE]  # no answers at all

    c.isolate("a")
    c.tick("b", n=c.config["election_tick"])  # the lease runs out
    c.campaign("c")
    c.deliver(is_(VOTE, "c", "b"))
    assert (c["b"].term, c["b"].vote) == (4, "c")


# -- the leader lease (thesis §6.4.1), which fences a deposed leader's deliveries --


def test_leader_lease_follows_the_newest_tick_a_quorum_acknowledged() -> None:
    """The lease stamp is the newest of the leader's ticks whose message a majority
    answered: none before any answer in the term, renewed by each heartbeat round,
    and it stops moving when the quorum stops answering."""
    c = Cluster("abc")
    c.campaign("a")
    assert c["a"].lease_stamp() is None  # not the leader yet
    c.deliver_all()
    first = c["a"].lease_stamp()
    assert first is not None
    c.tick(n=3)
    renewed = c["a"].lease_stamp()
    assert renewed is not None and renewed == c["a"].ticks > first
    c.isolate("a")
    c.tick("a", n=4)
    assert c["a"].role is Role.LEADER and c["a"].lease_stamp() == renewed


def test_a_new_leader_is_elected_only_after_the_old_leaders_lease_ran_out() -> None:
    """On clocks of one rate, the voters that acknowledged the old leader refuse
    every election until at least election_tick - 1 ticks after the stamp they
    acknowledged: by then the old leader (still leading, cut off) counts its lease
    as over."""
    c = Cluster("abc")
    c.elect("a")
    c.tick(n=2)
    c.isolate("a")
    c.tick_until(lambda: c.leader() not in (None, "a"))
    old = c["a"]
    assert old.role is Role.LEADER or old.lease_stamp() is None
    stamp = old.lease_stamp()
    if stamp is not None:
        assert old.ticks - stamp >= c.config["election_tick"] - 1


def test_restarted_voter_ignores_vote_requests_for_an_election_timeout() -> None:
    """A voter that may have acknowledged the leader just before it went down comes
    back granting no vote for an election timeout, since that leader's lease counts
    on the acknowledgement; a node still in the bootstrap term grants at once."""
    c = Cluster("abc", pre_vote=False)
    c.elect("a")
    c.partition({"a"}, {"b", "c"})
    c.crash("b")
    c.restart("b")
    c.campaign("c")
    c.deliver_all()
    assert c["c"].role is not Role.LEADER and c["b"].term == 2  # not even its term
    c.tick("b", n=c.config["election_tick"])
    c.campaign("c")
    c.deliver_all()
    assert c["c"].role is Role.LEADER


# -- leadership transfer (thesis §3.10) --


def test_transfer_to_an_up_to_date_follower_takes_effect_without_waiting() -> None:
    """Thesis §3.10: the leader sends TimeoutNow to an up-to-date target, which starts
    an election at once (no election timeout) and wins the next term."""
    c = Cluster("abc")
    c.elect("a")
    c.propose("a", b"x")
    c.deliver_all()
    c["a"].transfer_leadership("b")
    c.flush("a")
    assert [m.type for m in c.queue] == [MessageType.TIMEOUT_NOW]
    c.deliver_all()  # no tick at all
    assert c.leader() == "b" and c["b"].term == 3
    assert {c[n].lead for n in c.nodes} == {"b"}
    assert c["a"].role is Role.FOLLOWER


def test_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    """Thesis §3.10: if the target lacks entries, the leader first replicates them,
    and only sends TimeoutNow once the target's log matches its own."""
    c = Cluster("abc")
    c.elect("a")
    c.drop(is_(APP, "a", "c"))
    for i in range(3):
        c.propose("a", b"x%d" % i)
    c.deliver_all()
    c.heal()
    mark = len(c.sent)
    c["a"].transfer_leadership("c")
    c.flush("a")
    c.deliver_all()
    to_c = [m for m in c.sent[mark:] if m.frm == "a" and m.to == "c" and m.term == 2]
    assert to_c[0].type is APP and to_c[-1].type is MessageType.TIMEOUT_NOW
    caught_up = [e.data for m in to_c[:-1] for e in m.entries]
    assert caught_up == [b"x0", b"x1", b"x2"]
    assert c.leader() == "c" and c["c"].term == 3
    assert c.applied("c")[:3] == [b"x0", b"x1", b"x2"]


def test_proposals_are_dropped_during_a_transfer() -> None:
    """Thesis §3.10: the leader stops accepting client requests while a transfer is
    in progress (they would likely be lost with the change of leader)."""
    c = Cluster("abc")
    c.elect("a")
    c.isolate("c")
    c["a"].transfer_leadership("c")
    with pytest.raises(ProposalDropped) as err:
        c.propose("a", b"x")
    assert not isinstance(err.value, NotLeader)


def test_transfer_that_cannot_finish_is_aborted_after_an_election_timeout() -> None:
    """Thesis §3.10: if the transfer does not complete within an election timeout,
    the leader aborts it and resumes accepting client requests."""
    c = Cluster("abc")
    c.elect("a")
    c.isolate("c")
    c.propose("a", b"before")  # c lags behind, so TIMEOUT_NOW is never sent
    c.deliver_all()
    c["a"].transfer_leadership("c")
    et = c.config["election_tick"]
    c.tick(["a", "b"], n=et - 1)
    assert c["a"].status().lead_transferee == "c"
    c.tick(["a", "b"])
    assert c["a"].status().lead_transferee == ""
    assert c["a"].role is Role.LEADER and c["a"].term == 2
    assert c["a"].lease_stamp() is not None
    c.propose("a", b"after")
    c.deliver_all()
    assert c.applied("b") == [b"before", b"after"]


def test_leader_whose_timeout_now_went_out_steps_down_when_the_transfer_times_out() -> None:
    """A TIMEOUT_NOW in the network can still make its target campaign, and voters
    grant a transfer's votes inside their lease: the leader gives up its lease when
    it sends one, and a transfer that then does not finish ends its leadership."""
    c = Cluster("abc")
    c.elect("a")
    assert c["a"].lease_stamp() is not None
    c.isolate("c")
    c["a"].transfer_leadership("c")  # c is up to date: TIMEOUT_NOW goes out (and is lost)
    assert c["a"].lease_stamp() is None
    c.tick(["a", "b"], n=c.config["election_tick"])
    assert c["a"].role is Role.FOLLOWER


# -- snapshots (§7) --


def test_lagging_follower_installs_the_leaders_snapshot_and_continues() -> None:
    """§7: once the leader has discarded entries a follower still needs, it sends
    InstallSnapshot; the follower replaces its state with the snapshot and then
    replicates normally from the snapshot's index on."""
    c = Cluster("abc")
    c.elect("a")
    c.propose("a", b"before")
    c.deliver_all()
    c.isolate("c")
    for i in range(10):
        c.propose("a", b"x%d" % i)
    c.deliver_all()
    snap = c.compact("a")
    assert c["a"].log.first_index() == snap.meta.index + 1
    c.heal()
    c.tick(n=2)
    snaps = [m for m in c.sent if m.type is MessageType.SNAP]
    assert [(m.to, m.snapshot) for m in snaps] == [("c", snap)]
    assert any(rd.snapshot == snap for rd in c.nodes["c"].readies)
    assert c.nodes["c"].storage.snapshot() == snap
    c.propose("a", b"after")
    c.deliver_all()
    assert (
        c.applied("c")
        == c.applied("a")
        == [b"before"] + [b"x%d" % i for i in range(10)] + [b"after"]
    )
    assert logs_match(c, "ac")


# -- membership changes (thesis §4.1) --


def change(kind: ConfChangeType, node: str) -> ConfChange:
    return ConfChange(kind, node)


def test_learner_replicates_but_neither_votes_nor_counts_for_commit() -> None:
    """Thesis §4.2.1 / §4.1: a new server joins as a non-voting member (learner): it
    receives the log but its match does not count towards commitment and it never
    campaigns."""
    c = Cluster("abc")
    c.elect("a")
    c.add_node("d")
    c.propose_conf_change("a", change(ConfChangeType.ADD_LEARNER, "d"))
    c.deliver_all()
    c.tick(n=2)
    assert c["d"].conf_state().learners == ("d",) and c["d"].lead == "a"
    c.partition("ad", "bc")
    x = c.propose("a", b"x")
    c.deliver_all()
    assert c.log("d")[-1] == x
    assert c["a"].log.committed < x.index  # a and the learner are no majority of a, b, c
    mark = len(c.sent)
    c.campaign("d")
    c.tick("d", n=5 * c.config["election_tick"])
    assert c["d"].role is Role.FOLLOWER
    assert not [m for m in c.sent[mark:] if m.type in (VOTE, MessageType.PRE_VOTE)]


def test_promoted_learner_counts_for_commit() -> None:
    """Thesis §4.1: promoting a caught-up learner makes it a voter whose log counts
    towards a majority of the new configuration."""
    c = Cluster("abc")
    c.elect("a")
    c.add_node("d")
    c.propose_conf_change("a", change(ConfChangeType.ADD_LEARNER, "d"))
    c.deliver_all()
    c.tick()
    c.propose_conf_change("a", change(ConfChangeType.ADD_VOTER, "d"))
    c.deliver_all()
    assert all(c[n].conf_state().voters == ("a", "b", "c", "d") for n in c.nodes)
    c.isolate("b")
    c.drop(is_(APP, "a", "d"))
    y = c.propose("a", b"y")
    c.deliver_all()
    assert c["a"].log.committed < y.index  # a and c are 2 of 4
    c.heal()
    c.isolate("b")
    c.tick("a")
    assert c["a"].log.committed >= y.index  # a, c and d are 3 of 4


def test_removed_voter_stops_campaigning() -> None:
    """Thesis §4.1 (and §4.2.3): a server removed from the configuration no longer
    takes part; once it applied its removal it never starts an election."""
    c = Cluster("abc")
    c.elect("a")
    c.propose_conf_change("a", change(ConfChangeType.REMOVE, "c"))
    c.deliver_all()
    assert all(c[n].conf_state().voters == ("a", "b") for n in c.nodes)
    mark = len(c.sent)
    c.tick(n=5 * c.config["election_tick"])
    c.campaign("c")
    assert not [m for m in c.sent[mark:] if m.frm == "c"]
    assert c["c"].role is Role.FOLLOWER
    c.propose("a", b"x")
    c.deliver_all()
    assert c.applied("b") == [b"x"] and c.applied("c") == []


def test_leader_removing_itself_steps_down() -> None:
    """Thesis §4.2.2: a leader removed from the configuration steps down once the
    change is committed; the remaining servers elect a leader among themselves."""
    c = Cluster("abc")
    c.elect("a")
    c.propose_conf_change("a", change(ConfChangeType.REMOVE, "a"))
    c.deliver_all()
    assert c["a"].role is Role.FOLLOWER
    assert c["b"].conf_state().voters == c["c"].conf_state().voters == ("b", "c")
    c.tick_until(lambda: c.leader() in ("b", "c"))
    c.tick(n=3 * c.config["election_tick"])
    assert c["a"].role is Role.FOLLOWER and c.leader() in ("b", "c")


def test_at_most_one_uncommitted_conf_change() -> None:
    """Thesis §4.1: a leader does not start a configuration change until the previous
    one is committed (here: applied), so a second proposal is refused."""
    c = Cluster("abc")
    c.elect("a")
    c.add_node("d")
    c.add_node("e")
    c.propose_conf_change("a", change(ConfChangeType.ADD_LEARNER, "d"))
    with pytest.raises(ProposalDropped):
        c.propose_conf_change("a", change(ConfChangeType.ADD_LEARNER, "e"))
    c.deliver_all()
    c.propose_conf_change("a", change(ConfChangeType.ADD_LEARNER, "e"))
    c.deliver_all()
    assert c["a"].conf_state().learners == ("d", "e")


def test_node_with_empty_storage_joins_by_snapshot() -> None:
    """Thesis §4.2.1 with §7 (Chapter 5 of the thesis): a new server starts with an
    empty log and catches up from the leader's snapshot, then from its log."""
    c = Cluster("abc")
    c.elect("a")
    for i in range(5):
        c.propose("a", b"x%d" % i)
    c.deliver_all()
    snap = c.compact("a")
    c.add_node("d")
    c.propose_conf_change("a", change(ConfChangeType.ADD_LEARNER, "d"))
    c.deliver_all()
    c.tick(n=2)
    assert [m.snapshot for m in c.sent if m.type is MessageType.SNAP and m.to == "d"] == [snap]
    c.propose_conf_change("a", change(ConfChangeType.ADD_VOTER, "d"))
    c.propose("a", b"after")
    c.deliver_all()
    assert c.applied("d") == c.applied("a") == [b"x%d" % i for i in range(5)] + [b"after"]
    assert c["d"].conf_state().voters == ("a", "b", "c", "d")
    assert logs_match(c, "ad")


# -- ReadIndex (thesis §6.4) --


def read_states(c: Cluster, nid: str) -> dict[bytes, int]:
    return {rs.context: rs.index for rs in c.nodes[nid].read_states}


def test_leader_read_index_waits_for_a_heartbeat_round() -> None:
    """Thesis §6.4 steps 1-3: the leader records its commit index as the read index,
    and answers only after a heartbeat round confirms it is still the leader."""
    c = Cluster("abc")
    c.elect("a")
    c.propose("a", b"x")
    c.deliver_all()
    c.read_index("a", b"r1")
    assert read_states(c, "a") == {}
    beats = [m for m in c.queue if m.type is MessageType.HEARTBEAT]
    assert len(beats) == 2 and all(m.context == b"r1" for m in beats)
    c.deliver(is_(MessageType.HEARTBEAT))
    assert read_states(c, "a") == {}
    c.deliver_next()  # one acknowledgement: a and b are a majority
    assert read_states(c, "a") == {b"r1": c["a"].log.committed}


def test_follower_read_index_goes_through_the_leader() -> None:
    """Thesis §6.4 (reads served by followers): the follower asks the leader for a
    read index, which the leader confirms by a heartbeat round before answering."""
    c = Cluster("abc")
    c.elect("a")
    c.propose("a", b"x")
    c.deliver_all()
    c.read_index("b", b"r2")
    assert [(m.type, m.to) for m in c.queue] == [(MessageType.READ_INDEX, "a")]
    c.deliver_all()
    assert read_states(c, "b") == {b"r2": c["a"].log.committed}
    assert read_states(c, "a") == {}


def test_isolated_leader_never_answers_new_reads() -> None:
    """Thesis §6.4: a leader cut off from the majority cannot confirm its leadership,
    so it never returns a read index; it steps down instead (§6.2)."""
    c = Cluster("abc")
    c.elect("a")
    c.isolate("a")
    c.read_index("a", b"r3")
    c.tick(n=5 * c.config["election_tick"])
    c.heal()
    c.tick(n=3)
    assert all(read_states(c, n) == {} for n in c.nodes)
    assert c["a"].role is Role.FOLLOWER


def test_new_leader_defers_reads_until_an_entry_of_its_term_commits() -> None:
    """Thesis §6.4 step 1: a new leader does not know the commit index until it has
    committed an entry of its own term, so reads wait for its no-op to commit."""
    c = Cluster("abc")
    c.drop(is_(APP, "b"))
    c.elect("b")
    noop = c.log("b")[-1]
    c.read_index("b", b"r4")
    c.tick("b", n=3)  # heartbeat rounds succeed, but the read is not served
    assert read_states(c, "b") == {}
    c.heal()
    c.tick("b")
    assert c["b"].log.committed == noop.index
    assert read_states(c, "b") == {b"r4": noop.index}


# -- who may propose --


def test_proposing_elsewhere_than_on_the_leader_names_the_leader() -> None:
    """§5.1 / §8: clients talk to the leader; a follower redirects them to the leader
    it knows, and a node that knows none (a candidate, a fresh node) says so."""
    c = Cluster("abc", pre_vote=False)
    with pytest.raises(NotLeader) as err:
        c.propose("a", b"x")
    assert err.value.leader == ""
    c.elect("a")
    with pytest.raises(NotLeader) as err:
        c.propose("b", b"x")
    assert err.value.leader == "a"
    c.isolate("c")
    c.campaign("c")
    assert c["c"].role is Role.CANDIDATE
    with pytest.raises(NotLeader) as err:
        c.propose("c", b"x")
    assert err.value.leader == ""


# -- flow control and batching (thesis §10.2.2) --


def test_pipelining_is_bounded_by_max_inflight_and_max_entries() -> None:
    """Thesis §10.2.2 (pipelining): the leader sends AppendEntries without waiting, but
    never more than max_inflight_msgs unacknowledged ones per follower, each with at
    most max_entries_per_msg entries; the follower still gets everything."""
    c = Cluster("abc", max_entries_per_msg=2, max_inflight_msgs=3)
    c.elect("a")
    for i in range(50):
        c.propose("a", b"x%d" % i)
    acked = c["a"].status().progress["b"].match
    while (m := c.deliver_next()) is not None:
        if m.type is MessageType.APP_RESP and m.frm == "b" and m.to == "a" and not m.reject:
            acked = max(acked, m.index)
        in_flight = [
            s
            for s in c.sent
            if s.type is APP and s.to == "b" and s.entries and s.entries[-1].index > acked
        ]
        assert len(in_flight) <= 3
    assert all(len(m.entries) <= 2 for m in c.sent)
    assert c.applied("b") == [b"x%d" % i for i in range(50)]


def test_proposals_between_two_readies_travel_in_one_message_per_follower() -> None:
    """Thesis §10.2.1 (batching): proposals made before the next Ready share one
    AppendEntries per follower."""
    c = Cluster("abc")
    c.elect("a")
    for i in range(20):
        c["a"].propose(b"x%d" % i)
    c["a"].propose_batch([b"y0", b"y1"])
    mark = len(c.sent)
    c.flush("a")
    apps = [m for m in c.sent[mark:] if m.type is APP]
    assert sorted(m.to for m in apps) == ["b", "c"]
    assert all(len(m.entries) == 22 for m in apps)


# -- the Ready contract (core module docstring; §5.2 Figure 2 "persistent state") --


def bootstrapped(nid: str) -> Raft:
    storage = MemoryStorage()
    storage.bootstrap(("a", "b", "c"))
    return Raft(Config(nid, applied=1), storage, random.Random(0))


def test_vote_is_in_the_hard_state_of_the_ready_that_carries_the_vote() -> None:
    """Figure 2: votedFor must be durable before the vote is granted, so the hard
    state with the vote comes in the same Ready as the response (persist, then send)."""
    r = bootstrapped("b")
    r.step(Message(VOTE, "b", "a", term=2, log_term=1, index=1))
    rd = r.ready()
    assert rd.hard_state == HardState(2, "a", 1) and rd.must_sync
    assert [(m.type, m.to, m.reject) for m in rd.messages] == [(MessageType.VOTE_RESP, "a", False)]


def test_ready_and_advance_must_alternate() -> None:
    """The host contract: advance() acknowledges exactly one Ready taken by ready()."""
    r = bootstrapped("a")
    with pytest.raises(RuntimeError):
        r.advance()
    r.campaign()
    r.ready()
    assert not r.has_ready()
    with pytest.raises(RuntimeError):
        r.ready()
    r.advance()
    with pytest.raises(RuntimeError):
        r.advance()


def test_a_candidate_persists_its_own_vote_before_asking() -> None:
    """Figure 2: currentTerm and votedFor are durable before RequestVote is sent; a
    pre-vote (thesis §9.6) changes neither, so it needs no write."""
    r = bootstrapped("a")
    r.campaign()
    rd = r.ready()
    assert rd.hard_state is None and not rd.must_sync
    assert {m.type for m in rd.messages} == {MessageType.PRE_VOTE}
    assert all(m.term == 2 for m in rd.messages)
    r.advance()
    r.step(Message(MessageType.PRE_VOTE_RESP, "a", "b", term=2))
    rd = r.ready()
    assert rd.hard_state == HardState(2, "a", 1)
    assert {(m.type, m.term) for m in rd.messages} == {(VOTE, 2)}


def test_a_follower_acknowledges_entries_in_the_ready_that_persists_them() -> None:
    """Figure 2 (AppendEntries): a follower's success reply means the entries are on
    its stable storage, so they come in the same Ready (persisted before sending)."""
    r = bootstrapped("b")
    ents = (Entry(2, 2), Entry(2, 3, data=b"x"))
    r.step(Message(APP, "b", "a", term=2, log_term=1, index=1, entries=ents, commit=1))
    rd = r.ready()
    assert rd.entries == ents and rd.hard_state == HardState(2, "", 1)
    assert [(m.type, m.index, m.reject) for m in rd.messages] == [(MessageType.APP_RESP, 3, False)]
