"""actors/runtime/ports.py: each port a node will listen on is tried before it starts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from actors.runtime.ports import PortInUse, check_ports, listeners
from scheduled_db.config.loading import NodeConfig, load_config
from scheduled_db.testing.harness import free_port


@contextmanager
def listening() -> Iterator[int]:
    """A port some other program listens on, on every interface."""
    with socket.create_server(("0.0.0.0", 0)) as sock:
        yield int(sock.getsockname()[1])


def config(http: int, metrics: int, raft: int, peers: bool = False) -> NodeConfig:
    flags: dict[str, object] = {"http.port": http, "metrics.port": metrics, "raft.port": raft}
    if peers:
        flags["cluster.members"] = f"127.0.0.1:{raft},127.0.0.1:{free_port()}"
    return load_config(flags, {}, None, "test")


def test_free_ports_pass() -> None:
    check_ports(config(free_port(), free_port(), free_port(), peers=True))


@pytest.mark.parametrize("key", ["http.port", "metrics.port", "raft.port"])
def test_a_port_in_use_is_named_by_its_key(key: str) -> None:
    with listening() as busy:
        ports = {"http.port": free_port(), "metrics.port": free_port(), "raft.port": free_port()}
        ports[key] = busy
        cfg = config(ports["http.port"], ports["metrics.port"], ports["raft.port"], peers=True)
        with pytest.raises(PortInUse) as caught:
            check_ports(cfg)
    assert str(caught.value) == f"{key} {busy} on 0.0.0.0 cannot be used: in use by another process"


def test_only_the_listeners_the_node_opens_are_tried() -> None:
    with listening() as busy:
        check_ports(config(free_port(), 0, busy))  # no peers: no Raft listener; no metrics
    assert [k for k, _, _ in listeners(config(1, 0, 2))] == ["http.port"]
