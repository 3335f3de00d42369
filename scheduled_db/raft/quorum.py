"""Majority arithmetic: the commit index a quorum has reached, and vote tallies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum


class VoteResult(Enum):
    PENDING = 0
    WON = 1
    LOST = 2


def majority(n: int) -> int:
    return n // 2 + 1


def committed_index(voters: Iterable[str], match: Mapping[str, int]) -> int:
    """The largest index replicated on a majority of ``voters`` (0 with no voters)."""
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    if not acked:
        return 0
    return acked[majority(len(acked)) - 1]


def vote_result(voters: Iterable[str], votes: Mapping[str, bool]) -> VoteResult:
    voter_list = list(voters)
    need = majority(len(voter_list))
    granted = sum(1 for v in voter_list if votes.get(v) is True)
    rejected = sum(1 for v in voter_list if votes.get(v) is False)
    if granted >= need:
        return VoteResult.WON
    if len(voter_list) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Iterable[str], present: Iterable[str]) -> bool:
    voter_set = set(voters)
    return len(voter_set & set(present)) >= majority(len(voter_set))
