"""A deterministic, in-process network of Raft nodes for scenario tests.

Each node is a :class:`Raft` over its own :class:`MemoryStorage`, driven as the
core's module docstring requires: take a Ready, persist its snapshot, hard state
and entries, then queue its messages, then apply, then ``advance()``.  Nothing
happens by itself: messages wait in one FIFO queue until a test delivers them (all,
the head, or only those matching a predicate), and time moves only when a test ticks.

A node's state machine is the list of data of the non-empty NORMAL entries it has
applied; a snapshot carries that list, msgpack-encoded, as its data.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from scheduled_db.raft.core import Raft, Ready
from scheduled_db.raft.messages import ConfChange, Entry, EntryType, Message, ReadState, Snapshot
from scheduled_db.raft.replication import Config, Role
from scheduled_db.raft.storage import MemoryStorage

Predicate = Callable[[Message], bool]


@dataclass
class Node:
    """One simulated host: durable storage, the live core (None while down), its state."""

    id: str
    storage: MemoryStorage
    raft: Raft | None = None
    applied: list[bytes] = field(default_factory=list)
    applied_index: int = 0
    read_states: list[ReadState] = field(default_factory=list)
    readies: list[Ready] = field(default_factory=list)
    incarnation: int = 0


class Cluster:
    """Raft nodes joined by a network the test controls message by message."""

    def __init__(
        self,
        ids: Iterable[str],
        election_tick: int = 10,
        pre_vote: bool = True,
        check_quorum: bool = True,
        seed: int = 0,
        **config: Any,
    ) -> None:
        self.seed = seed
        self.config: dict[str, Any] = dict(
            election_tick=election_tick, pre_vote=pre_vote, check_quorum=check_quorum, **config
        )
        self.nodes: dict[str, Node] = {}
        self.queue: list[Message] = []
        self.sent: list[Message] = []  # everything any node sent, dropped or not
        self.delivered: list[Message] = []  # everything stepped into a live node
        self.cut: set[tuple[str, str]] = set()
        self.filters: list[Predicate] = []
        members = tuple(ids)
        for nid in members:
            storage = MemoryStorage()
            storage.bootstrap(members)
            self.add_node(nid, storage)

    # -- nodes --

    def add_node(self, nid: str, storage: MemoryStorage | None = None) -> Raft:
        """Start ``nid`` (with empty storage unless given: a node about to join)."""
        self.nodes[nid] = Node(nid, storage or MemoryStorage())
        return self.restart(nid)

    def crash(self, nid: str) -> None:
        """Lose the core and everything not yet in the node's storage."""
        self.nodes[nid].raft = None

    def restart(self, nid: str) -> Raft:
        """A fresh core over the node's storage; the state machine restarts at the snapshot."""
        node = self.nodes[nid]
        if node.raft is not None:
            raise RuntimeError(f"{nid} is running: crash it first")
        snap = node.storage.snapshot()
        node.applied, node.applied_index = _decode(snap.data), snap.meta.index
        node.incarnation += 1
        cfg = Config(nid, applied=snap.meta.index, **self.config)
        rng = random.Random(f"{self.seed}/{nid}/{node.incarnation}")
        node.raft = Raft(cfg, node.storage, rng)
        return node.raft

    def __getitem__(self, nid: str) -> Raft:
        raft = self.nodes[nid].raft
        if raft is None:
            raise RuntimeError(f"{nid} is down")
        return raft

    def alive(self) -> list[str]:
        return [nid for nid, node in self.nodes.items() if node.raft is not None]

    # -- the host's side of the Ready contract --

    def flush(self, nid: str | None = None) -> None:
        """Handle every pending Ready of ``nid`` (or of every live node)."""
        for n in [nid] if nid else list(self.nodes):
            node = self.nodes[n]
            while node.raft is not None and node.raft.has_ready():
                self._handle_ready(node, node.raft, node.raft.ready())

    def _handle_ready(self, node: Node, raft: Raft, rd: Ready) -> None:
        node.readies.append(rd)
        if rd.snapshot is not None:
            node.storage.apply_snapshot(rd.snapshot)
        node.storage.append(rd.entries)
        if rd.hard_state is not None:
            node.storage.set_hard_state(rd.hard_state)
        for m in rd.messages:
            self._send(m)
        if rd.snapshot is not None:
            node.applied, node.applied_index = _decode(rd.snapshot.data), rd.snapshot.meta.index
        for e in rd.committed_entries:
            self._apply(node, raft, e)
        node.read_states.extend(rd.read_states)
        raft.advance()

    def _apply(self, node: Node, raft: Raft, e: Entry) -> None:
        if e.index != node.applied_index + 1:
            raise AssertionError(f"{node.id}: applied {e.index} after {node.applied_index}")
        node.applied_index = e.index
        if e.type is EntryType.CONF_CHANGE:
            raft.apply_conf_change(ConfChange.decode(e.data))
        elif e.data:
            node.applied.append(e.data)

    def compact(self, nid: str) -> Snapshot:
        """Snapshot ``nid``'s state machine at its applied index and drop the log before it."""
        node, raft = self.nodes[nid], self[nid]
        data = msgpack.packb(node.applied)
        snap = node.storage.create_snapshot(node.applied_index, raft.conf_state(), data)
        node.storage.compact(node.applied_index)
        return snap

    # -- the network --

    def _blocked(self, m: Message) -> bool:
        return (m.frm, m.to) in self.cut or any(f(m) for f in self.filters)

    def _send(self, m: Message) -> None:
        self.sent.append(m)
        if not self._blocked(m):
            self.queue.append(m)

    def _step(self, m: Message) -> None:
        node = self.nodes.get(m.to)
        if node is None or node.raft is None or self._blocked(m):
            return
        self.delivered.append(m)
        node.raft.step(m)
        self.flush(m.to)

    def deliver_next(self, pos: int = 0) -> Message | None:
        """Deliver the queued message at ``pos`` (the oldest by default), if any."""
        if pos >= len(self.queue):
            return None
        m = self.queue.pop(pos)
        self._step(m)
        return m

    def deliver(self, pred: Predicate) -> int:
        """Deliver the queued messages matching ``pred``; the rest (and replies) stay queued."""
        batch, self.queue = self.queue, []
        rest = [m for m in batch if not pred(m)]
        for m in batch:
            if pred(m):
                self._step(m)
        self.queue = rest + self.queue
        return len(batch) - len(rest)

    def deliver_all(self, limit: int = 100_000) -> int:
        """Deliver until no message is in flight; returns how many were taken off the queue."""
        self.flush()
        steps = 0
        while self.deliver_next() is not None:
            steps += 1
            if steps > limit:
                raise RuntimeError("the network did not quiesce")
        return steps

    def isolate(self, nid: str) -> None:
        self.partition({nid}, set(self.nodes) - {nid})

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between nodes of different groups, both ways."""
        sets = [set(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                self.cut |= {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}

    def drop(self, pred: Predicate) -> None:
        """Lose every message matching ``pred`` from now until :meth:`heal`."""
        self.filters.append(pred)

    def heal(self) -> None:
        self.cut.clear()
        self.filters.clear()

    # -- time and requests --

    def tick(
        self, node: str | Iterable[str] | None = None, n: int = 1, deliver: bool = True
    ) -> None:
        """Tick ``node`` (one, several, or every live node) ``n`` times; deliver after each."""
        targets = [node] if isinstance(node, str) else list(node or self.nodes)
        for _ in range(n):
            for nid in targets:
                if self.nodes[nid].raft is not None:
                    self[nid].tick()
                    self.flush(nid)
            if deliver:
                self.deliver_all()

    def tick_until(self, cond: Callable[[], bool], limit: int = 500) -> int:
        """Tick every live node (delivering) until ``cond()``; returns the ticks it took."""
        for ticks in range(limit + 1):
            if cond():
                return ticks
            self.tick()
        raise AssertionError(f"condition not reached within {limit} ticks")

    def campaign(self, nid: str) -> None:
        self[nid].campaign()
        self.flush(nid)

    def elect(self, nid: str) -> None:
        """Campaign ``nid`` and deliver everything; it must win."""
        self.campaign(nid)
        self.deliver_all()
        assert self[nid].role is Role.LEADER, f"{nid} did not win: {self[nid].role}"

    def leader(self) -> str | None:
        """The live leader of the highest term, if any."""
        leaders = [n for n in self.alive() if self[n].role is Role.LEADER]
        return max(leaders, key=lambda n: self[n].term, default=None)

    def propose(self, nid: str, data: bytes) -> Entry:
        entry = self[nid].propose(data)
        self.flush(nid)
        return entry

    def propose_conf_change(self, nid: str, cc: ConfChange) -> Entry:
        entry = self[nid].propose_conf_change(cc)
        self.flush(nid)
        return entry

    def read_index(self, nid: str, context: bytes) -> None:
        self[nid].read_index(context)
        self.flush(nid)

    def applied(self, nid: str) -> list[bytes]:
        return list(self.nodes[nid].applied)

    def log(self, nid: str) -> list[Entry]:
        """Every entry ``nid`` holds after its snapshot."""
        log = self[nid].log
        return log.slice(log.first_index(), log.last_index() + 1)


def _decode(data: bytes) -> list[bytes]:
    return list(msgpack.unpackb(data)) if data else []
