"""A cluster listed by Raft address alone forms once every address has answered:
RaftActors with real StorageActors (RocksDB) and real TransportActors on 127.0.0.1,
wired as actors/node.py wires them.  Bounded waits on conditions only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.raft.actor import RaftActor, RaftSettings
from actors.raft.identify import HttpEndpoint
from actors.raft.messages import (
    GetLearnedPeers,
    GetRaftStatus,
    Leadership,
    PeerIdentified,
    SetTransportInbox,
    SubscribeLeadership,
)
from actors.raft.transport import TransportActor
from actors.runtime.replies import wait_reply
from actors.storage.actor import StorageActor
from actors.storage.store import NodeStore
from scheduled_db.config.loading import load_config
from scheduled_db.raft.core import Status
from scheduled_db.raft.formation import Formation
from scheduled_db.testing.harness import wait_until
from tests.actors.probe import start_probe

HOST = "127.0.0.1"
T = 10.0
TIMING = {"raft.heartbeat_interval": "20ms", "raft.election_timeout": "200ms"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Node:
    """Storage, transport and raft of one node; ``listed`` are the Raft addresses of
    the cluster (the original's STATIC_PEERS), whatever this node's own."""

    def __init__(self, path: Path, node_id: str, port: int, listed: tuple[int, ...]) -> None:
        self.path, self.node_id, self.port, self.listed = path, node_id, port, listed
        self.refs: list[pykka.ActorRef[Any]] = []
        self.events, self.inbox = start_probe()

    def start(self, expect: int | None = None) -> None:
        store = NodeStore.open(self.path, self.node_id)
        addresses = tuple(f"{HOST}:{p}" for p in self.listed)
        formation = None if store.has_raft_state() else Formation(self.node_id, addresses, expect)
        storage = StorageActor.start(store)
        transport = TransportActor.start(
            self.node_id,
            (HOST, self.port),
            {},
            None,  # the original's compose: no secret
            identify=tuple((HOST, p) for p in self.listed),
            http=HttpEndpoint("", 8000 + self.port % 1000),
        )
        settings = RaftSettings.from_config(self.node_id, load_config(TIMING, {}, None, "t").raft)
        self.raft = RaftActor.start(
            settings, store.log, store.applied()[0], storage, transport, formation=formation
        )
        transport.tell(SetTransportInbox(self.raft))
        self.refs = [self.raft, transport, storage]
        self.raft.tell(SubscribeLeadership(self.events))

    def status(self) -> Status:
        status: Status = wait_reply(self.raft, GetRaftStatus, T)
        return status

    def stop(self) -> None:
        for ref in self.refs:
            if ref.is_alive():
                ref.stop(timeout=T)
        self.refs = []


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    ports = tuple(free_port() for _ in range(3))
    nodes = [Node(tmp_path / f"n{i}", f"node-{i}", p, ports) for i, p in enumerate(ports, 1)]
    yield nodes
    for node in nodes:
        node.stop()
        node.events.stop()


def leaders(nodes: list[Node]) -> set[str]:
    return {n.status().lead for n in nodes}


def test_three_nodes_listed_by_address_form_one_cluster(cluster: list[Node]) -> None:
    for node in cluster:
        node.start(expect=3)
    wait_until(lambda: len(leaders(cluster)) == 1 and "" not in leaders(cluster), T, "a leader")
    for node in cluster:
        status = node.status()
        assert status.conf_state.voters == ("node-1", "node-2", "node-3")
    learned = wait_reply(cluster[0].raft, GetLearnedPeers, T)
    assert {(p.node_id, p.raft_address) for p in learned} == {
        ("node-2", f"{HOST}:{cluster[1].port}"),
        ("node-3", f"{HOST}:{cluster[2].port}"),
    }
    assert all(p.http_address.startswith(f"{HOST}:") for p in learned)


def test_a_node_whose_peers_never_answer_is_no_voter_and_never_leads(
    cluster: list[Node],
) -> None:
    alone = cluster[0]
    alone.start(expect=3)
    # Let it tick through five election timeouts (10 ticks each): a voter alone would
    # have elected itself in the first.

    def ticked() -> bool:
        return int(alone.raft.proxy().core.get(timeout=T).ticks) >= 50

    wait_until(ticked, T, "five election timeouts of ticks")
    status = alone.status()
    assert status.conf_state.voters == () and status.lead == "" and status.term == 0
    assert [e for e in alone.inbox.of_type(Leadership) if e.is_leader] == []


def test_a_late_node_lets_the_cluster_form_and_a_restart_never_bootstraps_again(
    cluster: list[Node],
) -> None:
    first, second, late = cluster
    first.start()
    second.start()
    wait_until(lambda: first.status().conf_state.voters == (), T, "first waiting")
    late.start()
    wait_until(lambda: len(leaders(cluster)) == 1 and "" not in leaders(cluster), T, "a leader")
    late.stop()
    late.start()  # with Raft state: no formation, same voters, and it rejoins
    wait_until(lambda: late.status().lead not in ("", None), T, "the restarted node to follow")
    assert late.status().conf_state.voters == ("node-1", "node-2", "node-3")


def test_a_list_that_reaches_another_number_than_expected_stops_the_node(
    cluster: list[Node],
) -> None:
    for node in cluster[1:]:
        node.start()
    wrong = cluster[0]
    wrong.start(expect=4)  # three nodes answer, this one included
    wait_until(lambda: not wrong.raft.is_alive(), T, "the raft actor to stop")


def test_the_transport_tells_the_raft_actor_who_it_found(cluster: list[Node]) -> None:
    node = cluster[0]
    node.start(expect=3)
    ref, inbox = start_probe()
    try:
        node.refs[1].tell(SetTransportInbox(ref))  # the transport replays what it found
        own = inbox.wait_for(PeerIdentified, lambda p: p.node_id == "node-1")
        assert own.address == f"{HOST}:{node.port}"
    finally:
        ref.stop()
