"""Forming a new cluster whose members are listed by Raft address alone.

The original's compose files list peers as ``STATIC_PEERS=host:7000,...``, with no
node ids, and Raft's initial configuration is a set of ids.  So a node given such
a list first learns who answers at each address (the transport's probes,
:mod:`actors.raft.identify`), and bootstraps only once it knows them all: the
voters are then this node and every id the addresses reached, sorted.  Every node
given the same list reaches the same nodes, so every node bootstraps the same
configuration, whatever the order they start in; none ever bootstraps alone, as a
node waiting for its peers is not a voter of anything and cannot be elected.

Why every listed address and not the first ``bootstrap_expect`` of them: two
nodes that stopped at different subsets would bootstrap different
configurations, and each could elect a leader (a split brain).  So
``bootstrap_expect`` (which counts this node, unlike the original's, which
counted only the others and so could never be met by a full list) only says how
many nodes that is; a list that reaches another number is a configuration error
(:meth:`Formation.problem`).

A node that already has Raft state never bootstraps again; it probes all the
same, to learn where its peers are.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Formation:
    """What one node knows of the cluster it is to form.

    ``addresses`` are the listed Raft addresses (``host:port``); ``expect`` the
    number of nodes the cluster must have, this one included (None: whatever the
    addresses reach).
    """

    node_id: str
    addresses: tuple[str, ...]
    expect: int | None = None
    _ids: dict[str, str] = field(default_factory=dict)  # address -> node id

    def identified(self, address: str, node_id: str) -> None:
        """The node at ``address`` is ``node_id`` (an address not listed is ignored)."""
        if address in self.addresses:
            self._ids[address] = node_id

    def waiting_for(self) -> tuple[str, ...]:
        """The listed addresses that have not answered yet."""
        return tuple(a for a in self.addresses if a not in self._ids)

    def members(self) -> tuple[str, ...]:
        """This node and every node identified so far, sorted."""
        return tuple(sorted({self.node_id, *self._ids.values()}))

    def problem(self) -> str | None:
        """Why this cluster can never form as configured, if it cannot."""
        members = self.members()
        if self.expect is None:
            return None
        if len(members) > self.expect or (not self.waiting_for() and len(members) < self.expect):
            return (
                f"cluster.bootstrap_expect is {self.expect} (this node included), but the "
                f"listed addresses reach {len(members)} nodes: {', '.join(members)}"
            )
        return None

    def voters(self) -> tuple[str, ...] | None:
        """The initial voters, once every listed address has answered (and their
        number is what is expected); None until then."""
        if self.waiting_for() or self.problem() is not None:
            return None
        return self.members()
