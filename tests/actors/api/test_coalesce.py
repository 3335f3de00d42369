"""The ProposalBatcher and ReadBatcher: the proposals of one loop iteration become
one Raft entry, its reads one storage message.

Its ``send`` is a stand-in for the Raft actor here (a list of what was sent);
that the entries commit and apply is tested with real nodes in tests/integration.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.api import coalesce
from actors.api.coalesce import ProposalBatcher, ReadBatcher
from actors.raft.messages import ProposeOutcome, Refusal
from actors.runtime.replies import Reply
from actors.storage.messages import ReadResult
from scheduled_db.errors import NotLeader, UnknownOutcome
from scheduled_db.state.commands import Batch, Command, CommandKind, DeleteJob, decode_command
from scheduled_db.state.reads import GetCounters, GetJob, ListJobs, Query
from scheduled_db.state.results import CommandResult, ResultCode


class Raft:
    """Records each entry sent; answers when told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[Command, Reply]] = []
        self.traced: list[tuple[str, ...]] = []

    def send(self, data: bytes, reply: Reply, traced: tuple[str, ...]) -> None:
        self.sent.append((decode_command(data), reply))
        self.traced.append(traced)

    def commands(self, i: int) -> tuple[Command, ...]:
        command = self.sent[i][0]
        return command.commands if isinstance(command, Batch) else (command,)

    def answer(self, i: int, outcome: ProposeOutcome) -> None:
        self.sent[i][1](outcome)


def ok(command: Command) -> CommandResult:
    assert isinstance(command, DeleteJob)
    return CommandResult(ResultCode.OK, CommandKind.DELETE, command.job_id)


async def _until(pred: Any) -> None:
    while not pred():
        await asyncio.sleep(0)


def test_proposals_of_one_iteration_are_one_entry_and_each_gets_its_result() -> None:
    async def main() -> None:
        raft = Raft()
        batcher = ProposalBatcher(raft.send)
        calls = [batcher.propose(DeleteJob(f"j{i}"), 5.0) for i in range(3)]
        waiting = asyncio.gather(*calls)
        await _until(lambda: raft.sent)
        assert len(raft.sent) == 1 and isinstance(raft.sent[0][0], Batch)
        results = tuple(ok(c) for c in raft.commands(0))
        raft.answer(0, ProposeOutcome(index=7, results=results))
        assert [r.job_id for r in await waiting] == ["j0", "j1", "j2"]

    asyncio.run(main())


def test_a_lone_proposal_is_sent_as_itself() -> None:
    async def main() -> None:
        raft = Raft()
        batcher = ProposalBatcher(raft.send)
        task = asyncio.ensure_future(batcher.propose(DeleteJob("solo"), 5.0))
        await _until(lambda: raft.sent)
        assert raft.sent[0][0] == DeleteJob("solo")
        raft.answer(0, ProposeOutcome(index=3, results=(ok(DeleteJob("solo")),)))
        assert (await task).job_id == "solo"

    asyncio.run(main())


def test_a_refused_entry_refuses_every_command_in_it() -> None:
    async def main() -> None:
        raft = Raft()
        batcher = ProposalBatcher(raft.send)
        waiting = asyncio.gather(
            *(batcher.propose(DeleteJob(f"j{i}"), 5.0) for i in range(2)), return_exceptions=True
        )
        await _until(lambda: raft.sent)
        raft.answer(0, ProposeOutcome(error=Refusal.NOT_LEADER, leader="n2"))
        errors = await waiting
        assert all(isinstance(e, NotLeader) for e in errors) and errors[0] is not errors[1]

    asyncio.run(main())


def test_no_answer_in_time_is_an_unknown_outcome_and_a_late_answer_is_dropped() -> None:
    async def main() -> None:
        raft = Raft()
        batcher = ProposalBatcher(raft.send)
        with pytest.raises(UnknownOutcome):
            await batcher.propose(DeleteJob("late"), 0.01)
        raft.answer(0, ProposeOutcome(index=9, results=(ok(DeleteJob("late")),)))
        await asyncio.sleep(0)  # the late answer is settled on the loop: no error

    asyncio.run(main())


def test_a_big_iteration_is_cut_into_bounded_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalesce, "MAX_COMMANDS", 4)

    async def main() -> None:
        raft = Raft()
        batcher = ProposalBatcher(raft.send)
        waiting = asyncio.gather(*(batcher.propose(DeleteJob(f"j{i}"), 5.0) for i in range(10)))
        await _until(lambda: len(raft.sent) == 3)
        assert [len(raft.commands(i)) for i in range(3)] == [4, 4, 2]
        for i in range(3):
            raft.answer(i, ProposeOutcome(index=i, results=tuple(map(ok, raft.commands(i)))))
        assert [r.job_id for r in await waiting] == [f"j{i}" for i in range(10)]

    asyncio.run(main())


def test_reads_of_one_iteration_are_one_storage_message_each_with_its_answer() -> None:
    async def main() -> None:
        sent: list[tuple[tuple[Query, ...], Reply]] = []
        reads = ReadBatcher(lambda queries, reply: sent.append((queries, reply)))
        waiting = asyncio.gather(
            reads.read(GetJob("a"), 5.0),
            reads.read(GetCounters(), 5.0),
            reads.read(ListJobs(cursor="%%%"), 5.0),
            return_exceptions=True,
        )
        await _until(lambda: sent)
        queries, reply = sent[0]
        assert len(sent) == 1 and queries == (GetJob("a"), GetCounters(), ListJobs(cursor="%%%"))
        reply((ReadResult(0, None), ReadResult(1, 42), ReadResult(2, None, "bad cursor")))
        job, counters, bad = await waiting
        assert job is None and counters == 42
        assert isinstance(bad, ValueError) and "cursor" in str(bad)

    asyncio.run(main())
