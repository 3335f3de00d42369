"""The memo of the commands a node proposed (actors/storage/proposed.py)."""

from __future__ import annotations

from actors.storage.proposed import Proposed
from scheduled_db.state import commands as c


def test_proposed_commands_are_taken_once_by_their_data_and_bounded() -> None:
    memo = Proposed(max_entries=3, max_bytes=1 << 20)
    cmds = [c.DeleteJob(f"j{i}") for i in range(5)]
    for cmd in cmds:
        memo.remember(c.encode_command(cmd), cmd)
    assert len(memo) == 3  # the two oldest were forgotten
    assert memo.take(c.encode_command(cmds[0])) is None
    assert memo.take(bytes(c.encode_command(cmds[4]))) is cmds[4]  # equal bytes, not the object
    assert memo.take(c.encode_command(cmds[4])) is None  # taken once
    small = Proposed(max_entries=100, max_bytes=len(c.encode_command(cmds[0])) * 2)
    for cmd in cmds:
        small.remember(c.encode_command(cmd), cmd)
    assert len(small) == 2
