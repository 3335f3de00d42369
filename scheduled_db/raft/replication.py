"""The leader's side of Raft: replication, heartbeats, commitment and ReadIndex.

:class:`Replicator` is the base of :class:`scheduled_db.raft.core.Raft`; it holds
the state every role shares and the behaviour only a leader uses.  Nothing here
changes the term or the role: that is the core's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from scheduled_db.raft.log import RaftLog
from scheduled_db.raft.messages import (
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
)
from scheduled_db.raft.progress import Progress, ProgressState
from scheduled_db.raft.quorum import committed_index, has_quorum
from scheduled_db.raft.storage import CompactedError


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class RandomSource(Protocol):
    """The one source of randomness: a seeded ``random.Random`` in practice."""

    def randrange(self, start: int, stop: int) -> int: ...


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of one Raft node.  Times are in ticks of the host's clock."""

    id: str
    election_tick: int = 10  # election timeout is drawn from [election_tick, 2*election_tick)
    heartbeat_tick: int = 1
    applied: int = 0  # the host's applied index on restart
    max_size_per_msg: int = 1 << 20
    max_entries_per_msg: int = 4096
    max_inflight_msgs: int = 256
    max_committed_size_per_ready: int = 32 << 20
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_retry_ticks: int = 50  # resend a snapshot not acknowledged within this

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("raft config: id must not be empty")
        if self.heartbeat_tick < 1 or self.election_tick <= self.heartbeat_tick:
            raise ValueError("raft config: need 1 <= heartbeat_tick < election_tick")
        if self.max_inflight_msgs < 1 or self.max_entries_per_msg < 1:
            raise ValueError("raft config: max_inflight_msgs and max_entries_per_msg must be >= 1")


@dataclass(slots=True)
class _ReadRequest:
    index: int
    frm: str
    context: bytes
    acks: set[str] = field(default_factory=set)


class Replicator:
    """Shared state of a Raft node, and what it does while it leads."""

    config: Config
    id: str
    term: int
    lead: str
    role: Role
    log: RaftLog
    voters: set[str]
    learners: set[str]
    prs: dict[str, Progress]
    msgs: list[Message]
    read_states: list[ReadState]
    lead_transferee: str
    ticks: int
    lease_given_up: bool
    reads: list[_ReadRequest]
    reads_waiting_commit: list[tuple[str, bytes]]

    def _send(self, m: Message) -> None:
        self.msgs.append(m)

    def _msg(self, kind: MessageType, to: str, **fields: object) -> None:
        self._send(Message(kind, to, self.id, term=self.term, **fields))  # type: ignore[arg-type]

    def _peers(self) -> list[str]:
        return [p for p in self.prs if p != self.id]

    # -- appending and committing --

    def _append_entries(self, ents: list[Entry]) -> list[Entry]:
        last = self.log.last_index()
        ents = [Entry(self.term, last + 1 + i, e.type, e.data) for i, e in enumerate(ents)]
        self.log.append(ents)
        me = self.prs.get(self.id)
        if me is not None and self.voters == {self.id}:
            # Alone, there is no one to send to before our write: count the entries at
            # once (the host applies a Ready's commits only after persisting it).
            # With peers, they count once durable (``advance``; thesis §10.2.1).
            me.maybe_update(self.log.last_index())
        self._maybe_commit()
        return ents

    def _maybe_commit(self) -> bool:
        match = {p: pr.match for p, pr in self.prs.items() if not pr.is_learner}
        if not self.log.maybe_commit(committed_index(self.voters, match), self.term):
            return False
        if self.reads_waiting_commit and self._committed_in_term():
            waiting, self.reads_waiting_commit = self.reads_waiting_commit, []
            for frm, ctx in waiting:
                self._leader_read_index(frm, ctx)
        return True

    def _committed_in_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    # -- sending entries --

    def _bcast_append(self) -> None:
        for p in self._peers():
            self._maybe_send_append(p, send_if_empty=True)

    def _maybe_send_append(self, to: str, send_if_empty: bool) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        try:
            prev_term = self.log.term(prev)
            ents = self.log.entries(
                pr.next, self.config.max_size_per_msg, self.config.max_entries_per_msg
            )
        except CompactedError:
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._msg(
            MessageType.APP,
            to,
            index=prev,
            log_term=prev_term,
            entries=tuple(ents),
            commit=self.log.committed,
            stamp=self.ticks,
        )
        if ents:
            pr.sent_entries(ents[-1].index)
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: str, pr: Progress) -> bool:
        snap = self.log.snapshot()
        if snap.is_empty():
            raise RuntimeError("log compacted but storage holds no snapshot")
        self._msg(MessageType.SNAP, to, snapshot=snap, stamp=self.ticks)
        pr.become_snapshot(snap.meta.index)
        return True

    def _bcast_heartbeat(self, context: bytes | None = None) -> None:
        if context is None:
            context = self.reads[-1].context if self.reads else b""
        for p in self._peers():
            commit = min(self.prs[p].match, self.log.committed)
            self._msg(MessageType.HEARTBEAT, p, commit=commit, context=context, stamp=self.ticks)

    # -- responses --

    def _handle_append_response(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        pr.heard(m.stamp)
        if m.reject:
            self._handle_append_rejection(m, pr)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index():
            # The follower can continue from our log (it has the snapshot or more).
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.free_inflights_to(m.index)
        if self._maybe_commit():
            self._bcast_append()
        elif old_paused:
            self._maybe_send_append(m.frm, send_if_empty=True)
        while self._maybe_send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send_timeout_now(m.frm)

    def _handle_append_rejection(self, m: Message, pr: Progress) -> None:
        next_probe = m.reject_hint
        if m.log_term > 0:
            # Skip every entry of a term the follower cannot have (fast backtracking).
            next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decr_to(m.index, next_probe):
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
            self._maybe_send_append(m.frm, send_if_empty=True)

    def _handle_heartbeat_response(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        pr.heard(m.stamp)
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.is_paused():
            pr.inflights.popleft()  # a lost append must not stall the pipeline forever
        if pr.match < self.log.last_index():
            self._maybe_send_append(m.frm, send_if_empty=True)
        if m.context:
            self._ack_read(m.frm, m.context)

    def report_snapshot(self, to: str, success: bool) -> None:
        """The host tells how streaming a snapshot to ``to`` ended."""
        pr = self.prs.get(to)
        if self.role is not Role.LEADER or pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not success:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for a heartbeat response before probing again

    def report_unreachable(self, to: str) -> None:
        """The host could not deliver to ``to``: stop pipelining until it answers."""
        pr = self.prs.get(to)
        if self.role is Role.LEADER and pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def _tick_snapshots(self) -> None:
        for pr in self.prs.values():
            if pr.state is ProgressState.SNAPSHOT:
                pr.snapshot_elapsed += 1
                if pr.snapshot_elapsed >= self.config.snapshot_retry_ticks:
                    pr.pending_snapshot = 0
                    pr.become_probe()

    def _send_timeout_now(self, to: str) -> None:
        # The target will campaign at once, and voters grant a transfer's votes even
        # within their lease: from here on this leader must not rely on its lease.
        self.lease_given_up = True
        self._msg(MessageType.TIMEOUT_NOW, to)

    # -- the leader lease --

    def lease_stamp(self) -> int | None:
        """The tick (of this node's count) since which a quorum has heard from us.

        Every voter that acknowledged a message stamped ``s`` reset its leader timer
        when it got it, after this node's tick ``s``, and ignores vote requests (but
        a transfer's) for ``election_tick`` of its own ticks after that.  So no other
        leader can be elected until ``election_tick - 1`` tick intervals have passed
        since our tick ``s`` on a clock that runs no faster than the voters'; the
        host turns that into a deadline on its monotonic clock.  None when this node
        is not the leader, has ordered a transfer, or no quorum has answered a
        message of this term yet.
        """
        if self.role is not Role.LEADER or self.lease_given_up or not self.config.check_quorum:
            return None
        stamps = {p: pr.acked_stamp for p, pr in self.prs.items() if not pr.is_learner}
        stamps[self.id] = self.ticks
        stamp = committed_index(self.voters, stamps)
        return stamp if stamp > 0 else None

    def _active(self, peer: str) -> bool:
        """Heard from within the last election timeout (this node always is)."""
        return peer == self.id or self.prs[peer].silent_ticks < self.config.election_tick

    def _quorum_active(self) -> bool:
        return has_quorum(self.voters, [p for p in self.prs if self._active(p)])

    # -- ReadIndex (§6.4 of the Raft thesis) --

    def _leader_read_index(self, frm: str, context: bytes) -> None:
        if not self._committed_in_term():
            # The leader learns the commit index only once an entry of its term commits.
            self.reads_waiting_commit.append((frm, context))
            return
        if self.voters == {self.id}:
            self._respond_read(frm, self.log.committed, context)
            return
        if any(r.context == context for r in self.reads):
            return
        self.reads.append(_ReadRequest(self.log.committed, frm, context, {self.id}))
        self._bcast_heartbeat(context)

    def _ack_read(self, frm: str, context: bytes) -> None:
        for pos, req in enumerate(self.reads):
            if req.context != context:
                continue
            req.acks.add(frm)
            if has_quorum(self.voters, req.acks):
                # A quorum confirming this request confirms every one queued before it.
                done, self.reads = self.reads[: pos + 1], self.reads[pos + 1 :]
                for r in done:
                    self._respond_read(r.frm, r.index, r.context)
            return

    def _respond_read(self, frm: str, index: int, context: bytes) -> None:
        if frm == self.id:
            self.read_states.append(ReadState(index, context))
        else:
            self._msg(MessageType.READ_INDEX_RESP, frm, index=index, context=context)

    def _has_pending_conf_change(self) -> bool:
        """Committed but unapplied conf changes forbid campaigning (membership unknown)."""
        if self.log.unstable_snapshot is not None:
            return True
        if self.log.committed <= self.log.applied:
            return False
        ents = self.log.slice(self.log.applied + 1, self.log.committed + 1)
        return any(e.type is EntryType.CONF_CHANGE for e in ents)

    def _new_progress(self, peer: str) -> Progress:
        # silent_ticks starts at 0: a new leader, or a member just added, gets one
        # election timeout to be heard from before CheckQuorum counts it as silent.
        pr = Progress(self.log.last_index() + 1, self.config.max_inflight_msgs)
        pr.is_learner = peer in self.learners
        return pr
