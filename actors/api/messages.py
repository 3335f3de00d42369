"""Messages of the HttpActor (actors/api/actor.py).

Every message is a frozen dataclass; a request that is answered carries a
``reply`` (:data:`actors.runtime.replies.Reply`).  See docs/architecture.md,
"One way to reply".
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.runtime.replies import Reply


@dataclass(frozen=True, slots=True)
class GetBoundPorts:
    """The HttpActor's :class:`~actors.api.actor.Ports` (api, metrics) to ``reply``,
    once it is listening."""

    reply: Reply
