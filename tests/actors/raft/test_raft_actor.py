"""The RaftActor with a real StorageActor on RocksDB, as a group of one and of three.

A probe actor stands in for the transport of a 3-node group, so the test decides
which messages reach whom; no sleeps, only bounded waits on conditions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.raft.actor import PROMOTE_CHECK_TICKS, RaftActor, RaftSettings
from actors.raft.hooks import RaftHooks
from actors.raft.messages import (
    Campaign,
    GetRaftStatus,
    Leadership,
    Propose,
    ProposeConfChange,
    ProposeOutcome,
    Refusal,
    SendMessages,
    SetPeers,
    SubscribeLeadership,
)
from actors.runtime.replies import wait_reply
from actors.storage.actor import StorageActor
from actors.storage.messages import DiskFull, Read
from actors.storage.store import NodeStore
from scheduled_db.config.loading import load_config
from scheduled_db.jobs.model import JobSpec, JobType
from scheduled_db.raft.messages import ConfChange, ConfChangeType
from scheduled_db.state import commands as c
from scheduled_db.state.reads import GetJob
from scheduled_db.state.records import encode_member
from scheduled_db.state.results import ResultCode
from scheduled_db.testing.harness import wait_until
from tests.actors.probe import Inbox, start_probe

T = 10.0  # seconds: the bound on waiting for an actor's answer


def _create(job_id: str) -> bytes:
    spec = JobSpec(id=job_id, type=JobType.UNICO, timestamp_ms=2_000_000_000_000)
    return c.encode_command(c.CreateJob(spec, 1_000, 2_000_000_000_000))


class Member:
    """One node's storage and raft actors over a real data directory."""

    def __init__(self, path: Path, node_id: str, voters: tuple[str, ...]) -> None:
        self.path, self.node_id, self.voters = path, node_id, voters
        self.transport, self.sent = start_probe()
        self.events, self.inbox = start_probe()
        self.refs: list[pykka.ActorRef[Any]] = []

    def start(self, tick_ms: int = 20, hooks: RaftHooks | None = None) -> None:
        store = NodeStore.open(self.path, self.node_id)
        self.store = store
        if store.log.last_index() == 0:
            store.bootstrap(self.voters)
        self.storage = StorageActor.start(store)
        timing = {
            "raft.heartbeat_interval": f"{tick_ms}ms",
            "raft.election_timeout": f"{10 * tick_ms}ms",
        }
        config = load_config(timing, {}, None, "test")
        settings = RaftSettings.from_config(self.node_id, config.raft)
        self.raft = RaftActor.start(
            settings,
            store.log,
            store.applied()[0],
            self.storage,
            self.transport,
            seed=1,
            hooks=hooks,
        )
        self.refs = [self.raft, self.storage]
        self.raft.tell(SubscribeLeadership(self.events))

    def propose(self, data: bytes) -> ProposeOutcome:
        outbox = Inbox()
        self.raft.tell(Propose(data, outbox.put))
        return outbox.wait_for(ProposeOutcome)

    def stop(self) -> None:
        for ref in self.refs:
            ref.stop()


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[Member]:
    node = Member(tmp_path / "n1", "n1", ("n1",))
    node.start()
    yield node
    node.stop()
    node.transport.stop()
    node.events.stop()


def test_a_group_of_one_elects_itself_and_announces_established_leadership(
    solo: Member,
) -> None:
    event = solo.inbox.wait_for(Leadership, lambda e: e.established)
    assert (event.leader, event.is_leader) == ("n1", True)


def test_a_proposal_is_answered_with_its_applied_result(solo: Member) -> None:
    solo.inbox.wait_for(Leadership, lambda e: e.established)
    outcome = solo.propose(_create("a"))
    assert outcome.error is None
    assert [r.code for r in outcome.results] == [ResultCode.OK]
    again = solo.propose(_create("a"))
    assert [r.code for r in again.results] == [ResultCode.EXISTS_IDENTICAL]
    job = wait_reply(solo.storage, lambda r: Read(1, GetJob("a"), r), T).value
    assert job is not None and job.id == "a"


def test_state_survives_a_restart_on_the_same_directory(tmp_path: Path) -> None:
    node = Member(tmp_path / "n1", "n1", ("n1",))
    node.start()
    node.inbox.wait_for(Leadership, lambda e: e.established)
    assert node.propose(_create("kept")).error is None
    node.stop()
    again = Member(tmp_path / "n1", "n1", ("n1",))
    again.start()
    try:
        again.inbox.wait_for(Leadership, lambda e: e.established)
        assert wait_reply(again.storage, lambda r: Read(1, GetJob("kept"), r), T).value is not None
        status = wait_reply(again.raft, GetRaftStatus, T)
        assert status.term > 1 and status.commit >= 3
    finally:
        again.stop()
        for probe in (node.transport, node.events, again.transport, again.events):
            probe.stop()


def test_a_leader_whose_disk_is_full_refuses_proposals_until_space_returns(
    solo: Member,
) -> None:
    solo.inbox.wait_for(Leadership, lambda e: e.established)
    solo.raft.tell(DiskFull(True))  # as the StorageActor publishes it
    assert solo.propose(_create("refused")).error is Refusal.DISK_FULL
    solo.raft.tell(DiskFull(False))
    assert solo.propose(_create("accepted")).error is None
    assert wait_reply(solo.storage, lambda r: Read(1, GetJob("refused"), r), T).value is None


class Recorder:
    """RaftHooks that record every call (read after an ask, which is a barrier)."""

    def __init__(self) -> None:
        self.elected = 0
        self.refused = 0
        self.applied: list[int] = []
        self.disk_full: list[bool] = []
        self.hooks = RaftHooks(
            leader_elected=self._elected,
            applied=self.applied.append,
            disk_full=self.disk_full.append,
            refused_for_space=self._refused,
        )

    def _elected(self) -> None:
        self.elected += 1

    def _refused(self) -> None:
        self.refused += 1


def test_hooks_report_the_election_a_full_disk_and_each_refusal(tmp_path: Path) -> None:
    node, seen = Member(tmp_path / "n1", "n1", ("n1",)), Recorder()
    node.start(hooks=seen.hooks)
    try:
        node.inbox.wait_for(Leadership, lambda e: e.established)
        node.raft.tell(DiskFull(True))
        for name in ("a", "b"):
            assert node.propose(_create(name)).error is Refusal.DISK_FULL
        node.raft.tell(DiskFull(False))
        assert node.propose(_create("c")).error is None
        node.raft.ask(GetRaftStatus(lambda _: None))  # a barrier: every hook has run
        assert seen.elected == 1  # one election, however many leadership events
        assert seen.disk_full == [True, False]
        assert seen.refused == 2
    finally:
        node.stop()
        node.transport.stop()
        node.events.stop()


class GatedStore:
    """Holds the real store's ``apply`` until the gate opens."""

    def __init__(self, store: NodeStore) -> None:
        self.gate = threading.Event()
        self._apply = store.apply
        store.apply = self.apply  # type: ignore[method-assign, assignment]  # a test double

    def apply(self, *args: Any) -> Any:
        assert self.gate.wait(T), "the test never opened the gate"
        return self._apply(*args)


def test_the_applied_hook_follows_the_storage_not_the_hand_over(tmp_path: Path) -> None:
    """The core counts an entry applied once it is handed to storage; the hook (and
    the ``raft_applied_index`` gauge) waits until the storage has applied it."""
    node, seen = Member(tmp_path / "n1", "n1", ("n1",)), Recorder()
    node.start(hooks=seen.hooks)
    gated = GatedStore(node.store)
    try:
        gated.gate.set()
        node.inbox.wait_for(Leadership, lambda e: e.established)
        gated.gate.clear()
        node.raft.tell(Propose(_create("held"), lambda _: None))

        def handed_over_not_applied() -> bool:
            core = wait_reply(node.raft, GetRaftStatus, T)
            return bool(core.applied == core.commit > seen.applied[-1])

        wait_until(handed_over_not_applied, T, "the core to hand over what storage holds")
        gated.gate.set()
        commit = wait_reply(node.raft, GetRaftStatus, T).commit
        wait_until(lambda: seen.applied[-1] == commit, T, "the storage to apply the entry")
    finally:
        gated.gate.set()
        node.stop()
        node.transport.stop()
        node.events.stop()


def test_a_follower_refuses_proposals_naming_no_leader(tmp_path: Path) -> None:
    node = Member(tmp_path / "n1", "n1", ("n1", "n2", "n3"))
    node.start(tick_ms=10_000)  # no election will start on its own during the test
    try:
        outcome = node.propose(_create("x"))
        assert (outcome.error, outcome.leader) == (Refusal.NOT_LEADER, "")
        node.raft.tell(DiskFull(True))  # a follower's full disk: the leader may have room
        assert node.propose(_create("x")).error is Refusal.NOT_LEADER
    finally:
        node.stop()
        node.transport.stop()
        node.events.stop()


def test_a_campaign_asks_the_other_voters_for_pre_votes(tmp_path: Path) -> None:
    node = Member(tmp_path / "n1", "n1", ("n1", "n2", "n3"))
    node.start(tick_ms=10_000)
    try:
        node.raft.tell(Campaign())
        sent = node.sent.wait_for(SendMessages)
        assert {msg.to for msg in sent.messages} == {"n2", "n3"}
        assert {msg.type.name for msg in sent.messages} == {"PRE_VOTE"}
        status = wait_reply(node.raft, GetRaftStatus, T)
        assert status.role.value == "pre_candidate"
    finally:
        node.stop()
        node.transport.stop()
        node.events.stop()


def test_a_learner_that_never_answered_is_not_promoted(solo: Member) -> None:
    """Found by schemathesis: a young cluster (commit index under the promotion lag)
    promoted a learner at an address nobody answers, and lost its quorum."""
    solo.inbox.wait_for(Leadership, lambda e: e.established)
    outbox = Inbox()
    join = ConfChange(ConfChangeType.ADD_LEARNER, "ghost", encode_member("127.0.0.1:9", ""))
    solo.raft.tell(ProposeConfChange(join, outbox.put))
    assert outbox.wait_for(ProposeOutcome).error is None

    def heartbeats_to_ghost() -> int:
        sent = solo.sent.of_type(SendMessages)
        return sum(1 for batch in sent for msg in batch.messages if msg.to == "ghost")

    # One heartbeat a tick: by this many, the leader has looked to promote it 4 times.
    wait_until(lambda: heartbeats_to_ghost() >= 4 * PROMOTE_CHECK_TICKS, 10, "ticks")
    conf = wait_reply(solo.raft, GetRaftStatus, T).conf_state
    assert "ghost" in conf.learners and "ghost" not in conf.voters
    assert solo.propose(_create("still-writable")).error is None


def test_the_transport_knows_the_peers_before_the_first_message_leaves(tmp_path: Path) -> None:
    """The members read is told to storage, not waited on; storage answers in order,
    so the peers reach the transport before any Ready's messages do."""
    node = Member(tmp_path / "n1", "n1", ("n1", "n2", "n3"))
    node.start(tick_ms=10_000)
    try:
        node.raft.tell(Campaign())
        node.sent.wait_for(SendMessages)
        kinds = [type(msg) for msg in node.sent.items]
        assert SetPeers in kinds
        assert kinds.index(SetPeers) < kinds.index(SendMessages)
    finally:
        node.stop()
        node.transport.stop()
        node.events.stop()


def test_a_member_that_joins_is_dialled_at_the_address_it_recorded(solo: Member) -> None:
    solo.inbox.wait_for(Leadership, lambda e: e.established)
    outbox = Inbox()
    join = ConfChange(ConfChangeType.ADD_LEARNER, "n9", encode_member("127.0.0.1:9", ""))
    solo.raft.tell(ProposeConfChange(join, outbox.put))
    assert outbox.wait_for(ProposeOutcome).error is None
    peers = solo.sent.wait_for(SetPeers, lambda s: s.peers != ())
    assert peers == SetPeers.of({"n9": ("127.0.0.1", 9)})


def test_an_answer_for_an_asker_that_is_gone_is_dropped_and_raft_lives_on(
    solo: Member,
) -> None:
    solo.inbox.wait_for(Leadership, lambda e: e.established)
    gone, _ = start_probe()
    gone.stop()
    solo.raft.tell(Propose(_create("orphan"), gone.tell))  # the asker stopped meanwhile
    solo.raft.tell(GetRaftStatus(gone.tell))
    assert solo.propose(_create("after")).error is None
    assert solo.raft.is_alive()
    assert wait_reply(solo.storage, lambda r: Read(1, GetJob("orphan"), r), T).value is not None
