"""A deterministic Raft state machine: messages and ticks in, a Ready out.

The host drives a :class:`Raft` like this, in one thread::

    raft.tick()               # on every tick of its clock
    raft.step(message)        # for every message from a peer
    raft.propose(data)        # on the leader
    if raft.has_ready():
        rd = raft.ready()
        # 1. persist rd.snapshot, then rd.hard_state and rd.entries, durably
        #    (one atomic, synced write if possible)
        # 2. only then send rd.messages
        # 3. apply rd.snapshot, then rd.committed_entries in order; call
        #    apply_conf_change() for each CONF_CHANGE entry as it is applied
        # 4. serve reads in rd.read_states once applied >= their index
        raft.advance()

A message sent before the state it depends on is durable can break safety (a
vote forgotten across a crash lets a node vote twice in one term), so the order
of steps 1 and 2 is the contract.  The core never reads a clock, never sleeps,
never does I/O, and takes its only randomness from the ``rng`` it is given.
"""

from __future__ import annotations

from scheduled_db.errors import NotLeader, ProposalDropped
from scheduled_db.raft.log import RaftLog
from scheduled_db.raft.messages import (
    NO_NODE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
)
from scheduled_db.raft.progress import Progress
from scheduled_db.raft.quorum import VoteResult, vote_result
from scheduled_db.raft.ready import (
    ConfChangeError,
    PeerStatus,
    Ready,
    SoftState,
    Status,
)
from scheduled_db.raft.replication import Config, RandomSource, Replicator, Role
from scheduled_db.raft.storage import BOOTSTRAP_TERM, Storage

__all__ = [
    "CAMPAIGN_TRANSFER",
    "ConfChangeError",
    "NotLeader",
    "PeerStatus",
    "ProposalDropped",
    "Raft",
    "Ready",
    "SoftState",
    "Status",
]

CAMPAIGN_TRANSFER = b"transfer"  # vote context: campaign ordered by the leader


class Raft(Replicator):
    """One Raft node.  Not thread-safe: the host calls it from one thread."""

    def __init__(self, config: Config, storage: Storage, rng: RandomSource) -> None:
        self.config = config
        self.id = config.id
        self.rng = rng
        self.log = RaftLog(storage, config.applied)
        hs, cs = storage.initial_state()
        self.voters, self.learners = set(cs.voters), set(cs.learners)
        self.term, self.vote = hs.term, hs.vote
        self.log.commit_to(hs.commit)
        self.msgs, self.read_states = [], []
        self.prs = {}
        self.role = Role.FOLLOWER
        # Ticks since this node started (from 1: a message stamp of 0 means none), and
        # since it last heard from a leader.  A node restarting in a term that had a
        # leader grants no vote for an election timeout: it may have acknowledged that
        # leader's message just before it went down, and the leader counts on the
        # acknowledgement for its lease (see lease_stamp).  A node still in the
        # bootstrap term has never had a leader to acknowledge.
        self.ticks = 1
        self.leader_heard_ticks = 0 if hs.term > BOOTSTRAP_TERM else config.election_tick
        self._needs_bcast = False
        self._in_flight: Ready | None = None
        self._reset(self.term)
        self._prev_hs = hs
        self._prev_ss = self._soft_state()

    # -- state transitions --

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term, self.vote = term, NO_NODE
        self.lead = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        et = self.config.election_tick
        self.randomized_election_timeout = et + self.rng.randrange(0, et)
        self.lead_transferee = NO_NODE
        self.lease_given_up = False
        self.votes: dict[str, bool] = {}
        self.prs = {p: self._new_progress(p) for p in sorted(self.voters | self.learners)}
        if self.id in self.prs:
            self.prs[self.id].match = self.log.durable_last_index()
        self.pending_conf_index = 0
        self.reads, self.reads_waiting_commit = [], []

    def become_follower(self, term: int, lead: str) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        # Pre-Vote (thesis §9.6): no term change, so a node that cannot win disturbs no one.
        self.votes = {}
        self.lead = NO_NODE
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.prs[self.id].become_replicate()
        # No conf change may be proposed until everything before this term is applied.
        self.pending_conf_index = self.log.last_index()
        # §5.4.2 / thesis §6.4: an empty entry of the new term lets older entries commit.
        self._append_entries([Entry(0, 0)])

    def promotable(self) -> bool:
        return self.id in self.voters

    # -- ticks --

    def tick(self) -> None:
        """Advance the logical clock by one tick."""
        self.ticks += 1
        self.leader_heard_ticks += 1
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self.election_elapsed += 1
            if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
                self.election_elapsed = 0
                self._hup(transfer=False)

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        for p, pr in self.prs.items():
            if p != self.id:
                pr.silent_ticks += 1
        # CheckQuorum (thesis §6.2), looked at every tick: a leader that has not
        # heard from a majority within an election timeout steps down, no later.
        if self.config.check_quorum and not self._quorum_active():
            self.become_follower(self.term, NO_NODE)
            return
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            self.lead_transferee = NO_NODE  # a transfer not done in an election timeout fails
            if self.lease_given_up:
                # Its TIMEOUT_NOW may still make the target campaign, so this leader
                # cannot have a lease again in this term: let a new election decide.
                self.become_follower(self.term, NO_NODE)
                return
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()
        self._tick_snapshots()

    # -- elections --

    def campaign(self) -> None:
        """Start an election now (as a timeout would)."""
        self._hup(transfer=False)

    def _hup(self, transfer: bool) -> None:
        if self.role is Role.LEADER or not self.promotable() or self._has_pending_conf_change():
            return
        if self.config.pre_vote and not transfer:
            self._campaign(pre=True, context=b"")
        else:
            self._campaign(pre=False, context=CAMPAIGN_TRANSFER if transfer else b"")

    def _campaign(self, pre: bool, context: bytes) -> None:
        if pre:
            self._become_pre_candidate()
            kind, term = MessageType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            kind, term = MessageType.VOTE, self.term
        self.votes[self.id] = True
        if self._tally() is not VoteResult.PENDING:
            return
        last = self.log.last_index()
        for p in sorted(self.voters - {self.id}):
            msg = Message(kind, p, self.id, term, self.log.last_term(), last, context=context)
            self._send(msg)

    def _tally(self) -> VoteResult:
        result = vote_result(self.voters, self.votes)
        if result is VoteResult.WON:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre=False, context=b"")
            else:
                self._become_leader()
                self._bcast_append()
        elif result is VoteResult.LOST:
            self.become_follower(self.term, NO_NODE)
        return result

    # -- messages --

    def step(self, m: Message) -> None:
        """Process one message from a peer (any message; stale ones are ignored)."""
        if m.term > self.term:
            if not self._accept_higher_term(m):
                return
        elif m.term < self.term:
            self._answer_stale(m)
            return
        if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _in_lease(self, m: Message) -> bool:
        """Whether a vote request must be ignored: we lead, or heard from a leader
        within an election timeout (thesis §4.2.3), and it is not a transfer's.  This
        is also what makes the leader's lease safe (see lease_stamp)."""
        if not self.config.check_quorum or m.context == CAMPAIGN_TRANSFER:
            return False
        return self.role is Role.LEADER or self.leader_heard_ticks < self.config.election_tick

    def _accept_higher_term(self, m: Message) -> bool:
        if m.type in (MessageType.VOTE, MessageType.PRE_VOTE) and self._in_lease(m):
            return False  # we lead, or heard from a leader within an election timeout
        if m.type is MessageType.PRE_VOTE:
            return True  # pre-votes never change our term
        if m.type is MessageType.PRE_VOTE_RESP and not m.reject:
            return True  # a grant for our next term; we move to it only when we win
        leader_msg = m.type in (MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP)
        self.become_follower(m.term, m.frm if leader_msg else NO_NODE)
        return True

    def _answer_stale(self, m: Message) -> None:
        if m.type in (MessageType.APP, MessageType.HEARTBEAT) and (
            self.config.check_quorum or self.config.pre_vote
        ):
            # A leader isolated by a partition learns of the newer term and steps down.
            self._msg(MessageType.APP_RESP, m.frm)
        elif m.type is MessageType.PRE_VOTE:
            self._msg(MessageType.PRE_VOTE_RESP, m.frm, reject=True)

    def _handle_vote_request(self, m: Message) -> None:
        resp = MessageType.VOTE_RESP if m.type is MessageType.VOTE else MessageType.PRE_VOTE_RESP
        can_vote = self.vote == m.frm or (
            not self._in_lease(m)
            and (
                (self.vote == NO_NODE and self.lead == NO_NODE)
                or (m.type is MessageType.PRE_VOTE and m.term > self.term)
            )
        )
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp, m.frm, self.id, term=m.term))
            if m.type is MessageType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._msg(resp, m.frm, reject=True)

    def _step_follower(self, m: Message) -> None:
        if m.type in (MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP):
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_leader_message(m)
        elif m.type is MessageType.TIMEOUT_NOW:
            self._hup(transfer=True)  # leadership transfer (thesis §3.10)
        elif m.type is MessageType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _step_candidate(self, m: Message) -> None:
        if m.type in (MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP):
            self.become_follower(m.term, m.frm)  # a leader of our term exists
            self._handle_leader_message(m)
            return
        expected = (
            MessageType.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MessageType.VOTE_RESP
        )
        if m.type is expected:
            self.votes.setdefault(m.frm, not m.reject)
            self._tally()

    def _step_leader(self, m: Message) -> None:
        if m.type is MessageType.APP_RESP:
            self._handle_append_response(m)
        elif m.type is MessageType.HEARTBEAT_RESP:
            self._handle_heartbeat_response(m)
        elif m.type is MessageType.READ_INDEX and m.frm in self.prs:
            self._leader_read_index(m.frm, m.context)

    def _handle_leader_message(self, m: Message) -> None:
        self.leader_heard_ticks = 0
        if m.type is MessageType.APP:
            self._handle_append(m)
        elif m.type is MessageType.HEARTBEAT:
            self.log.commit_to(m.commit)
            self._msg(MessageType.HEARTBEAT_RESP, m.frm, context=m.context, stamp=m.stamp)
        else:
            self._handle_snapshot(m)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._msg(MessageType.APP_RESP, m.frm, index=self.log.committed, stamp=m.stamp)
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._msg(MessageType.APP_RESP, m.frm, index=last_new, stamp=m.stamp)
            return
        # Tell the leader the last index (and its term) that could match (fast backtracking).
        hint = min(m.index, self.log.last_index())
        hint, hint_term = self.log.find_conflict_by_term(hint, m.log_term)
        self._msg(
            MessageType.APP_RESP,
            m.frm,
            index=m.index,
            reject=True,
            reject_hint=hint,
            log_term=hint_term,
            stamp=m.stamp,
        )

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        index = self.log.last_index() if self._restore(m.snapshot) else self.log.committed
        self._msg(MessageType.APP_RESP, m.frm, index=index, stamp=m.stamp)

    def _restore(self, snap: Snapshot) -> bool:
        meta = snap.meta
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # we already have it: fast-forward only
            return False
        self.log.restore(snap)
        self.voters = set(meta.conf_state.voters)
        self.learners = set(meta.conf_state.learners)
        self.prs = {p: self._new_progress(p) for p in sorted(self.voters | self.learners)}
        return True

    # -- the host's requests --

    def propose(self, data: bytes) -> Entry:
        """Append ``data`` to the log; returns the entry (term, index) it became.

        Raises NotLeader (with the known leader) on a follower or candidate, and
        ProposalDropped while a leadership transfer is in progress.
        """
        return self.propose_batch([data])[0]

    def propose_batch(self, datas: list[bytes]) -> list[Entry]:
        """Append several proposals at once; they travel in the same messages."""
        self._check_can_propose()
        ents = self._append_entries([Entry(0, 0, EntryType.NORMAL, d) for d in datas])
        self._needs_bcast = True
        return ents

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        if self.lead_transferee != NO_NODE:
            raise ProposalDropped("leadership transfer in progress")
        if self.id not in self.prs:
            raise ProposalDropped("this node has been removed from the cluster")

    def propose_conf_change(self, cc: ConfChange) -> Entry:
        """Propose one single-server membership change (thesis §4.1)."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped("a configuration change is already in progress")
        self._validate_conf_change(cc)
        (ent,) = self._append_entries([Entry(0, 0, EntryType.CONF_CHANGE, cc.encode())])
        self.pending_conf_index = ent.index
        self._needs_bcast = True
        return ent

    def _validate_conf_change(self, cc: ConfChange) -> None:
        node = cc.node_id
        if cc.type is ConfChangeType.ADD_VOTER and node in self.voters:
            raise ConfChangeError(f"{node} is already a voter")
        if cc.type is ConfChangeType.ADD_LEARNER and (node in self.voters or node in self.learners):
            raise ConfChangeError(f"{node} is already a member")
        if cc.type is ConfChangeType.REMOVE:
            if node not in self.voters and node not in self.learners:
                raise ConfChangeError(f"{node} is not a member")
            if self.voters == {node}:
                raise ConfChangeError("cannot remove the last voter")

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Called by the host when it applies a committed CONF_CHANGE entry."""
        node = cc.node_id
        if cc.type is ConfChangeType.ADD_VOTER:
            self.learners.discard(node)
            self.voters.add(node)
        elif cc.type is ConfChangeType.ADD_LEARNER and node not in self.voters:
            self.learners.add(node)
        elif cc.type is ConfChangeType.REMOVE:
            self.voters.discard(node)
            self.learners.discard(node)
        self._sync_progress()
        if self.role is Role.LEADER:
            if self.id not in self.voters:
                self.become_follower(self.term, NO_NODE)  # a removed leader steps down
            else:
                if self.lead_transferee not in self.voters:
                    self.lead_transferee = NO_NODE
                if self._maybe_commit():
                    self._bcast_append()
        return self.conf_state()

    def _sync_progress(self) -> None:
        members = sorted(self.voters | self.learners)
        prs: dict[str, Progress] = {}
        for p in members:
            prs[p] = self.prs.get(p) or self._new_progress(p)
            prs[p].is_learner = p in self.learners
        self.prs = prs

    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read; ``context`` (unique) comes back in a ReadState."""
        if self.role is Role.LEADER:
            self._leader_read_index(self.id, context)
        elif self.lead == NO_NODE:
            raise NotLeader(NO_NODE)
        else:
            self._msg(MessageType.READ_INDEX, self.lead, context=context)

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to ``target`` once its log is up to date (thesis §3.10)."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        if target == self.id or target == self.lead_transferee:
            return
        if target not in self.voters:
            raise ConfChangeError(f"{target} is not a voter")
        self.lead_transferee = target
        self.election_elapsed = 0
        if self.prs[target].match == self.log.last_index():
            self._send_timeout_now(target)
        else:
            self._maybe_send_append(target, send_if_empty=True)

    # -- Ready --

    def _soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def has_ready(self) -> bool:
        if self._in_flight is not None:
            return False
        return bool(
            self._needs_bcast
            or self.msgs
            or self.read_states
            or self.log.unstable
            or self.log.unstable_snapshot is not None
            or self.log.has_next_committed_entries()
            or self.hard_state() != self._prev_hs
            or self._soft_state() != self._prev_ss
        )

    def ready(self) -> Ready:
        """Take the pending work; call :meth:`advance` once it is done."""
        if self._in_flight is not None:
            raise RuntimeError("advance() the previous Ready before taking another")
        if self._needs_bcast:
            self._needs_bcast = False
            if self.role is Role.LEADER:
                self._bcast_append()
        hs, ss = self.hard_state(), self._soft_state()
        rd = Ready(
            soft_state=ss if ss != self._prev_ss else None,
            hard_state=hs if hs != self._prev_hs else None,
            entries=tuple(self.log.unstable),
            snapshot=self.log.unstable_snapshot,
            committed_entries=tuple(
                self.log.next_committed_entries(self.config.max_committed_size_per_ready)
            ),
            messages=tuple(self.msgs),
            leader=self.role is Role.LEADER,
            read_states=tuple(self.read_states),
        )
        self.msgs, self.read_states = [], []
        self._prev_ss = ss
        self._in_flight = rd
        return rd

    def advance(self) -> None:
        """The last Ready is persisted, sent and applied."""
        rd = self._in_flight
        if rd is None:
            raise RuntimeError("advance() without a Ready")
        self._in_flight = None
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.entries:
            self.log.stable_to(rd.entries[-1].index, rd.entries[-1].term)
        if rd.snapshot is not None:
            self.log.stable_snap_to(rd.snapshot.meta.index)
            self.log.applied_to(rd.snapshot.meta.index)
        if rd.committed_entries:
            self.log.applied_to(rd.committed_entries[-1].index)
        # A leader's own entries count towards a commit once durable (thesis §10.2.1).
        me = self.prs.get(self.id) if self.role is Role.LEADER else None
        if (
            me is not None
            and me.maybe_update(self.log.durable_last_index())
            and self._maybe_commit()
        ):
            self._bcast_append()

    def status(self) -> Status:
        progress = {
            p: PeerStatus(pr.match, pr.next, pr.state, self._active(p), pr.is_learner)
            for p, pr in self.prs.items()
        }
        return Status(
            id=self.id,
            term=self.term,
            vote=self.vote,
            commit=self.log.committed,
            applied=self.log.applied,
            lead=self.lead,
            role=self.role,
            conf_state=self.conf_state(),
            progress=progress if self.role is Role.LEADER else {},
            lead_transferee=self.lead_transferee,
        )
