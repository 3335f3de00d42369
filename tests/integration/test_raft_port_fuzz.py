"""Fuzzing a live node's Raft port: the node keeps serving and its state is unchanged.

A three-node cluster of real processes holds a few jobs.  Then one node's Raft port,
the leader's and then a follower's, takes a few thousand frames over hundreds of
connections, many at once: random bytes, length prefixes with truncated bodies,
oversize and zero lengths, well-framed garbage msgpack of every frame kind,
connections dropped mid-frame, connections that never speak, and handshakes made
with the wrong cluster secret followed by well-formed Raft frames (votes in a far
future term, appends carrying a forged job, a snapshot offer) in the name of a
real member.  The generator is seeded and the counts bounded.

Afterwards every node answers /health and /ready, the leader and term are the ones
from before, the job lists and state digests are unchanged, a new write succeeds
and replicates, and the new log lines hold one-line warnings, no ERROR and no
traceback.  No connection made with the wrong secret is ever answered with a proof.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest

from actors.raft.wire import (
    DIALER,
    KIND_HELLO,
    KIND_RAFT,
    KIND_SNAPSHOT,
    MAX_FRAME_BYTES,
    MAX_HELLO_BYTES,
    NONCE_BYTES,
    frame,
    handshake_proof,
)
from scheduled_db.jobs.model import JobSpec, JobType
from scheduled_db.raft.messages import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
    encode_message,
)
from scheduled_db.state.commands import CreateJob, encode_command
from scheduled_db.testing.harness import wait_leader, wait_until
from tests.integration.cluster import ClusterNode, job, running_cluster

SEED = 0x5EED_2026
CONNECTIONS = 1000  # per fuzzed node
CONCURRENCY = 64  # connections open at once
IDLE_CONNECTIONS = 24  # open for the whole run, never saying a word
WRONG_SECRET = b"integration-test-cluster-secreT"  # one byte off the real one
HOST = "127.0.0.1"
IO_TIMEOUT_S = 10.0  # one fuzz connection's reads; the node answers in milliseconds
CONVERGE_S = 20.0
MAX_LOG_LINE = 400  # what a dialler says is cut short before it reaches the log
PRUNE_EVERY_S = 60.0  # the leader's history pruning: the one write an idle cluster makes
# Raft timing is not under test: a longer election timeout keeps a starved CI machine
# from changing leaders mid-run.  Should it happen anyway, the new term is a small
# step (a forged message would bring a term of 10**6 or more) and the new leader's
# no-op entry is the only write it adds.
SLOW_ELECTIONS = ("--raft-election-timeout", "3s")
MAX_ELECTIONS = 3
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class ClusterState:
    """What must not change: per node (leader, term, members, applied index, digest, jobs)."""

    leader: dict[str, str]
    term: dict[str, int]
    members: dict[str, list[tuple[str, str]]]
    applied: dict[str, int]
    digest: dict[str, str]
    jobs: dict[str, list[dict[str, Any]]]


def _get(node: ClusterNode, path: str) -> Any:
    status, _, body = node.http.call("GET", path)
    assert status == 200, (node.node_id, path, status, body)
    return body


def read_state(nodes: list[ClusterNode]) -> ClusterState:
    views = {n.node_id: _get(n, "/debug/cluster") for n in nodes}
    return ClusterState(
        leader={k: v["leader"] for k, v in views.items()},
        term={k: v["term"] for k, v in views.items()},
        members={
            k: sorted((s["node_id"], s["suffrage"]) for s in v["members"]) for k, v in views.items()
        },
        applied={k: v["applied_index"] for k, v in views.items()},
        digest={n.node_id: _get(n, "/debug/digest")["digest"] for n in nodes},
        jobs={n.node_id: _get(n, "/jobs?limit=1000")["jobs"] for n in nodes},
    )


def wait_quiet(nodes: list[ClusterNode]) -> ClusterState:
    """The state once every replica has applied the same entries (equal digests)."""
    seen: list[ClusterState] = []

    def converged() -> bool:
        seen.append(read_state(nodes))
        state = seen[-1]
        return len(set(state.digest.values())) == 1 and len(set(state.applied.values())) == 1

    wait_until(converged, CONVERGE_S, "every replica to apply the same entries")
    return seen[-1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterNode]]:
    with running_cluster(tmp_path_factory.mktemp("raft-fuzz"), extra=SLOW_ELECTIONS) as nodes:
        leader = wait_leader(nodes)
        for i in range(5):
            status, _, body = leader.http.call(
                "POST", "/jobs", job(f"before-{i}", time.time() + 7200)
            )
            assert status == 200, body
        yield nodes


# --- the fuzzing client -----------------------------------------------------------------


class Fuzzer:
    """Connections to one Raft port, each carrying one kind of bad input.

    ``sent`` counts frames (or frame-sized chunks of garbage) written; ``outcomes``
    counts how each kind of connection ended; ``answered_wrong_secret`` counts
    wrong-secret handshakes the node answered with a HELLO: it must stay 0.
    """

    def __init__(self, port: int, target: str, members: list[str], seed: int) -> None:
        self.port = port
        self.target = target
        self.members = members
        self.rng = random.Random(seed)
        self.sent = 0
        self.outcomes: Counter[str] = Counter()
        self.answered_wrong_secret = 0
        self.bad_challenges = 0

    # --- plumbing ---

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(HOST, self.port), IO_TIMEOUT_S)

    async def _challenge(self, reader: asyncio.StreamReader) -> bytes:
        """The node's opening HELLO; it must be a 32-byte nonce."""
        header = await asyncio.wait_for(reader.readexactly(4), IO_TIMEOUT_S)
        body = await asyncio.wait_for(reader.readexactly(_LENGTH.unpack(header)[0]), IO_TIMEOUT_S)
        if body[0] != KIND_HELLO or len(body) != 1 + NONCE_BYTES:
            self.bad_challenges += 1
        return body[1:]

    async def _write(self, writer: asyncio.StreamWriter, data: bytes, frames: int = 1) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), IO_TIMEOUT_S)
        self.sent += frames

    async def _closed_by_node(self, reader: asyncio.StreamReader) -> bytes:
        """Read until the node closes the connection (it must: all input here is bad)."""
        data = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(65536), IO_TIMEOUT_S):
                data += chunk
        return data

    def _end(self, writer: asyncio.StreamWriter) -> None:
        if self.rng.random() < 0.5:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # linger 0: the close is a reset, mid-frame for the node
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    # --- the kinds of bad input ---

    async def random_bytes(self, reader: Any, writer: asyncio.StreamWriter) -> str:
        if self.rng.random() < 0.7:
            await self._challenge(reader)
        chunks = self.rng.randint(1, 4)
        data = b"".join(self.rng.randbytes(self.rng.randint(1, 1500)) for _ in range(chunks))
        await self._write(writer, data, chunks)
        return "random bytes"

    async def truncated(self, reader: Any, writer: asyncio.StreamWriter) -> str:
        await self._challenge(reader)
        size = self.rng.randint(2, MAX_HELLO_BYTES)
        body = bytes([KIND_HELLO]) + self.rng.randbytes(self.rng.randint(0, size - 2))
        await self._write(writer, _LENGTH.pack(size) + body)
        return "truncated frame"

    async def bad_length(self, reader: Any, writer: asyncio.StreamWriter) -> str:
        await self._challenge(reader)
        choices = [0, MAX_HELLO_BYTES + 1, 1 << 20, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 2**32 - 1]
        size = self.rng.choice(choices)
        await self._write(writer, _LENGTH.pack(size) + self.rng.randbytes(self.rng.randint(0, 64)))
        await self._closed_by_node(reader)
        return "bad length"

    async def garbage_frames(self, reader: Any, writer: asyncio.StreamWriter) -> str:
        await self._challenge(reader)
        count = self.rng.randint(1, 6)
        kinds = [KIND_HELLO, KIND_RAFT, KIND_SNAPSHOT, 0, 4, 255]
        data = b"".join(frame(self.rng.choice(kinds), self._garbage_body()) for _ in range(count))
        await self._write(writer, data, count)
        await self._closed_by_node(reader)
        return "garbage frames"

    def _garbage_body(self) -> bytes:
        pick = self.rng.randrange(4)
        if pick == 0:
            return self.rng.randbytes(self.rng.randint(0, 300))
        if pick == 1:  # the wire's version byte, then random msgpack
            return b"\x01" + bytes(msgpack.packb(self._random_value(3), use_bin_type=True))
        if pick == 2:
            return bytes(msgpack.packb(self._random_value(3), use_bin_type=True))
        return encode_message(self._forged_message())  # a real Raft message, no handshake

    def _random_value(self, depth: int) -> Any:
        choices: list[Callable[[], Any]] = [
            lambda: self.rng.randint(-(2**63), 2**64 - 1),
            lambda: self.rng.random() * 10.0 ** self.rng.randint(-300, 300),
            lambda: self.rng.randbytes(self.rng.randint(0, 20)),
            lambda: "".join(chr(self.rng.randint(32, 0x2FFF)) for _ in range(5)),
            lambda: None,
            lambda: self.rng.random() < 0.5,
        ]
        if depth > 0:
            choices.append(lambda: [self._random_value(depth - 1) for _ in range(4)])
            choices.append(lambda: {str(i): self._random_value(depth - 1) for i in range(3)})
        return self.rng.choice(choices)()

    def _forged_message(self) -> Message:
        frm = self.rng.choice(self.members)
        term = self.rng.choice([1, 2, 10**6, 2**63 - 1])
        kind = self.rng.choice(list(MessageType))
        forged = CreateJob(JobSpec("forged", JobType.UNICO, timestamp_ms=2**40), 1, 2**40)
        entries = (Entry(term, 10**6, data=encode_command(forged)),)
        snap = Snapshot(SnapshotMeta(10**6, term, ConfState((frm,))))
        return Message(
            kind, to=self.target, frm=frm, term=term, log_term=term, index=10**6,
            entries=entries if kind is MessageType.APP else (), commit=10**9,
            snapshot=snap if kind is MessageType.SNAP else None,
        )  # fmt: skip

    async def wrong_secret(self, reader: Any, writer: asyncio.StreamWriter) -> str:
        """A complete handshake with the wrong secret in a member's name, then Raft frames
        (or snapshot frames) sent straight after, as if it had been accepted."""
        nonce = await self._challenge(reader)
        claimed = self.rng.choice([*self.members, self.target, "intruder", "x" * 900])
        mine = self.rng.randbytes(NONCE_BYTES)
        proof = handshake_proof(WRONG_SECRET, DIALER, nonce, claimed)
        if self.rng.random() < 0.1:  # reflect the node's own nonce back at it
            mine = nonce
        hello = frame(KIND_HELLO, proof + mine + claimed.encode())
        count = self.rng.randint(1, 20)
        kind = KIND_SNAPSHOT if self.rng.random() < 0.2 else KIND_RAFT
        follow = b"".join(frame(kind, encode_message(self._forged_message())) for _ in range(count))
        with contextlib.suppress(ConnectionError):
            await self._write(writer, hello + follow, 1 + count)
        answer = await self._closed_by_node(reader)
        if answer:
            self.answered_wrong_secret += 1
        return "wrong secret"

    async def dropped_mid_frame(self, reader: Any, writer: asyncio.StreamWriter) -> str:
        if self.rng.random() < 0.5:
            await self._challenge(reader)
        whole = frame(KIND_HELLO, self.rng.randbytes(NONCE_BYTES * 2 + 6))
        await self._write(writer, whole[: self.rng.randint(1, len(whole) - 1)])
        return "dropped mid-frame"

    # --- driving ---

    async def one(self, attack: Callable[..., Awaitable[str]]) -> None:
        try:
            reader, writer = await self._connect()
        except (OSError, TimeoutError):
            self.outcomes["connect failed"] += 1
            return
        try:
            self.outcomes[await attack(reader, writer)] += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            self.outcomes["closed by the node early"] += 1
        finally:
            self._end(writer)

    async def run(self, connections: int) -> None:
        attacks = [
            self.random_bytes, self.truncated, self.bad_length, self.garbage_frames,
            self.wrong_secret, self.wrong_secret, self.dropped_mid_frame,
        ]  # fmt: skip
        idle = [await self._connect() for _ in range(IDLE_CONNECTIONS)]
        gate = asyncio.Semaphore(CONCURRENCY)

        async def gated(attack: Callable[..., Awaitable[str]]) -> None:
            async with gate:
                await self.one(attack)

        plan = [self.rng.choice(attacks) for _ in range(connections)]
        await asyncio.gather(*(gated(a) for a in plan))
        for _, writer in idle:
            writer.transport.abort()


# --- the tests ---------------------------------------------------------------------------


def _log_sizes(nodes: list[ClusterNode]) -> dict[str, int]:
    return {n.node_id: len(n.log()) for n in nodes}


def check_unchanged(before: ClusterState, after: ClusterState, elapsed_s: float) -> None:
    elections = max(after.term.values()) - max(before.term.values())
    assert 0 <= elections <= MAX_ELECTIONS, f"the term jumped: {before.term} -> {after.term}"
    if elections == 0:
        assert after.leader == before.leader and after.term == before.term, (before, after)
    else:
        print(f"note: {elections} election(s) while fuzzing (an overloaded machine?)")
    assert after.members == before.members
    assert after.jobs == before.jobs
    if after.applied == before.applied:
        assert after.digest == before.digest
    else:
        # An idle cluster writes only the leader's pruning tick (one entry a minute)
        # and a new leader's no-op entry.
        most = int(elapsed_s // PRUNE_EVERY_S) + 1 + elections
        for node_id, index in after.applied.items():
            assert 0 < index - before.applied[node_id] <= most, (before.applied, after.applied)


def check_serving(nodes: list[ClusterNode], tag: str) -> None:
    wait_leader(nodes)  # at once, unless an overloaded machine caused an election
    for n in nodes:
        assert n.http.call("GET", "/health")[0] == 200, n.node_id
        wait_until(lambda n=n: n.http.call("GET", "/ready")[0] == 200, 10, f"{n.node_id} ready")
    for n in nodes:  # a write through each node (forwarded by followers) replicates to all
        status, _, body = n.http.call(
            "POST", "/jobs", job(f"{tag}-{n.node_id}", time.time() + 7200)
        )
        assert status == 200, (n.node_id, body)
    for n in nodes:
        for m in nodes:
            path = f"/jobs/{tag}-{m.node_id}"
            wait_until(
                lambda n=n, p=path: n.http.call("GET", p)[0] == 200, 10, f"{path} on {n.node_id}"
            )


def check_logs(nodes: list[ClusterNode], since: dict[str, int], target: ClusterNode) -> None:
    for n in nodes:
        new = n.log()[since[n.node_id] :]
        assert "Traceback" not in new, f"{n.node_id} logged a traceback:\n{new[-4000:]}"
        errors = [line for line in new.splitlines() if " ERROR " in line]
        assert not errors, errors[:5]
        longest = max(new.splitlines(), key=len, default="")
        assert len(longest) <= MAX_LOG_LINE, f"a {len(longest)}-char log line: {longest[:300]}"
    warned = target.log()[since[target.node_id] :].count("transport: handshake with")
    assert warned >= CONNECTIONS // 4, f"only {warned} handshake warnings on {target.node_id}"


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_fuzzed_raft_port_keeps_serving_with_state_unchanged(
    cluster: list[ClusterNode], role: str
) -> None:
    leader = wait_leader(cluster)
    target = leader if role == "leader" else next(n for n in cluster if n is not leader)
    window = time.monotonic()  # from before the first read of the state to after the last
    before = wait_quiet(cluster)
    since = _log_sizes(cluster)
    members = [n.node_id for n in cluster if n is not target]
    fuzzer = Fuzzer(target.raft_port, target.node_id, members, SEED + len(role))

    started = time.monotonic()
    asyncio.run(fuzzer.run(CONNECTIONS))
    took = time.monotonic() - started
    print(f"{role} {target.node_id}: {fuzzer.sent} frames over {CONNECTIONS} connections "
          f"in {took:.1f}s: {dict(fuzzer.outcomes)}")  # fmt: skip

    assert fuzzer.sent >= 3000
    assert fuzzer.answered_wrong_secret == 0, "a wrong secret was answered with a proof"
    assert fuzzer.bad_challenges == 0
    assert fuzzer.outcomes["connect failed"] == 0, fuzzer.outcomes
    check_unchanged(before, wait_quiet(cluster), time.monotonic() - window)
    check_logs(cluster, since, target)
    check_serving(cluster, f"after-{role}")
