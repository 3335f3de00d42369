"""Whole Raft clusters in one process, under faults, on a virtual clock.

``python -m scheduled_db.testing.sim --seeds N [--start S] [--nodes K]`` runs N
seeded simulations and prints, as its last line, ``seeds=N violations=V events=E``.
Everything random comes from ``Random(seed)``, and events are ordered by
(virtual time, sequence number), so a failing seed replays exactly.

Each simulated host follows the Ready contract with *asynchronous* persistence:
a Ready is taken, persisted some virtual milliseconds later, and only then are its
messages sent, except a leader's appends and heartbeats (``Ready.early``), which
leave when the Ready is taken, as the node's RaftActor sends them.  A crash in
between loses that Ready, as a real crash would.

Every node also applies its committed entries to the real job state machine, and
the client asks for triggered runs of a few jobs, which the leader claims, delivers
and records as the scheduler does (:mod:`scheduled_db.testing.sim_jobs`, which says
what is checked of them).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random  # seeded instances only; never the global generator
from typing import Any

from scheduled_db.jobs.model import Attempt
from scheduled_db.raft.core import ConfChangeError, ProposalDropped, Raft, Ready
from scheduled_db.raft.messages import ConfChange, ConfChangeType, EntryType, Message
from scheduled_db.raft.replication import Config, Role
from scheduled_db.raft.storage import MemoryStorage
from scheduled_db.state.commands import encode_command
from scheduled_db.testing import sim_jobs
from scheduled_db.testing.invariants import Checker

ELECTION_TICK = 10
# After all faults heal, a leader must be elected and every pending proposal committed
# within this many ticks of the slowest clock ...
LIVENESS_BOUND_TICKS = 150
# ... and every member must have applied them within this many.
CONVERGENCE_BOUND_TICKS = 400
MAX_TICK_MS = 14
# Each node's clock ticks every MIN_TICK_MS..MAX_TICK_MS: the simulator's bound on
# clock drift.  A leader's lease is measured on its host's clock as a real host does
# (actors/raft/actor.py): it lasts as long as a voter's election timeout on the fastest
# clock allowed, counted from the leader's tick that the quorum acknowledged.
MIN_TICK_MS = 7
LEASE_MS = (ELECTION_TICK - 1) * MIN_TICK_MS - 1


@dataclass(frozen=True)
class Faults:
    """The fault mix of one seed."""

    drop: float
    dup: float
    reorder: float  # chance a message is held back long enough to overtake others
    max_delay_ms: int
    partitions: bool
    crashes: bool
    membership: bool
    transfers: bool
    snapshot_every: int
    snapshot_keep: int

    @staticmethod
    def draw(rng: Random) -> Faults:
        return Faults(
            drop=rng.choice([0.0, 0.01, 0.05, 0.15]),
            dup=rng.choice([0.0, 0.02, 0.1]),
            reorder=rng.choice([0.0, 0.02, 0.1]),
            max_delay_ms=rng.choice([2, 10, 30]),
            partitions=rng.random() < 0.7,
            crashes=rng.random() < 0.7,
            membership=rng.random() < 0.5,
            transfers=rng.random() < 0.5,
            snapshot_every=rng.choice([5, 20, 60, 10_000]),
            snapshot_keep=rng.choice([0, 3, 10]),
        )


@dataclass
class SimNode:
    id: str
    storage: MemoryStorage
    tick_ms: int
    core: Raft | None = None
    up: bool = False
    retired: bool = False
    joined: bool = False
    incarnation: int = 0
    pending: Ready | None = None
    sm_index: int = 0
    sm_hash: bytes = b"\0" * 16
    tick_times: dict[int, int] = field(default_factory=dict)  # core tick -> virtual ms
    paused_until: int = 0  # a stopped process (SIGSTOP): it does nothing until then
    jobs: sim_jobs.NodeJobs = field(default_factory=sim_jobs.NodeJobs)  # its applied state

    def lease_until(self) -> int | None:
        """Until when (virtual ms) this node may act as the leader, or None."""
        stamp = self.core.lease_stamp() if self.core is not None else None
        return None if stamp is None else self.tick_times[stamp] + LEASE_MS


@dataclass
class SimResult:
    seed: int
    nodes: int
    violations: list[str]
    events: int
    lease_events: int  # events after which some leader held a lease (the check had work)
    liveness_ticks: int | None
    converged_ticks: int | None
    runs_asked: int = 0  # triggered runs the state machine accepted
    deliveries: int = 0  # of triggered runs' attempts
    notices: int = 0  # failure notices their outcomes called for (all settled)
    runs_started: int = 0  # occurrences of the allow job started as runs


@dataclass
class _Client:
    """Proposals the simulation expects to see applied once faults heal."""

    markers: dict[bytes, int] = field(default_factory=dict)  # data -> time proposed
    index: dict[bytes, int] = field(default_factory=dict)  # data -> index it was applied at
    counter: int = 0


class Simulation:
    """One seeded run: a fault phase, then healing and a liveness check."""

    def __init__(self, seed: int, nodes: int, fault_ms: int = 2500, check: bool = True) -> None:
        self.seed, self.rng = seed, Random(seed)
        self.faults = Faults.draw(self.rng)
        self.fault_ms = fault_ms
        self.checker = Checker() if check else None
        self.triggers = sim_jobs.TriggerChecker(self._fail)
        self.queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self.seq = self.events = self.now = self.lease_events = 0
        self.blocked: set[tuple[str, str]] = set()
        self.links: dict[tuple[str, str], int] = {}
        self.healing = False
        self.heal_at = 0
        self.liveness_ticks: int | None = None  # heal -> pending proposals committed
        self.converged_ticks: int | None = None  # heal -> applied on every member
        self.client = _Client()
        self.nodes: dict[str, SimNode] = {}
        initial = tuple(f"n{i}" for i in range(1, nodes + 1))
        self.initial = initial
        for nid in initial:
            node = self._new_node(nid)
            node.storage.bootstrap(initial)
            node.joined = True
            self._start(node)
        self.min_voters = max(2, nodes - 1)

    # -- the event loop --

    def at(self, delay: int, fn: Callable[..., None], *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (self.now + delay, self.seq, fn, args))

    def run(self) -> SimResult:
        self.at(0, self._propose_loop)
        self._schedule_faults()
        self.at(self.fault_ms, self._heal)
        bound = self.fault_ms + CONVERGENCE_BOUND_TICKS * MAX_TICK_MS
        try:
            while self.queue and self.converged_ticks is None:
                self.now, _, fn, args = heapq.heappop(self.queue)
                if self.now > bound:
                    self._fail(
                        f"liveness: members not converged (or triggered runs not ended) within"
                        f" {CONVERGENCE_BOUND_TICKS} ticks of healing"
                    )
                    break
                self.events += 1
                fn(*args)
        except Exception as exc:  # a crash of the core is a finding, not a tool failure
            self._fail(f"exception: {type(exc).__name__}: {exc}")
        lead = self._leader()
        if self.converged_ticks is not None and lead is not None:
            self.triggers.final_check(lead.jobs.state)
        violations = self.checker.violations if self.checker else []
        return SimResult(
            self.seed,
            len(self.initial),
            violations,
            self.events,
            self.lease_events,
            self.liveness_ticks,
            self.converged_ticks,
            self.triggers.runs_asked,
            self.triggers.deliveries,
            self.triggers.notices,
            self.triggers.runs_started,
        )

    def _fail(self, what: str) -> None:
        if self.checker is not None:
            self.checker.now = self.now
            self.checker.fail(what)
        else:
            raise AssertionError(what)

    # -- nodes --

    def _new_node(self, nid: str) -> SimNode:
        node = SimNode(nid, MemoryStorage(), self.rng.randint(MIN_TICK_MS, MAX_TICK_MS))
        self.nodes[nid] = node
        return node

    def _start(self, node: SimNode) -> None:
        snap = node.storage.snapshot()
        node.sm_index, node.sm_hash = _restore_state(snap.data, snap.meta.index)
        node.jobs.restore(snap.data[_SM_HEAD:], node.sm_index)
        # Each pair stresses one flow-control edge (1-entry messages, a window of one
        # message) while leaving enough throughput to drain a fault-phase backlog.
        max_entries, max_inflight = self.rng.choice([(1, 32), (4, 8), (64, 2), (4096, 1)])
        cfg = Config(
            node.id,
            election_tick=ELECTION_TICK,
            applied=snap.meta.index,
            max_entries_per_msg=max_entries,
            max_inflight_msgs=max_inflight,
        )
        node.core = Raft(cfg, node.storage, Random(self.rng.random()))
        node.tick_times = {node.core.ticks: self.now}
        node.up, node.pending = True, None
        node.incarnation += 1
        if self.checker:
            self.checker.restarted(node.id)
        self.at(self.rng.randint(0, node.tick_ms), self._tick, node.id, node.incarnation)

    def _crash(self, node: SimNode) -> None:
        node.up, node.core, node.pending = False, None, None

    def _alive(self, nid: str, incarnation: int | None = None) -> SimNode | None:
        node = self.nodes.get(nid)
        if node is None or not node.up or node.retired:
            return None
        if incarnation is not None and node.incarnation != incarnation:
            return None
        return node

    def _tick(self, nid: str, incarnation: int) -> None:
        node = self._alive(nid, incarnation)
        if node is None:
            return
        if self.now < node.paused_until:
            # A stopped process's ticker does not catch up when it resumes: one tick.
            self.at(node.paused_until - self.now, self._tick, nid, incarnation)
            return
        assert node.core is not None
        node.core.tick()
        node.tick_times[node.core.ticks] = self.now
        self._after(node)
        self._schedule_runs(node)
        self.at(node.tick_ms, self._tick, nid, incarnation)

    def _after(self, node: SimNode) -> None:
        core = node.core
        assert core is not None
        if self.checker is not None:
            self.checker.now = self.now
            self.checker.check_node(node.id, core)
            if self.checker.fresh_commits:
                self.checker.check_commits_against(self._leaders())
            self._check_leases()
        if node.pending is None and core.has_ready():
            node.pending = rd = core.ready()
            for m in rd.early:  # a leader's appends leave before its own write
                if self.checker:
                    self.checker.sending(node.id, m, node.storage)
                self._send(m)
            self.at(self.rng.randint(0, 3), self._persist, node.id, node.incarnation)

    def _check_leases(self) -> None:
        assert self.checker is not None
        holders = []
        for n in self.nodes.values():
            until = n.lease_until() if n.up and n.core is not None else None
            if until is not None and self.now < until:
                holders.append((n.id, n.core.term if n.core else 0))
        if holders:
            self.lease_events += 1
            self.checker.check_leases(holders, self._leaders())

    def _leaders(self) -> list[tuple[str, Raft]]:
        return [
            (n.id, n.core)
            for n in self.nodes.values()
            if n.up and n.core is not None and n.core.role is Role.LEADER
        ]

    # -- the host's side of the Ready contract --

    def _persist(self, nid: str, incarnation: int) -> None:
        node = self._alive(nid, incarnation)
        if node is None or node.pending is None:
            return
        if self.now < node.paused_until:
            self.at(node.paused_until - self.now, self._persist, nid, incarnation)
            return
        rd, core, st = node.pending, node.core, node.storage
        assert core is not None
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
            if self.checker:
                self.checker.persisted(nid, rd.hard_state)
        for m in rd.late:
            if self.checker:
                self.checker.sending(nid, m, st)
            self._send(m)
        self._apply(node, rd)
        core.advance()
        node.pending = None
        self._maybe_snapshot(node)
        self._after(node)

    def _apply(self, node: SimNode, rd: Ready) -> None:
        core = node.core
        assert core is not None
        if rd.snapshot is not None:
            node.sm_index, node.sm_hash = _restore_state(rd.snapshot.data, rd.snapshot.meta.index)
            node.jobs.restore(rd.snapshot.data[_SM_HEAD:], node.sm_index)
            if self.checker:
                self.checker.installed(node.id, node.sm_index, node.sm_hash)
        for e in rd.committed_entries:
            if e.index != node.sm_index + 1:
                self._fail(f"{node.id}: applied {e.index} after {node.sm_index}")
            conf = None
            if e.type is EntryType.CONF_CHANGE:
                core.apply_conf_change(ConfChange.decode(e.data))
                conf = core.conf_state()
            applied = node.jobs.apply(e, conf)
            self.triggers.applied(node.id, e, applied)
            # The state's writes are in the hash: replicas that differ in them differ here.
            node.sm_hash = hashlib.blake2b(
                node.sm_hash + e.term.to_bytes(8, "big") + e.data + applied.digest,
                digest_size=16,
            ).digest()
            node.sm_index = e.index
            if e.type is EntryType.CONF_CHANGE:
                pass
            elif e.data in self.client.markers:
                self.client.index.setdefault(e.data, e.index)
            if self.checker:
                self.checker.applying(node.id, e.index, e.term, e.data, node.sm_hash)

    def _maybe_snapshot(self, node: SimNode) -> None:
        st, core = node.storage, node.core
        assert core is not None
        if node.sm_index - st.snapshot().meta.index < self.faults.snapshot_every:
            return
        data = node.sm_index.to_bytes(8, "big") + node.sm_hash + node.jobs.snapshot()
        st.create_snapshot(node.sm_index, core.conf_state(), data)
        cut = node.sm_index - self.faults.snapshot_keep
        if cut > st.first_index() - 1:
            st.compact(cut)

    # -- the network --

    def _latency(self, m: Message) -> int:
        # Each link has its own base latency with a little jitter (as a TCP stream
        # would); the reorder fault holds a message back so later ones overtake it.
        link = (m.frm, m.to)
        if link not in self.links:
            self.links[link] = self.rng.randint(1, self.faults.max_delay_ms)
        delay = self.links[link] + self.rng.randint(0, 2)
        if self.rng.random() < self.faults.reorder:
            delay += self.rng.randint(1, 3 * self.faults.max_delay_ms)
        return delay

    def _send(self, m: Message) -> None:
        if (m.frm, m.to) in self.blocked or self.rng.random() < self.faults.drop:
            return
        self.at(self._latency(m), self._deliver, m)
        if self.rng.random() < self.faults.dup:
            self.at(self._latency(m) + self.rng.randint(0, 20), self._deliver, m)

    def _deliver(self, m: Message) -> None:
        node = self._alive(m.to)
        if node is None or (m.frm, m.to) in self.blocked:
            return
        if self.now < node.paused_until:
            self.at(node.paused_until - self.now, self._deliver, m)  # waits in the socket
            return
        assert node.core is not None
        node.core.step(m)
        self._after(node)
        if node.jobs.fenced:  # an acknowledgement may have renewed the lease: try again
            self._schedule_runs(node)

    # -- clients --

    def _propose_loop(self) -> None:
        if not self.healing:
            ups = [n for n in self.nodes.values() if n.up and not n.retired]
            if ups:
                node = self.rng.choice(ups)
                datas = [self._data() for _ in range(self.rng.randint(1, 5))]
                if self.rng.random() < 0.35:
                    cmd = sim_jobs.client_command(self.rng, self.now, node.jobs.state)
                    data = encode_command(cmd)
                    node.jobs.memo.remember(data, cmd)
                    datas.insert(self.rng.randint(0, len(datas)), data)
                self._try_propose(node, datas)
            self.at(self.rng.randint(3, 40), self._propose_loop)

    # -- the leader's scheduler, for triggered runs --

    def _schedule_runs(self, node: SimNode) -> None:
        core = node.core
        if core is None or core.role is not Role.LEADER or node.jobs.applied_term != core.term:
            return  # only a leader whose leadership is established acts
        if self.now < node.paused_until:
            return
        node.jobs.fenced = False
        sim_jobs.schedule(
            node.jobs,
            node.id,
            core.term,
            self.now,
            lambda data: self._propose_on(node, data),
            lambda a: self._deliver_run(node, a),
            start_runs=not self.healing,
        )

    def _propose_on(self, node: SimNode, data: bytes) -> None:
        """A proposal of the node's own (never forwarded): dropped if it cannot lead."""
        assert node.core is not None
        try:
            node.core.propose_batch([data])
        except ProposalDropped:
            return
        self._after(node)

    def _deliver_run(self, node: SimNode, a: Attempt) -> None:
        """Send one attempt while the lease holds; else it is fenced, and tried again at
        the next tick or message (the WebhookActor tries again after FENCED_RETRY_MS;
        with the simulator's slow links and short lease, a lease may hold only between
        an acknowledgement and the next tick)."""
        until = node.lease_until()
        if until is None or self.now >= until or node.core is None:
            node.jobs.fenced = True
            return
        newest = max((raft.term for _, raft in self._leaders()), default=0)
        self.triggers.delivering(node.id, node.core.term, a, self.now, newest, node.jobs.state)
        node.jobs.sent[(a.job_id, a.scheduled_at_ms, a.attempt_num)] = self.now
        ok = self.rng.random() < 0.7
        self.at(self.rng.randint(1, 30), self._responded, node.id, node.incarnation, a, ok)

    def _responded(self, nid: str, incarnation: int, a: Attempt, ok: bool) -> None:
        node = self._alive(nid, incarnation)
        if node is None or node.core is None:
            return
        if self.now < node.paused_until:
            self.at(node.paused_until - self.now, self._responded, nid, incarnation, a, ok)
            return
        if node.core.role is Role.LEADER and node.core.term == a.term:
            cmd = sim_jobs.outcome(a, ok, self.now, self.rng)
            node.jobs.memo.remember(data := encode_command(cmd), cmd)
            self._propose_on(node, data)

    def _data(self) -> bytes:
        self.client.counter += 1
        return b"p%d" % self.client.counter

    def _try_propose(self, node: SimNode, datas: list[bytes]) -> bool:
        for _ in range(2):  # a follower's NotLeader names the leader: try it once
            assert node.core is not None
            try:
                node.core.propose_batch(datas)
                self._after(node)
                return True
            except ProposalDropped as exc:
                lead = self._alive(getattr(exc, "leader", ""))
                if lead is None:
                    return False
                node = lead
        return False

    # -- faults --

    def _schedule_faults(self) -> None:
        f = self.faults
        if f.crashes:
            self.at(self.rng.randint(100, 600), self._crash_some)
        if f.partitions:
            self.at(self.rng.randint(100, 600), self._partition)
        if f.membership:
            self.at(self.rng.randint(100, 400), self._membership)
        if f.transfers:
            self.at(self.rng.randint(100, 800), self._transfer)

    def _crash_some(self) -> None:
        if self.healing:
            return
        ups = [n for n in self.nodes.values() if n.up and not n.retired]
        lead = self._leader()
        if ups:
            # Half the crashes hit the leader: leader churn is where Raft is subtle.
            node = lead if lead is not None and self.rng.random() < 0.5 else self.rng.choice(ups)
            if self.rng.random() < 0.3:
                # Or a pause (SIGSTOP, a long GC): the node wakes believing what it
                # believed, leadership and lease included, and must not act on them.
                node.paused_until = self.now + self.rng.randint(20, 500)
            else:
                self._crash(node)
                self.at(self.rng.randint(20, 500), self._restart, node.id)
        self.at(self.rng.randint(50, 700), self._crash_some)

    def _restart(self, nid: str) -> None:
        node = self.nodes[nid]
        if not node.up and not node.retired:
            self._start(node)

    def _partition(self) -> None:
        if self.healing:
            return
        ids = sorted(n.id for n in self.nodes.values() if not n.retired)
        side = set(self.rng.sample(ids, self.rng.randint(1, max(1, len(ids) // 2))))
        one_way = self.rng.random() < 0.3
        for a in side:
            for b in ids:
                if b not in side:
                    self.blocked.add((a, b))
                    if not one_way:
                        self.blocked.add((b, a))
        self.at(self.rng.randint(50, 700), self._unpartition)

    def _unpartition(self) -> None:
        self.blocked.clear()
        if not self.healing:
            self.at(self.rng.randint(50, 500), self._partition)

    def _leader(self) -> SimNode | None:
        leaders = [
            n
            for n in self.nodes.values()
            if n.up and not n.retired and n.core is not None and n.core.role is Role.LEADER
        ]
        return max(leaders, key=lambda n: n.core.term if n.core else 0, default=None)

    def _transfer(self) -> None:
        if self.healing:
            return
        lead = self._leader()
        if lead is not None and lead.core is not None:
            voters = [v for v in lead.core.conf_state().voters if v != lead.id]
            if voters:
                try:
                    lead.core.transfer_leadership(self.rng.choice(voters))
                    self._after(lead)
                except (ProposalDropped, ConfChangeError):
                    pass
        self.at(self.rng.randint(100, 900), self._transfer)

    def _membership(self) -> None:
        if self.healing:
            return
        lead = self._leader()
        if lead is not None and lead.core is not None:
            self._retire_removed(lead.core)
            cc = self._next_conf_change(lead.core)
            if cc is not None:
                try:
                    lead.core.propose_conf_change(cc)
                    self._after(lead)
                except (ProposalDropped, ConfChangeError):
                    pass
        self.at(self.rng.randint(100, 500), self._membership)

    def _next_conf_change(self, core: Raft) -> ConfChange | None:
        cs = core.conf_state()
        if core.pending_conf_index > core.log.applied:
            return None
        if cs.learners:
            learner = cs.learners[0]
            if core.prs[learner].match + 5 >= core.log.committed:
                return ConfChange(ConfChangeType.ADD_VOTER, learner)  # caught up: promote
            return None
        roll = self.rng.random()
        if roll < 0.4 and len(self.nodes) < len(self.initial) + 3:
            nid = f"n{len(self.nodes) + 1}"
            self._start(self._new_node(nid))
            return ConfChange(ConfChangeType.ADD_LEARNER, nid)
        if roll < 0.7 and len(cs.voters) > self.min_voters:
            return ConfChange(ConfChangeType.REMOVE, self.rng.choice(cs.voters))
        return None

    def _retire_removed(self, core: Raft) -> None:
        members = set(core.conf_state().members())
        for n in self.nodes.values():
            if n.id in members:
                n.joined = True
            elif n.joined and not n.retired:
                n.retired, n.up, n.core = True, False, None

    # -- healing and liveness --

    def _heal(self) -> None:
        self.healing, self.heal_at = True, self.now
        self.blocked.clear()
        self.faults = Faults(
            0.0,
            0.0,
            0.0,
            self.faults.max_delay_ms,
            False,
            False,
            False,
            False,
            self.faults.snapshot_every,
            self.faults.snapshot_keep,
        )
        for n in self.nodes.values():
            if not n.up and not n.retired:
                self._start(n)
        for _ in range(3):
            self.client.markers[self._data()] = -1
        self.at(0, self._liveness)

    def _liveness(self) -> None:
        lead = self._leader()
        if lead is not None and lead.core is not None:
            self._retire_removed(lead.core)
            retry_ms = 3 * ELECTION_TICK * MAX_TICK_MS
            for data, sent in self.client.markers.items():
                due = sent < 0 or self.now - sent > retry_ms
                if data not in self.client.index and due and self._try_propose(lead, [data]):
                    self.client.markers[data] = self.now
            self._check_progress(lead.core)
            if self.converged_ticks is not None:
                return
        self.at(10, self._liveness)

    def _check_progress(self, core: Raft) -> None:
        if len(self.client.index) < len(self.client.markers):
            return
        lead = self._leader()
        if lead is None or not self.triggers.settled(lead.jobs.state):
            return  # triggered runs still going: not converged yet
        ticks = (self.now - self.heal_at) // MAX_TICK_MS + 1
        if self.liveness_ticks is None:
            self.liveness_ticks = ticks
            if ticks > LIVENESS_BOUND_TICKS:
                self._fail(f"liveness: proposals committed only {ticks} ticks after healing")
        target = max(self.client.index.values())
        members = [self.nodes[m] for m in core.conf_state().members()]
        if all(m.retired or m.sm_index >= target for m in members):
            self.converged_ticks = ticks


_SM_HEAD = 24  # a snapshot's data: index (8 bytes), hash (16), then the job state


def _restore_state(data: bytes, index: int) -> tuple[int, bytes]:
    if not data:  # the bootstrap snapshot: empty state
        return index, b"\0" * 16
    return int.from_bytes(data[:8], "big"), data[8:_SM_HEAD]


def run_seed(seed: int, nodes: int | None = None, fault_ms: int = 2500) -> SimResult:
    """Run one seed (3 or 5 nodes by the seed's parity unless ``nodes`` is given)."""
    k = nodes if nodes is not None else (3 if seed % 2 == 0 else 5)
    return Simulation(seed, k, fault_ms).run()


def _run_args(args: tuple[int, int | None]) -> SimResult:
    return run_seed(*args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scheduled_db.testing.sim", description=__doc__)
    p.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--nodes", type=int, choices=[3, 5], help="cluster size (default: both)")
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: cores)")
    a = p.parse_args(argv)
    work = [(s, a.nodes) for s in range(a.start, a.start + a.seeds)]
    # Worker processes are a concern of this command line, not of the simulation.
    from concurrent.futures import ProcessPoolExecutor

    bad = events = lease_events = runs = deliveries = notices = started = 0
    max_live = max_conv = 0
    with ProcessPoolExecutor(max_workers=a.jobs or None) as pool:
        for i, r in enumerate(pool.map(_run_args, work, chunksize=4), 1):
            events += r.events
            lease_events += r.lease_events
            runs += r.runs_asked
            deliveries += r.deliveries
            notices += r.notices
            started += r.runs_started
            max_live = max(max_live, r.liveness_ticks or 0)
            max_conv = max(max_conv, r.converged_ticks or 0)
            if r.violations:
                bad += len(r.violations)
                print(f"FAIL seed={r.seed} nodes={r.nodes}: {r.violations[0]}", flush=True)
            if i % 500 == 0:
                print(f"... {i}/{len(work)} seeds", file=sys.stderr, flush=True)
    print(
        f"after healing, worst case: proposals committed in {max_live} ticks "
        f"(bound {LIVENESS_BOUND_TICKS}), all members applied in {max_conv} ticks "
        f"(bound {CONVERGENCE_BOUND_TICKS})"
    )
    print(f"leader leases checked against newer leaders after {lease_events} events")
    print(
        f"runs: {runs} triggered, {started} started by the allow job; "
        f"{deliveries} attempts delivered, {notices} failure notices"
    )
    print(f"seeds={len(work)} violations={bad} events={events}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
