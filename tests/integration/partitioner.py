"""A mesh of :class:`~tests.integration.tcp_proxy.TcpProxy` between cluster nodes,
so a test can cut the network between any groups of them and heal it."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from tests.integration.tcp_proxy import Mode, TcpProxy


class Partitioner:
    """One :class:`TcpProxy` per ordered pair of a mesh of nodes.

    ``raft_ports`` maps each node id to the port its Raft transport really listens
    on.  Node *i* must dial peer *j* at :meth:`address` ``(i, j)``: that proxy
    carries what *i* sends to *j* (the transport's dialled connections are
    send-only, so *j* -> *i* traffic rides the ``(j, i)`` proxy).

    :meth:`isolate` and :meth:`split` only add partitions (an earlier one stays);
    :meth:`heal` puts every proxy back to pass through.  Per-link faults are on
    :meth:`proxy`.
    """

    def __init__(self, raft_ports: Mapping[str, int], host: str = "127.0.0.1") -> None:
        if len(raft_ports) < 2:
            raise ValueError("a mesh needs at least two nodes")
        self.nodes = tuple(raft_ports)
        self._proxies = {
            (i, j): TcpProxy((host, raft_ports[j]), host=host)
            for i, j in itertools.permutations(self.nodes, 2)
        }

    def start(self) -> Partitioner:
        try:
            for p in self._proxies.values():
                p.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for p in self._proxies.values():
            p.close()

    def __enter__(self) -> Partitioner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def proxy(self, i: str, j: str) -> TcpProxy:
        """The proxy that carries node ``i``'s connections to node ``j``."""
        try:
            return self._proxies[(i, j)]
        except KeyError:
            raise KeyError(f"no proxy for {i!r} -> {j!r}; nodes are {self.nodes}") from None

    def address(self, i: str, j: str) -> str:
        """``host:port`` to give node ``i`` as peer ``j``'s Raft address."""
        p = self.proxy(i, j)
        return f"{p.host}:{p.port}"

    def isolate(self, node: str) -> None:
        """Cut ``node`` off from every other node, both directions."""
        self.split([node], [n for n in self.nodes if n != node])

    def split(self, group_a: Iterable[str], group_b: Iterable[str]) -> None:
        """Blackhole every link between a node of ``group_a`` and one of ``group_b``."""
        a, b = set(group_a), set(group_b)
        unknown = (a | b) - set(self.nodes)
        if unknown or a & b or not a or not b:
            raise ValueError(f"split needs two disjoint non-empty groups of {self.nodes}")
        for i, j in itertools.product(a, b):
            self.proxy(i, j).blackhole()
            self.proxy(j, i).blackhole()

    def heal(self) -> None:
        """Every link back to pass through (connections broken by a partition are reset)."""
        for p in self._proxies.values():
            p.pass_through()

    def blackholed(self) -> frozenset[tuple[str, str]]:
        """The (i, j) pairs whose proxy is blackholed now."""
        return frozenset(k for k, p in self._proxies.items() if p.mode is Mode.BLACKHOLE)
