"""The typed answers about a node: its health, readiness and view of the cluster
(frozen dataclasses, the decoded object kept as ``raw``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from scheduled_db.client._decode import Raw, items, obj, opt, req


@dataclass(frozen=True, slots=True)
class Health:
    """``GET /health``: ``status`` is ``ok``, ``degraded`` or ``unhealthy`` (the node
    knows no leader, or its failure rule tripped); ``reason`` says why when not ok."""

    status: str
    role: str | None
    node_id: str | None
    leader_id: str | None
    reason: str | None
    raw: Raw = dataclasses.field(repr=False)

    @property
    def healthy(self) -> bool:
        return self.status != "unhealthy"

    @classmethod
    def from_raw(cls, value: object) -> Health:
        raw = obj(value, "a health report")
        return cls(
            status=req(raw, "status", str, "a health report"),
            role=opt(raw, "role", str),
            node_id=opt(raw, "node_id", str),
            leader_id=opt(raw, "leader_id", str),
            reason=opt(raw, "reason", str),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Readiness:
    """``GET /ready``: whether the node can serve (a member, a leader known, its log
    applied), and why not."""

    ready: bool
    node_id: str | None
    reason: str | None
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object) -> Readiness:
        raw = obj(value, "a readiness report")
        return cls(
            ready=req(raw, "ready", bool, "a readiness report"),
            node_id=opt(raw, "node_id", str),
            reason=opt(raw, "error", str),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Member:
    """A member of the Raft group as the asked node knows it."""

    node_id: str
    suffrage: str | None
    raft_address: str | None
    http_address: str | None
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object) -> Member:
        raw = obj(value, "a member")
        return cls(
            node_id=req(raw, "node_id", str, "a member"),
            suffrage=opt(raw, "suffrage", str),
            raft_address=opt(raw, "raft_address", str),
            http_address=opt(raw, "http_address", str),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Cluster:
    """``GET /debug/cluster``: the Raft group as the asked node sees it."""

    node_id: str
    role: str
    leader_id: str | None
    leader_http_address: str | None
    term: int | None
    commit_index: int | None
    applied_index: int | None
    members: tuple[Member, ...]
    raw: Raw = dataclasses.field(repr=False)

    @classmethod
    def from_raw(cls, value: object) -> Cluster:
        raw = obj(value, "a cluster report")
        return cls(
            node_id=req(raw, "node_id", str, "a cluster report"),
            role=req(raw, "role", str, "a cluster report"),
            leader_id=opt(raw, "leader_id", str),
            leader_http_address=opt(raw, "leader_http_address", str),
            term=opt(raw, "term", int),
            commit_index=opt(raw, "commit_index", int),
            applied_index=opt(raw, "applied_index", int),
            members=items(raw, "members", Member.from_raw, "a cluster report"),
            raw=raw,
        )
