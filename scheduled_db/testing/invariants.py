"""Raft's safety properties, checked by the simulator after every event.

Each check is incremental (it looks only at what an event could have changed),
so it can run after every single event of thousands of simulations.  Section
numbers refer to the Raft paper (Ongaro & Ousterhout, 2014).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduled_db.raft.core import Raft
from scheduled_db.raft.messages import Entry, HardState, Message, MessageType
from scheduled_db.raft.replication import Role
from scheduled_db.raft.storage import MemoryStorage


@dataclass
class _NodeWatch:
    """What the checker remembers of one node's current incarnation."""

    term: int = 0
    commit: int = 0
    leader_term: int = 0  # term in which we saw it lead, 0 if not leading
    leader_last: int = 0  # its last index when last seen leading


@dataclass
class Checker:
    """Collects violations; a simulation is correct when ``violations`` stays empty."""

    violations: list[str] = field(default_factory=list)
    leaders: dict[int, str] = field(default_factory=dict)  # term -> leader (§5.2)
    entries: dict[tuple[int, int], tuple[bytes, int]] = field(default_factory=dict)
    committed: dict[int, tuple[int, bytes, int]] = field(default_factory=dict)  # i->(t,d,term)
    applied: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    state_hash: dict[int, bytes] = field(default_factory=dict)
    votes: dict[tuple[str, int], str] = field(default_factory=dict)
    durable: dict[str, HardState] = field(default_factory=dict)
    watch: dict[str, _NodeWatch] = field(default_factory=dict)
    fresh_commits: list[Entry] = field(default_factory=list)  # to check against leaders
    now: int = 0

    def fail(self, what: str) -> None:
        self.violations.append(f"t={self.now}ms {what}")

    # -- hooks called by the simulated host --

    def restarted(self, node: str) -> None:
        self.watch[node] = _NodeWatch()

    def persisted(self, node: str, hs: HardState) -> None:
        """Durable term and commit never decrease; one vote per term, across restarts."""
        old = self.durable.get(node, HardState())
        if hs.term < old.term or hs.commit < old.commit:
            self.fail(f"{node}: durable hard state went back from {old} to {hs}")
        if hs.vote:
            prev = self.votes.setdefault((node, hs.term), hs.vote)
            if prev != hs.vote:
                self.fail(f"{node}: voted for {prev} and {hs.vote} in term {hs.term}")
        self.durable[node] = hs

    def sending(self, node: str, m: Message, storage: MemoryStorage) -> None:
        """No message may leave before the state it depends on is durable.

        A vote or acknowledgement made in an older term than the durable one was
        superseded by durable state of a newer term before it left (e.g. entries
        acknowledged, then truncated by a newer leader in the same batch): that is a
        legal Raft history, so only messages of the durable term are held to it.
        """
        hs = storage.hard_state
        if m.type not in (MessageType.PRE_VOTE, MessageType.PRE_VOTE_RESP) and m.term > hs.term:
            self.fail(f"{node}: sent {m.type.name} of term {m.term} with durable term {hs.term}")
        if m.term != hs.term or m.reject:
            return
        if m.type is MessageType.VOTE and hs.vote != node:
            self.fail(f"{node}: asked for votes in term {m.term} before its self-vote was durable")
        if m.type is MessageType.VOTE_RESP and hs.vote != m.to:
            self.fail(f"{node}: granted a vote to {m.to} before it was durable")
        if m.type is MessageType.APP_RESP and m.index > storage.last_index():
            self.fail(f"{node}: acknowledged index {m.index} beyond durable {storage.last_index()}")

    def applying(self, node: str, index: int, term: int, data: bytes, after: bytes) -> None:
        """State Machine Safety (§5.4.3): one entry, and one state, per index."""
        prev = self.applied.setdefault(index, (term, data))
        if prev != (term, data):
            self.fail(f"{node}: applied {(term, data)!r} at {index}, another node {prev!r}")
        self._state(node, index, after)

    def installed(self, node: str, index: int, state: bytes) -> None:
        self._state(node, index, state)

    def _state(self, node: str, index: int, state: bytes) -> None:
        prev = self.state_hash.setdefault(index, state)
        if prev != state:
            self.fail(f"{node}: state at index {index} differs from another node's")

    def check_leases(self, holders: list[tuple[str, int]], leaders: list[tuple[str, Raft]]) -> None:
        """Leader lease (thesis §6.4.1): while a node's lease holds, no other node
        leads a newer term.  ``holders`` are (node, term) of the leases held now."""
        for node, term in holders:
            for other, raft in leaders:
                if other != node and raft.term > term:
                    self.fail(f"{node} holds a lease of term {term}; {other} leads {raft.term}")

    # -- after every event --

    def check_node(self, node: str, raft: Raft) -> None:
        w = self.watch.setdefault(node, _NodeWatch())
        log = raft.log
        if raft.term < w.term:
            self.fail(f"{node}: term went back from {w.term} to {raft.term}")
        if log.committed < w.commit:
            self.fail(f"{node}: commit went back from {w.commit} to {log.committed}")
        if not log.applied <= log.committed <= log.last_index():
            self.fail(
                f"{node}: applied {log.applied} <= commit {log.committed} "
                f"<= last {log.last_index()} does not hold"
            )
        self._check_leader(node, raft, w)
        self._check_log_matching(node, raft)
        self._check_new_commits(node, raft, w)
        w.term, w.commit = raft.term, log.committed

    def _check_leader(self, node: str, raft: Raft, w: _NodeWatch) -> None:
        if raft.role is not Role.LEADER:
            w.leader_term = 0
            return
        other = self.leaders.setdefault(raft.term, node)
        if other != node:
            self.fail(f"two leaders in term {raft.term}: {other} and {node}")  # §5.2
        if w.leader_term == raft.term:
            # Leader Append-Only (§5.3): only appends after what it had.
            if raft.log.dirty_from <= w.leader_last:
                self.fail(f"leader {node} rewrote its log from index {raft.log.dirty_from}")
        else:
            self._check_completeness(node, raft)
        w.leader_term, w.leader_last = raft.term, raft.log.last_index()

    def _check_completeness(self, node: str, raft: Raft) -> None:
        """Leader Completeness (§5.4): a new leader holds every entry committed before."""
        first = raft.log.first_index()
        for index, (term, data, in_term) in self.committed.items():
            if in_term < raft.term and index >= first and not _has(raft, index, term, data):
                self.fail(f"leader {node} of term {raft.term} lacks committed entry {index}")

    def _check_log_matching(self, node: str, raft: Raft) -> None:
        """Log Matching (§5.3): an (index, term) pair fixes the entry and its predecessor."""
        log = raft.log
        lo = max(log.dirty_from, log.first_index())
        if lo <= log.last_index():
            prev_term = log.term_or_zero(lo - 1)
            for e in log.slice(lo, log.last_index() + 1):
                seen = self.entries.setdefault((e.index, e.term), (e.data, prev_term))
                if seen != (e.data, prev_term):
                    self.fail(f"{node}: entry {e.index}/{e.term} differs from another log's")
                prev_term = e.term
        log.dirty_from = log.last_index() + 1

    def _check_new_commits(self, node: str, raft: Raft, w: _NodeWatch) -> None:
        log = raft.log
        if log.committed <= w.commit:
            return
        lo = max(w.commit + 1, log.first_index())
        fresh = log.slice(lo, log.committed + 1) if lo <= log.committed else []
        for e in fresh:
            prev = self.committed.setdefault(e.index, (e.term, e.data, raft.term))
            if prev[:2] != (e.term, e.data):
                self.fail(f"{node}: committed a different entry at {e.index}")
        self.fresh_commits.extend(fresh)

    def check_commits_against(self, leaders: list[tuple[str, Raft]]) -> None:
        """New commits must already be in every leader of a later term."""
        fresh, self.fresh_commits = self.fresh_commits, []
        for e in fresh:
            in_term = self.committed[e.index][2]
            for node, raft in leaders:
                later = raft.term > in_term and e.index >= raft.log.first_index()
                if later and not _has(raft, e.index, e.term, e.data):
                    self.fail(f"leader {node} of term {raft.term} lacks committed {e.index}")


def _has(raft: Raft, index: int, term: int, data: bytes) -> bool:
    if not raft.log.match_term(index, term):
        return False
    return raft.log.slice(index, index + 1)[0].data == data
