"""The node supervisor: start order, let-it-crash, clean stop."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from actors.node import Node
from actors.storage.messages import ReadyPersisted
from scheduled_db.config.loading import load_config
from scheduled_db.config.model import NodeConfig
from scheduled_db.raft.messages import HardState


def _config(tmp_path: Path) -> NodeConfig:
    cfg = load_config({"node.data_dir": str(tmp_path / "data")}, {}, None, "test")
    return dataclasses.replace(
        cfg,
        http=dataclasses.replace(cfg.http, host="127.0.0.1", port=0),
        metrics=dataclasses.replace(cfg.metrics, port=0),
    )


def test_a_crashing_actor_stops_the_node_with_a_failure_naming_it(tmp_path: Path) -> None:
    node = Node(_config(tmp_path))
    node.start()
    try:
        raft = next(a.ref for a in node._actors if a.name == "raft")
        # A persisted-notice for a Ready that was never in flight is a host bug: the
        # actor raises, Pykka stops it, and the supervisor must notice.
        raft.tell(ReadyPersisted(999, HardState(), 0, 0))
        result: list[int] = []
        waiter = threading.Thread(target=lambda: result.append(node.wait()))
        waiter.start()
        waiter.join(timeout=10)
        assert result == [1]
        assert node.failure is not None and "raft" in node.failure
    finally:
        node.stop()


def test_a_requested_stop_returns_zero_and_stops_every_actor(tmp_path: Path) -> None:
    node = Node(_config(tmp_path))
    node.start()
    refs = [a.ref for a in node._actors]
    assert node.http_port > 0
    node.request_stop()
    assert node.wait() == 0
    node.stop()
    assert not any(ref.is_alive() for ref in refs)
