"""The RaftActor: hosts the pure Raft core and drives it through the Ready contract.

Every input (a tick, a peer's message, a proposal) is a message to this actor, so
the core is only ever touched by this actor's thread.  Each Ready goes to the
StorageActor as one :class:`~actors.storage.messages.PersistReady`; only when
:class:`~actors.storage.messages.ReadyPersisted` comes back are the Ready's messages sent
and its committed entries handed on for applying (the StorageActor applies them
in order, after the write), and ``advance()`` called.  While a Ready is being
persisted, new proposals accumulate in the core and travel in the next one: that
is where write throughput comes from (group commit), not from skipping fsync.

A proposer is answered when its entry is applied, with the state machine's
result; if this node loses leadership first, it is told the outcome is unknown.
With tracing on, a proposal that names the requests it carries (``traceparents``)
gets a span for each (:mod:`actors.raft.proposal_spans`).

A full disk (:class:`~actors.storage.messages.DiskFull` from the StorageActor): the
Ready in flight stays in flight until storage has made it durable, however
long that takes, so none of its messages leaves before (a follower stops
acknowledging; a leader stops replicating and is replaced once the others'
election timeout passes).  Meanwhile a leader refuses new proposals with
``disk_full``, and tells those waiting that their outcome is unknown: their
entries are in the held Ready and may yet commit once space returns.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from random import Random
from typing import TYPE_CHECKING, Any

import pykka

from actors.raft.hooks import RaftHooks
from actors.raft.lease import LeaderLease, lease_seconds
from actors.raft.messages import (
    Campaign,
    GetLastContact,
    GetLearnedPeers,
    GetRaftStatus,
    InstallSnapshot,
    Leadership,
    LearnedPeer,
    PeerIdentified,
    PeerMessage,
    Propose,
    ProposeConfChange,
    ProposeOutcome,
    ReadIndex,
    Refusal,
    ReportUnreachable,
    SendMessages,
    SetPeers,
    SnapshotOffer,
    SnapshotSettled,
    SubscribeLeadership,
    Tick,
    TransferLeadership,
)
from actors.raft.proposal_spans import ProposalSpans
from actors.runtime.clock import actor_ticker
from actors.runtime.replies import ActorRef, Reply, answer
from actors.storage.messages import (
    Applied,
    ApplyEntries,
    Bootstrap,
    Bootstrapped,
    DiskFull,
    PersistReady,
    Read,
    ReadResult,
    ReadyPersisted,
    SnapshotInstalled,
    Subscribe,
)
from scheduled_db.config.kinds import parse_address
from scheduled_db.config.model import RaftConfig
from scheduled_db.raft.core import (
    ConfChangeError,
    NotLeader,
    ProposalDropped,
    Raft,
    Ready,
)
from scheduled_db.raft.formation import Formation
from scheduled_db.raft.messages import (
    NO_NODE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
    SnapshotMeta,
)
from scheduled_db.raft.replication import Config, Role
from scheduled_db.raft.storage import Storage
from scheduled_db.state.reads import GetMembers

if TYPE_CHECKING:
    from actors.raft.snapshot_stream import SnapshotStreamActor
    from actors.raft.transport import PeerSender, TransportActor
    from actors.storage.actor import StorageActor

log = logging.getLogger(__name__)

PROMOTE_CHECK_TICKS = 5  # how often the leader looks for a learner to promote
PROMOTE_MAX_LAG = 64  # a learner this close to the commit index has caught up


@dataclass(frozen=True, slots=True)
class RaftSettings:
    """The Raft actor's tuning in ticks, from the ``raft`` config section (whose key
    table holds the defaults)."""

    node_id: str
    tick_ms: int
    election_ticks: int
    max_inflight: int
    max_entries_per_msg: int
    max_bytes_per_msg: int

    @classmethod
    def from_config(cls, node_id: str, raft: RaftConfig) -> RaftSettings:
        """One tick per heartbeat interval; the election timeout in whole ticks (at least 2)."""
        return cls(
            node_id=node_id,
            tick_ms=raft.heartbeat_interval_ms,
            election_ticks=max(2, raft.election_timeout_ms // raft.heartbeat_interval_ms),
            max_inflight=raft.max_inflight,
            max_entries_per_msg=raft.max_entries_per_msg,
            max_bytes_per_msg=raft.max_bytes_per_msg,
        )


class RaftActor(pykka.ThreadingActor):
    """Owns the Raft core of this node; see the module docstring for the flow."""

    def __init__(
        self,
        settings: RaftSettings,
        log_storage: Storage,
        applied_index: int,
        storage: pykka.ActorRef[StorageActor],
        transport: pykka.ActorRef[TransportActor] | None = None,
        peer_sender: PeerSender | None = None,
        snapshots: pykka.ActorRef[SnapshotStreamActor] | None = None,
        static_peers: Mapping[str, tuple[str, int]] | None = None,
        seed: int | None = None,
        hooks: RaftHooks | None = None,
        lease: LeaderLease | None = None,
        formation: Formation | None = None,
    ) -> None:
        super().__init__()
        self.lease = lease if lease is not None else LeaderLease()
        self._lease_s = lease_seconds(settings.election_ticks, settings.tick_ms / 1000)
        self.hooks = hooks if hooks is not None else RaftHooks()
        self.settings = settings
        self.storage = storage
        self.transport = transport
        # The transport's direct path (GetPeerSender): sends without waking its actor.
        self._peer_sender = peer_sender
        self.snapshots = snapshots
        self._static_peers = dict(static_peers or {})
        self._learned: dict[str, LearnedPeer] = {}  # peers found by probing their address
        self._formation = formation  # set while this node waits to form a new cluster
        self._bootstrap_asked = False
        self._promote_wait = 0  # ticks until the next look for a learner to promote
        self._log_storage, self._seed = log_storage, seed
        self.core = self._new_core(applied_index)
        # When (monotonic) the core counted each recent tick: a lease stamp names one.
        self._tick_at: dict[int, float] = {self.core.ticks: time.monotonic()}
        self._inflight: Ready | None = None
        self._ready_id = 0
        self._pending: dict[int, tuple[int, Reply]] = {}  # index -> (term, reply)
        self._spans = ProposalSpans()  # of traced proposals (empty with tracing off)
        self._reads: dict[bytes, Reply] = {}  # read index context -> reply
        self._reads_applying: list[tuple[int, Reply]] = []  # confirmed, awaiting apply
        self._read_prefix = os.urandom(8)  # contexts are unique across restarts too
        self._read_seq = 0
        self._heard: dict[str, float] = {}  # peer -> time.monotonic() of its last message
        self._subscribers: list[ActorRef] = []
        self._member_read = 0  # the id of the last members read (see _refresh_peers)
        self._member_reads: dict[int, frozenset[str]] = {}  # read id -> members then
        # (term, index) of the first entry of the term this node leads in: the term
        # matters, since the core can be leading again before we see its Ready.
        self._established_at = (0, 0)
        self._applied_index = 0
        self._set_applied(applied_index)
        self._disk_full = False
        self._announced = Leadership(NO_NODE, 0, False, False)
        self._known_leader = (NO_NODE, 0)  # (leader, term) last reported as elected
        self._ticker = actor_ticker(self, settings.tick_ms / 1000, Tick())
        self._handlers: dict[type[Any], Any] = {
            Tick: self._tick_core,
            PeerMessage: self._peer_message,
            InstallSnapshot: self._install_snapshot,
            Propose: self._propose,
            ProposeConfChange: self._propose_conf_change,
            GetRaftStatus: self._status,
            ReadyPersisted: self._persisted,
            Applied: self._applied,
            SubscribeLeadership: self._subscribe,
            TransferLeadership: self._transfer,
            ReportUnreachable: lambda msg: self.core.report_unreachable(msg.peer),
            Campaign: lambda _: self.core.campaign(),
            ReadIndex: self._read_index,
            GetLastContact: self._last_contact,
            SnapshotInstalled: self._snapshot_installed,
            DiskFull: self._disk_space,
            ReadResult: self._members_read,
            PeerIdentified: self._peer_identified,
            Bootstrapped: self._bootstrapped,
            GetLearnedPeers: lambda msg: answer(msg.reply, tuple(self._learned.values())),
        }

    def _new_core(self, applied_index: int) -> Raft:
        s = self.settings
        cfg = Config(
            s.node_id,
            election_tick=s.election_ticks,
            heartbeat_tick=1,
            applied=applied_index,
            max_size_per_msg=s.max_bytes_per_msg,
            max_entries_per_msg=s.max_entries_per_msg,
            max_inflight_msgs=s.max_inflight,
        )
        return Raft(cfg, self._log_storage, Random(self._seed))

    def on_start(self) -> None:
        self.storage.tell(Subscribe(self.actor_ref))
        self._refresh_peers()
        if self.core.conf_state().voters == (self.settings.node_id,):
            self.core.campaign()  # a group of one need not wait for a timeout
        self._process()
        self._ticker.start()

    def on_stop(self) -> None:
        self._ticker.stop()
        self._fail_pending("the node is shutting down")

    def on_receive(self, message: Any) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("raft: ignoring unexpected %s", type(message).__name__)
            return
        handler(message)
        self._process()

    def _tick_core(self, _: Tick) -> None:
        self.core.tick()
        # Read after the tick: every message stamped with this tick leaves later.
        self._tick_at[self.core.ticks] = time.monotonic()
        self._tick_at.pop(self.core.ticks - 4 * self.settings.election_ticks, None)
        self._maybe_promote()

    # -- membership --

    def _refresh_peers(self) -> None:
        """Tell the transport where each current member (voter or learner) is.

        Addresses come from the config and, for members that joined later, from
        the replicated state: this asks storage for the members it records and
        finishes in :meth:`_members_read` once the answer comes back (this actor
        never waits on storage).  Storage answers in order, so a refresh asked
        after an ApplyEntries or a PersistReady sees the state they produced; and
        the answer reaches this mailbox before the answer to any later request
        (a ReadyPersisted whose messages go to the peers).  The members are
        those of the core now, as it was when the refresh was due.
        """
        if self.transport is None:
            return
        self._member_read += 1
        members = (self.core.voters | self.core.learners) - {self.settings.node_id}
        self._member_reads[self._member_read] = frozenset(members)
        self.storage.tell(Read(self._member_read, GetMembers(), self.actor_ref.tell))

    def _members_read(self, msg: ReadResult) -> None:
        """The rest of :meth:`_refresh_peers`; a node that is not a member is left out:
        a removed member is forgotten with anything still queued for it, so a node that
        rejoins under the same id never gets messages meant for its earlier self."""
        members = self._member_reads.pop(msg.request_id, None)
        if members is None:
            log.warning("raft: an answer to no members read (%d)", msg.request_id)
            return
        assert self.transport is not None  # else no read was asked
        if msg.error is not None:
            raise RuntimeError(f"raft: storage could not read the members: {msg.error}")
        addresses = dict(self._static_peers)
        for node_id, (raft_address, _) in msg.value.items():
            try:
                address = parse_address(raft_address)
            except ValueError:
                log.warning("raft: member %s has a bad address %r", node_id, raft_address)
                continue
            addresses.setdefault(node_id, (address.host, address.port))
        peers = {node_id: addresses[node_id] for node_id in members if node_id in addresses}
        if self._peer_sender is not None:
            self._peer_sender.set_peers(peers)
        else:
            self.transport.tell(SetPeers.of(peers))

    # -- peers listed by address (the original's STATIC_PEERS; scheduled_db/raft/formation.py) --

    def _peer_identified(self, msg: PeerIdentified) -> None:
        """The transport learned who answers at a listed address: dial it there from
        now on, and form the cluster once every listed address has answered."""
        if msg.node_id != self.settings.node_id:
            address = parse_address(msg.address)  # the transport wrote what the config parsed
            self._learned[msg.node_id] = LearnedPeer(msg.node_id, msg.address, msg.http_address)
            if self._static_peers.get(msg.node_id) != (address.host, address.port):
                self._static_peers[msg.node_id] = (address.host, address.port)
                self._refresh_peers()
        if self._formation is not None:
            self._formation.identified(msg.address, msg.node_id)
            self._maybe_bootstrap(self._formation)

    def _maybe_bootstrap(self, formation: Formation) -> None:
        if self._bootstrap_asked:
            return
        problem = formation.problem()
        if problem is not None:
            log.error("raft: %s; fix the member list or BOOTSTRAP_EXPECT: stopping", problem)
            self.stop()
            return
        voters = formation.voters()
        if voters is None:
            waiting = formation.waiting_for()
            log.info(
                "raft: not bootstrapping yet: waiting for %s to answer (%d of %d have)",
                ", ".join(waiting),
                len(formation.addresses) - len(waiting),
                len(formation.addresses),
            )
            return
        if self._inflight is not None or self.core.term != 0 or self.core.log.last_index() != 0:
            log.info("raft: this node already has Raft state: it does not bootstrap")
            self._formation = None
            return
        self._bootstrap_asked = True
        log.info("raft: every listed address answered: bootstrapping %s", ", ".join(voters))
        self.storage.tell(Bootstrap(voters, self.actor_ref.tell))

    def _bootstrapped(self, msg: Bootstrapped) -> None:
        """Storage holds the bootstrap snapshot: the core starts again from it, as a
        restarted node would (the one it replaces never had a term or a log)."""
        self._formation = None
        if msg.meta is None:
            log.info("raft: the store already holds Raft state: not bootstrapping")
            return
        if self._inflight is not None:
            raise RuntimeError("raft: bootstrapped while a Ready was being persisted")
        self.core = self._new_core(msg.meta.index)
        self._set_applied(msg.meta.index)
        self._tick_at = {self.core.ticks: time.monotonic()}
        self._refresh_peers()
        if self.core.conf_state().voters == (self.settings.node_id,):
            self.core.campaign()

    def _maybe_promote(self) -> None:
        """On the leader: make a learner that has caught up a voter (one at a time)."""
        core = self._core_if_established()
        if core is None or not core.learners:
            return
        self._promote_wait -= 1
        if self._promote_wait > 0:
            return
        self._promote_wait = PROMOTE_CHECK_TICKS
        for learner in sorted(core.learners):
            if not self._caught_up(core, learner):
                continue
            try:
                core.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, learner))
            except ProposalDropped as exc:  # a NotLeader too
                log.debug("raft: promoting %s must wait: %s", learner, exc.why)
                return
            except ConfChangeError as exc:
                log.debug("raft: promoting %s must wait: %s", learner, exc)
                return
            match = core.prs[learner].match
            log.info("raft: learner %s has caught up (match %d): promoting it", learner, match)
            return

    def _caught_up(self, core: Raft, learner: str) -> bool:
        """Close to the commit index, and answering now.  Lag alone is not enough: on
        a young cluster (commit index under the lag) a learner at an address nobody
        answers would pass, and as a voter it would cost the cluster its quorum."""
        pr = core.prs.get(learner)
        if pr is None or pr.match == 0 or pr.match + PROMOTE_MAX_LAG < core.log.committed:
            return False
        heard = self._heard.get(learner)
        timeout_s = self.settings.tick_ms * self.settings.election_ticks / 1000
        return heard is not None and time.monotonic() - heard < timeout_s

    def _core_if_established(self) -> Raft | None:
        event = self._leadership_event()
        return self.core if event.established else None

    # -- snapshots (see actors.raft.snapshot_stream) --

    def _peer_message(self, msg: PeerMessage) -> None:
        message = msg.message
        self._heard[message.frm] = time.monotonic()
        if message.type is MessageType.SNAP and self._wants_stream(message):
            assert self.snapshots is not None
            self.snapshots.tell(SnapshotOffer(message, self.actor_ref))
        else:
            self.core.step(message)

    def _wants_stream(self, message: Message) -> bool:
        """Whether the core would take this snapshot: then its data must be pulled first."""
        snap = message.snapshot
        return (
            self.snapshots is not None
            and snap is not None
            and message.term >= self.core.term
            and snap.meta.index > self.core.log.committed
        )

    def _install_snapshot(self, msg: InstallSnapshot) -> None:
        self.core.step(msg.offer)
        taken = self.core.log.unstable_snapshot
        assert msg.offer.snapshot is not None
        meta = msg.offer.snapshot.meta
        if taken is None or taken.meta != meta:  # refused: a newer term, or already past it
            self._settled(meta)
        # else: settled once the Ready that installs it is persisted (_persisted)

    def _settled(self, meta: SnapshotMeta) -> None:
        if self.snapshots is not None:
            self.snapshots.tell(SnapshotSettled(meta))

    # -- linearizable reads (ReadIndex, thesis §6.4) --

    def _read_index(self, msg: ReadIndex) -> None:
        self._read_seq += 1
        context = self._read_prefix + self._read_seq.to_bytes(8, "big")
        try:
            self.core.read_index(context)
        except NotLeader as exc:
            answer(msg.reply, ProposeOutcome(error=Refusal.NOT_LEADER, leader=exc.leader))
            return
        self._reads[context] = msg.reply

    def _reads_confirmed(self, states: tuple[ReadState, ...]) -> None:
        for rs in states:
            reply = self._reads.pop(rs.context, None)
            if reply is not None:
                self._reads_applying.append((rs.index, reply))
        self._release_reads()

    def _release_reads(self) -> None:
        waiting, self._reads_applying = self._reads_applying, []
        for index, reply in waiting:
            if index <= self._applied_index:
                answer(reply, ProposeOutcome(index=index))
            else:
                self._reads_applying.append((index, reply))

    def _fail_reads(self) -> None:
        """The leader changed: a read it had not confirmed never will be."""
        reads, self._reads = self._reads, {}
        for reply in reads.values():
            answer(
                reply, ProposeOutcome(error=Refusal.DROPPED, detail="leadership changed", leader="")
            )

    def _snapshot_installed(self, msg: SnapshotInstalled) -> None:
        self._set_applied(max(self._applied_index, msg.meta.index))
        self._release_reads()

    # -- proposals --

    def _propose(self, msg: Propose) -> None:
        if not self._refused_for_space(msg.reply):
            self._track(lambda: self.core.propose(msg.data), msg.reply, msg.traceparents)

    def _propose_conf_change(self, msg: ProposeConfChange) -> None:
        if self._refused_for_space(msg.reply):
            return
        try:
            self._track(lambda: self.core.propose_conf_change(msg.change), msg.reply)
        except ConfChangeError as exc:
            answer(
                msg.reply,
                ProposeOutcome(error=Refusal.CONFLICT, detail=str(exc), leader=self.core.lead),
            )

    def _track(
        self, propose: Callable[[], Entry], reply: Reply, traceparents: tuple[str, ...] = ()
    ) -> None:
        """Make the proposal and remember who to answer, or answer the refusal now."""
        try:
            entry = propose()
        except NotLeader as exc:
            answer(reply, ProposeOutcome(error=Refusal.NOT_LEADER, leader=exc.leader))
            return
        except ProposalDropped as exc:
            answer(
                reply, ProposeOutcome(error=Refusal.DROPPED, detail=exc.why, leader=self.core.lead)
            )
            return
        self._pending[entry.index] = (entry.term, reply)
        if traceparents:
            self._spans.start(entry, traceparents)

    def _refused_for_space(self, reply: Reply) -> bool:
        """A leader whose disk is full refuses at once (a follower says who leads)."""
        if not self._disk_full or self.core.role is not Role.LEADER:
            return False
        self.hooks.refused_for_space()
        answer(reply, ProposeOutcome(error=Refusal.DISK_FULL, leader=self.core.lead))
        return True

    def _disk_space(self, msg: DiskFull) -> None:
        self._disk_full = msg.full
        self.hooks.disk_full(msg.full)
        if msg.full:
            self._fail_pending("the disk is full: the entry is not durable yet")

    def _last_contact(self, msg: GetLastContact) -> None:
        now = time.monotonic()
        answer(msg.reply, {peer: int((now - at) * 1000) for peer, at in self._heard.items()})

    def _status(self, msg: GetRaftStatus) -> None:
        answer(msg.reply, self.core.status())

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        self._spans.fail_all(why)
        for _, reply in pending.values():
            answer(
                reply,
                ProposeOutcome(error=Refusal.UNKNOWN_OUTCOME, detail=why, leader=self.core.lead),
            )

    def _transfer(self, msg: TransferLeadership) -> None:
        try:
            self.core.transfer_leadership(msg.target)
        except (NotLeader, ValueError) as exc:
            log.info("raft: transfer to %s refused: %s", msg.target, exc)

    def _subscribe(self, msg: SubscribeLeadership) -> None:
        self._subscribers.append(msg.subscriber)
        msg.subscriber.tell(self._leadership_event())

    # -- the Ready loop --

    def _process(self) -> None:
        self._watch_leadership()
        self._renew_lease()
        if self._inflight is not None or not self.core.has_ready():
            return
        rd = self.core.ready()
        if rd.read_states:
            self._reads_confirmed(rd.read_states)  # nothing to persist for a read
        self._inflight = rd
        self._ready_id += 1
        if rd.soft_state is not None:
            self._role_changed(rd.soft_state.role)
        snap = rd.snapshot.meta if rd.snapshot is not None else None
        self.storage.tell(
            PersistReady(self._ready_id, rd.hard_state, rd.entries, snap, self.actor_ref.tell)
        )
        if rd.early:  # a leader's appends go out while its own write is under way
            self._send(rd.early)

    def _persisted(self, msg: ReadyPersisted) -> None:
        rd = self._inflight
        if rd is None or msg.ready_id != self._ready_id:
            raise RuntimeError(f"persisted Ready {msg.ready_id} was not in flight")
        if rd.snapshot is not None:
            self._settled(rd.snapshot.meta)
            self._refresh_peers()
        late = rd.late
        if late:
            self._send(late)
        if rd.committed_entries:
            conf: ConfState | None = None
            for e in rd.committed_entries:
                self._drop_if_replaced(e.index, e.term)
                if self._spans:
                    self._spans.committed(e.index)
                if e.type is EntryType.CONF_CHANGE:
                    conf = self.core.apply_conf_change(ConfChange.decode(e.data))
            self.storage.tell(ApplyEntries(rd.committed_entries, conf, None))
            if conf is not None:
                self._refresh_peers()  # told after the apply: storage answers in order
        self._inflight = None
        self.core.advance()

    def _drop_if_replaced(self, index: int, term: int) -> None:
        waiting = self._pending.get(index)
        if waiting is not None and waiting[0] != term:
            # Another leader's entry committed at this index: ours was never applied.
            del self._pending[index]
            self._spans.end(index, "entry was replaced")
            answer(
                waiting[1],
                ProposeOutcome(error=Refusal.UNKNOWN_OUTCOME, detail="entry was replaced"),
            )

    def _send(self, msgs: tuple[Message, ...]) -> None:
        if self.transport is None:
            log.debug("raft: no transport; %d messages to peers dropped", len(msgs))
            return
        if self._peer_sender is not None:
            self._peer_sender.send(msgs)
        else:
            self.transport.tell(SendMessages(msgs))

    def _set_applied(self, index: int) -> None:
        self._applied_index = index
        self.hooks.applied(index)

    def _applied(self, msg: Applied) -> None:
        self._set_applied(msg.applied_index)
        if self._reads_applying:
            self._release_reads()
        for entry in msg.entries:
            if self._spans:
                self._spans.end(entry.index)
            waiting = self._pending.pop(entry.index, None)
            if waiting is not None:
                answer(waiting[1], ProposeOutcome(index=entry.index, results=entry.results))

    # -- leadership --

    def _role_changed(self, role: Role) -> None:
        if role is Role.LEADER:
            self._established_at = (self.core.term, self.core.log.last_index())  # the no-op
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
            if event.leader != self._announced.leader:
                self._fail_reads()
            if event.leader != NO_NODE and (event.leader, event.term) != self._known_leader:
                self._known_leader = (event.leader, event.term)
                self.hooks.leader_elected()
            self._announced = event
            for sub in list(self._subscribers):
                try:
                    sub.tell(event)
                except pykka.ActorDeadError:
                    self._subscribers.remove(sub)

    def _renew_lease(self) -> None:
        """Publish until when this node surely leads (see actors.raft.lease): only while
        its leadership is established, from the tick a quorum acknowledged last."""
        stamp = self.core.lease_stamp()
        at = self._tick_at.get(stamp) if stamp is not None else None
        if at is None or not self._announced.established:
            self.lease.revoke()
        else:
            self.lease.grant(self.core.term, at + self._lease_s)

    def _leadership_event(self) -> Leadership:
        core = self.core
        leading = core.role is Role.LEADER
        term, first = self._established_at
        established = leading and term == core.term and self._applied_index >= first > 0
        return Leadership(core.lead, core.term, leading, established)
