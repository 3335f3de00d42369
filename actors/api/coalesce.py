"""Writes proposed in one turn of the HTTP event loop go to Raft as one entry;
the reads of one turn go to storage in one message.

Under load many requests reach their proposal in the same loop iteration.  Sent
one by one, each pays the hand-off to the Raft thread, its own log entry (encode,
persist, replicate, apply, answer) and the hop back.  Gathered, they pay that once:
the :class:`ProposalBatcher` queues the commands of an iteration and, at its end
(``loop.call_soon``), proposes them as one :class:`~scheduled_db.state.commands.Batch`
entry, whose commands the state machine applies one by one with a result each
(a rejected one does not stop the others).  A lone command is proposed as itself.

Each command is encoded once, when proposed: the entry's data is assembled from
those bytes (:func:`~scheduled_db.state.commands.encode_batch`).  With a
:class:`~actors.storage.proposed.Proposed` memo, the entry's commands are
remembered by its data, so this node's state machine applies them undecoded.

Each caller waits for its own result with its own timeout; a refusal of the entry
(not the leader, dropped, disk full) is the refusal of every command in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.api.backend import refusal_error
from actors.raft.messages import ProposeOutcome
from actors.runtime import tracing
from actors.runtime.replies import Reply, loop_callback
from actors.storage.messages import ReadResult
from actors.storage.proposed import Proposed
from scheduled_db.errors import UnknownOutcome
from scheduled_db.state.commands import Batch, Command, encode_batch, encode_command
from scheduled_db.state.reads import Query
from scheduled_db.state.results import CommandResult

MAX_COMMANDS = 256  # commands in one entry
MAX_BYTES = 256 << 10  # encoded bytes in one entry (a Raft message carries up to 1 MiB)

# Sends one entry's data to the Raft actor; the reply gets its ProposeOutcome.  The
# traceparents are those of the traced requests among the entry's (none when off).
Send = Callable[[bytes, Reply, tuple[str, ...]], None]


@dataclass(slots=True)
class _Waiting:
    command: Command
    data: bytes  # the command's encoding
    future: asyncio.Future[CommandResult]
    traceparent: str | None  # of the request that proposed it, when tracing is on


class ProposalBatcher:
    """Gathers the proposals of one loop iteration; see the module docstring."""

    def __init__(self, send: Send, proposed: Proposed | None = None) -> None:
        self._send = send
        self._proposed = proposed
        self._queue: list[_Waiting] = []

    async def propose(self, command: Command, timeout: float) -> CommandResult:
        """The command's result; raises the entry's refusal, or UnknownOutcome when no
        answer came in ``timeout`` seconds (the entry may still commit)."""
        loop = asyncio.get_running_loop()
        data = encode_command(command)
        waiting = _Waiting(command, data, loop.create_future(), tracing.current_traceparent())
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append(waiting)
        try:
            return await asyncio.wait_for(waiting.future, timeout)
        except TimeoutError:
            raise UnknownOutcome(f"no outcome within {timeout:g} s") from None

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        loop = asyncio.get_running_loop()
        group: list[_Waiting] = []
        size = 0
        for waiting in queue:
            if group and (len(group) >= MAX_COMMANDS or size + len(waiting.data) > MAX_BYTES):
                self._propose(loop, group)
                group, size = [], 0
            group.append(waiting)
            size += len(waiting.data)
        if group:
            self._propose(loop, group)

    def _propose(self, loop: asyncio.AbstractEventLoop, group: list[_Waiting]) -> None:
        if len(group) == 1:
            command, data = group[0].command, group[0].data
        else:
            command = Batch(tuple(w.command for w in group))
            data = encode_batch([w.data for w in group])
        if self._proposed is not None:
            self._proposed.remember(data, command)
        traced = tuple(w.traceparent for w in group if w.traceparent is not None)
        self._send(data, loop_callback(loop, lambda outcome: _settle(group, outcome)), traced)


def _settle(group: list[_Waiting], outcome: ProposeOutcome) -> None:
    """Give each waiter (still waiting) its result, or the entry's refusal."""
    for i, waiting in enumerate(group):
        if waiting.future.done():  # it timed out, and was told so
            continue
        if outcome.error is not None:
            waiting.future.set_exception(
                refusal_error(outcome.error, outcome.leader, outcome.detail)
            )
        elif len(outcome.results) != len(group):
            waiting.future.set_exception(
                RuntimeError(f"expected {len(group)} results, got {len(outcome.results)}")
            )
        else:
            waiting.future.set_result(outcome.results[i])


# Sends the queries of one loop turn to the storage actor; the reply gets a tuple
# of ReadResult, one per query in order.
SendReads = Callable[[tuple[Query, ...], Reply], None]


class ReadBatcher:
    """Gathers the reads of one loop iteration into one storage hop, as
    :class:`ProposalBatcher` does proposals (a create reads the counters for
    admission before proposing; a GET reads what it shows)."""

    def __init__(self, send: SendReads) -> None:
        self._send = send
        self._queue: list[tuple[Query, asyncio.Future[Any]]] = []

    async def read(self, query: Query, timeout: float) -> Any:
        """The query's value; ValueError for a query storage refused (a bad cursor)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((query, future))
        return await asyncio.wait_for(future, timeout)

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        loop = asyncio.get_running_loop()

        def answered(results: tuple[ReadResult, ...]) -> None:
            for (_, future), result in zip(queue, results, strict=True):
                if future.done():  # it timed out
                    continue
                if result.error is not None:
                    future.set_exception(ValueError(result.error))
                else:
                    future.set_result(result.value)

        self._send(tuple(q for q, _ in queue), loop_callback(loop, answered))
