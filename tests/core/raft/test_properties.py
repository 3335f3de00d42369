"""Randomized histories on the test network, checked against Raft's safety properties.

A Random that Hypothesis seeds (and reports on failure) chooses which node ticks,
which queued message is delivered, lost or duplicated, who campaigns, proposes,
crashes and restarts; after every step the history must satisfy Election Safety
and State Machine Safety (Ongaro & Ousterhout 2014, Figure 3).
"""

from __future__ import annotations

import contextlib
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduled_db.raft.core import ProposalDropped
from scheduled_db.raft.replication import Role
from tests.core.raft.harness import Cluster

# Weighted by repetition: mostly in-order delivery and ticks, so that leaders get
# elected and entries committed between the faults.
ACTIONS = (
    *["deliver_head"] * 8,
    *["deliver_any"] * 2,
    *["tick"] * 3,
    *["propose"] * 2,
    "drop",
    "dup",
    "campaign",
    "restart",
)
STEPS = 400


def step(c: Cluster, kind: str, n: int, proposals: list[int]) -> None:
    ids = sorted(c.nodes)
    node = ids[n % len(ids)]
    if kind == "tick":
        c.tick(node, deliver=False)
    elif kind == "deliver_head":
        c.deliver_next()
    elif kind == "deliver_any" and c.queue:
        c.deliver_next(n % len(c.queue))
    elif kind == "drop" and c.queue:
        c.queue.pop(n % len(c.queue))
    elif kind == "dup" and c.queue:
        c.queue.append(c.queue[n % len(c.queue)])
    elif kind == "campaign":
        c.campaign(node)
    elif kind == "propose":
        proposals.append(len(proposals))
        with contextlib.suppress(ProposalDropped):  # no leader (yet), or a transfer
            c.propose(c.leader() or node, b"p%d" % proposals[-1])
    elif kind == "restart":
        c.crash(node)
        c.restart(node)


def check(c: Cluster, leaders: dict[int, str]) -> None:
    for nid in c.nodes:
        if c[nid].role is Role.LEADER:
            first = leaders.setdefault(c[nid].term, nid)
            assert first == nid, f"two leaders in term {c[nid].term}: {first} and {nid}"
    states = sorted((c.applied(n) for n in c.nodes), key=len)
    for shorter, longer in zip(states, states[1:], strict=False):
        assert longer[: len(shorter)] == shorter, "state machines diverged"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([3, 5]),
    pre_vote=st.booleans(),
    check_quorum=st.booleans(),
    rnd=st.randoms(use_true_random=True),
)
def test_random_histories_keep_one_leader_per_term_and_one_history(
    size: int, pre_vote: bool, check_quorum: bool, rnd: Random
) -> None:
    """§5.2 Election Safety: at most one leader per term; §5.4.3 State Machine Safety:
    no two servers apply different entries at the same position."""
    c = Cluster("abcde"[:size], election_tick=3, pre_vote=pre_vote, check_quorum=check_quorum)
    leaders: dict[int, str] = {}
    proposals: list[int] = []
    for _ in range(STEPS):
        step(c, rnd.choice(ACTIONS), rnd.randrange(1 << 16), proposals)
        check(c, leaders)
