"""Fixtures of the deployment tests: the compose topology as local processes.

One set of processes serves the whole session (starting three nodes is the slow
part); a test that kills a node restarts it before it returns.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.topology import (
    ComposeNode,
    Nginx,
    Prometheus,
    all_addresses,
    require,
    start_nodes,
    stop_all,
)


@pytest.fixture(scope="session")
def compose_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ComposeNode]]:
    nodes = start_nodes(tmp_path_factory.mktemp("compose"))
    try:
        yield nodes
    finally:
        stop_all(nodes)


@pytest.fixture(scope="session")
def lb(
    compose_nodes: list[ComposeNode], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    require("nginx", "nginx")
    nginx = Nginx(tmp_path_factory.mktemp("lb") / "nginx", all_addresses(compose_nodes))
    nginx.start()
    try:
        yield nginx
    finally:
        nginx.stop()


@pytest.fixture(scope="session")
def prometheus(
    compose_nodes: list[ComposeNode], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    require("prometheus", "prometheus")
    server = Prometheus(
        tmp_path_factory.mktemp("prom") / "prometheus", all_addresses(compose_nodes)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
