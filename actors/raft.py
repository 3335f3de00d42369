"""The RaftActor: hosts the pure Raft core and drives it through the Ready contract.

Every input (a tick, a peer's message, a proposal) is a message to this actor, so
the core is only ever touched by this actor's thread.  Each Ready goes to the
StorageActor as one :class:`~actors.messages.PersistReady`; only when
:class:`~actors.messages.ReadyPersisted` comes back are the Ready's messages sent
and its committed entries handed on for applying (the StorageActor applies them
in order, after the write), and ``advance()`` called.  While a Ready is being
persisted, new proposals accumulate in the core and travel in the next one: that
is where write throughput comes from (group commit), not from skipping fsync.

A proposer is answered when its entry is applied, with the state machine's
result; if this node loses leadership first, it is told the outcome is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

import pykka

from actors import messages as m
from actors.clock import Ticker
from scheduled_db.raft.core import (
    ConfChangeError,
    NotLeader,
    ProposalDropped,
    Raft,
    Ready,
    Status,
)
from scheduled_db.raft.messages import NO_NODE, ConfChange, ConfState, Entry, EntryType, Message
from scheduled_db.raft.replication import Config, Role
from scheduled_db.raft.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RaftSettings:
    node_id: str
    tick_ms: int = 100
    election_ticks: int = 10
    max_inflight: int = 256
    max_entries_per_msg: int = 1024
    max_bytes_per_msg: int = 1 << 20


class RaftActor(pykka.ThreadingActor):
    """Owns the Raft core of this node; see the module docstring for the flow."""

    def __init__(
        self,
        settings: RaftSettings,
        log_storage: Storage,
        applied_index: int,
        storage: m.ActorRef,
        transport: m.ActorRef | None = None,
        seed: int | None = None,
        on_leader_change: Any = None,
    ) -> None:
        super().__init__()
        self._on_leader_change = on_leader_change
        self.settings = settings
        self.storage = storage
        self.transport = transport
        cfg = Config(
            settings.node_id,
            election_tick=settings.election_ticks,
            heartbeat_tick=1,
            applied=applied_index,
            max_size_per_msg=settings.max_bytes_per_msg,
            max_entries_per_msg=settings.max_entries_per_msg,
            max_inflight_msgs=settings.max_inflight,
        )
        self.core = Raft(cfg, log_storage, Random(seed))
        self._inflight: Ready | None = None
        self._ready_id = 0
        self._pending: dict[int, tuple[int, m.Reply]] = {}  # index -> (term, reply)
        self._subscribers: list[m.ActorRef] = []
        self._established_at = 0  # index of this term's first entry while leading
        self._applied_index = applied_index
        self._announced = m.Leadership(NO_NODE, 0, False, False)
        self._ticker = Ticker(settings.tick_ms / 1000, self._tick)
        self._handlers: dict[type[Any], Any] = {
            m.Tick: lambda _: self.core.tick(),
            m.PeerMessage: lambda msg: self.core.step(msg.message),
            m.Propose: self._propose,
            m.ProposeConfChange: self._propose_conf_change,
            m.GetRaftStatus: self._status,
            m.ReadyPersisted: self._persisted,
            m.Applied: self._applied,
            m.SubscribeLeadership: self._subscribe,
            m.TransferLeadership: self._transfer,
            m.ReportUnreachable: lambda msg: self.core.report_unreachable(msg.peer),
            m.Campaign: lambda _: self.core.campaign(),
        }

    def _tick(self) -> None:
        try:
            self.actor_ref.tell(m.Tick())
        except pykka.ActorDeadError:
            self._ticker.stop()

    def on_start(self) -> None:
        self.storage.tell(m.Subscribe(self.actor_ref))
        if self.core.conf_state().voters == (self.settings.node_id,):
            self.core.campaign()  # a group of one need not wait for a timeout
        self._process()
        self._ticker.start()

    def on_stop(self) -> None:
        self._ticker.stop()
        self._fail_pending("the node is shutting down")

    def on_receive(self, message: Any) -> Any:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("raft: ignoring unexpected %s", type(message).__name__)
            return None
        result = handler(message)
        self._process()
        return result

    # -- proposals --

    def _propose(self, msg: m.Propose) -> None:
        self._track(lambda: self.core.propose(msg.data), msg.reply, (ProposalDropped,))

    def _propose_conf_change(self, msg: m.ProposeConfChange) -> None:
        refusals = (ProposalDropped, ConfChangeError)
        self._track(lambda: self.core.propose_conf_change(msg.change), msg.reply, refusals)

    def _track(
        self,
        propose: Callable[[], Entry],
        reply: m.Reply,
        refusals: tuple[type[Exception], ...],
    ) -> None:
        """Make the proposal and remember who to answer, or answer the refusal now."""
        try:
            entry = propose()
        except NotLeader as exc:
            reply(m.ProposeOutcome(error="not_leader", leader=exc.leader))
            return
        except refusals as exc:
            reply(m.ProposeOutcome(error="dropped", detail=str(exc), leader=self.core.lead))
            return
        self._pending[entry.index] = (entry.term, reply)

    def _status(self, msg: m.GetRaftStatus) -> Status:
        status = self.core.status()
        if msg.reply is not None:
            msg.reply(status)
        return status

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for _, reply in pending.values():
            reply(m.ProposeOutcome(error="unknown_outcome", detail=why, leader=self.core.lead))

    def _transfer(self, msg: m.TransferLeadership) -> None:
        try:
            self.core.transfer_leadership(msg.target)
        except (NotLeader, ValueError) as exc:
            log.info("raft: transfer to %s refused: %s", msg.target, exc)

    def _subscribe(self, msg: m.SubscribeLeadership) -> None:
        self._subscribers.append(msg.subscriber)
        msg.subscriber.tell(self._leadership_event())

    # -- the Ready loop --

    def _process(self) -> None:
        self._watch_leadership()
        if self._inflight is not None or not self.core.has_ready():
            return
        rd = self.core.ready()
        self._inflight = rd
        self._ready_id += 1
        if rd.soft_state is not None:
            self._role_changed(rd.soft_state.role)
        snap = rd.snapshot.meta if rd.snapshot is not None else None
        self.storage.tell(
            m.PersistReady(self._ready_id, rd.hard_state, rd.entries, snap, self.actor_ref)
        )

    def _persisted(self, msg: m.ReadyPersisted) -> None:
        rd = self._inflight
        if rd is None or msg.ready_id != self._ready_id:
            raise RuntimeError(f"persisted Ready {msg.ready_id} was not in flight")
        if rd.messages:
            self._send(rd.messages)
        if rd.committed_entries:
            conf: ConfState | None = None
            for e in rd.committed_entries:
                self._drop_if_replaced(e.index, e.term)
                if e.type is EntryType.CONF_CHANGE:
                    conf = self.core.apply_conf_change(ConfChange.decode(e.data))
            self.storage.tell(m.ApplyEntries(rd.committed_entries, conf, None))
        self._inflight = None
        self.core.advance()

    def _drop_if_replaced(self, index: int, term: int) -> None:
        waiting = self._pending.get(index)
        if waiting is not None and waiting[0] != term:
            # Another leader's entry committed at this index: ours was never applied.
            del self._pending[index]
            waiting[1](m.ProposeOutcome(error="unknown_outcome", detail="entry was replaced"))

    def _send(self, msgs: tuple[Message, ...]) -> None:
        if self.transport is None:
            log.debug("raft: no transport; %d messages to peers dropped", len(msgs))
            return
        self.transport.tell(m.SendMessages(msgs))

    def _applied(self, msg: m.Applied) -> None:
        self._applied_index = msg.applied_index
        for entry in msg.entries:
            waiting = self._pending.pop(entry.index, None)
            if waiting is not None:
                waiting[1](m.ProposeOutcome(index=entry.index, results=entry.results))

    # -- leadership --

    def _role_changed(self, role: Role) -> None:
        if role is Role.LEADER:
            self._established_at = self.core.log.last_index()  # this term's no-op
        elif self._pending:
            self._fail_pending("leadership lost before the entry was applied")

    def _watch_leadership(self) -> None:
        """Tell subscribers of every change of leader, term, or established leadership.

        Leadership is *established* once this term's first entry is applied: only
        then does the state machine hold every entry committed by earlier leaders,
        so only then may the scheduler act on it.
        """
        event = self._leadership_event()
        if event != self._announced:
            if event.leader != self._announced.leader and self._on_leader_change is not None:
                self._on_leader_change()
            self._announced = event
            for sub in list(self._subscribers):
                try:
                    sub.tell(event)
                except pykka.ActorDeadError:
                    self._subscribers.remove(sub)

    def _leadership_event(self) -> m.Leadership:
        core = self.core
        leading = core.role is Role.LEADER
        established = leading and self._applied_index >= self._established_at > 0
        return m.Leadership(core.lead, core.term, leading, established)
