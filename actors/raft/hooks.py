"""What the RaftActor reports as it happens, for the node's metrics.

A :class:`RaftHooks` holds plain callables, called on the Raft actor's thread the
moment something happens, so a gauge is right between scrapes too and the actor
never waits for anyone.  Each hook must be quick and must not block (a Prometheus
counter's ``inc`` or a gauge's ``set``); the defaults do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _ignore(*_: object) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RaftHooks:
    """The callbacks of one RaftActor.

    ``leader_elected()``: this node learnt of a new leader (another node, or a new
    term of the same one); losing the leader is not counted, so one failover is one
    call.  ``applied(index)``: the state machine applied everything up to ``index``
    (the storage's applied index, not the core's "handed over" one).
    ``disk_full(full)``: this node's storage found its disk full, or room again.
    ``refused_for_space()``: a proposal was refused because this leader's disk is full.
    """

    leader_elected: Callable[[], None] = _ignore
    applied: Callable[[int], None] = _ignore
    disk_full: Callable[[bool], None] = _ignore
    refused_for_space: Callable[[], None] = _ignore
