"""Recording a history of job operations against a faulty cluster, for the
linearizability checker (:mod:`tests.linearizability`, :mod:`tests.linearizability_jobs`).

Client threads run random create/get/delete/cancel operations on a few shared job
ids against random nodes and record each one in a :class:`HistoryRecorder`; a
:class:`Nemesis` thread meanwhile kills leaders and cuts the network.  How an
answer is recorded:

- a write answered with a 5xx, or not answered (a timeout, a reset connection):
  left incomplete, so the history gives it an unknown outcome (it may have been
  applied at any instant after its call, or never);
- a read answered with anything but 200 or 404, or not answered: also left
  incomplete, and the job model drops an unknown read (it says nothing);
- a request whose connection was refused never reached a node: not recorded.

Reads go with ``?consistent=true``: a plain read is served from the node's local
state and is not linearizable by design.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.integration.cluster import ClusterNode, job
from tests.integration.partitioner import Partitioner
from tests.linearizability import CheckResult, HistoryRecorder, Operation
from tests.linearizability_jobs import Cancel, Create, Delete, Get, JobInput, Reply

REQUEST_TIMEOUT_S = 5.0  # a client gives up on an answer after this (an unknown outcome)
HEALTH_TIMEOUT_S = 2.0
NO_ANSWER = (OSError, http.client.HTTPException)  # timed out, reset, cut mid-answer


class Unanswered(Exception):
    """The node gave no usable answer: the operation's outcome stays unknown."""


# --- the cluster behind a proxy mesh -----------------------------------------------------


def new_nodes(root: Path, size: int = 3) -> list[ClusterNode]:
    """``size`` nodes (not started), each with its own directory made."""
    nodes = [ClusterNode(root / f"n{i}" / "data", f"node-{i}") for i in range(1, size + 1)]
    for n in nodes:
        n.data_dir.parent.mkdir(parents=True)
    return nodes


def wire_through(nodes: list[ClusterNode], net: Partitioner) -> None:
    """Each node's member list: itself at its own Raft port, every peer at the proxy
    that carries this node's traffic to that peer."""
    for me in nodes:
        entries = []
        for peer in nodes:
            raft = (
                f"127.0.0.1:{peer.raft_port}"
                if peer is me
                else net.address(me.node_id, peer.node_id)
            )
            entries.append(f"{peer.node_id}={raft}=127.0.0.1:{peer.http_port}")
        me.members = ",".join(entries)


def running(node: ClusterNode) -> bool:
    return node.proc is not None and node.proc.poll() is None


# --- one HTTP exchange -------------------------------------------------------------------


def connect(node: ClusterNode, timeout: float) -> http.client.HTTPConnection:
    """An open connection to ``node``; raises ConnectionRefusedError if nothing listens."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=timeout)
    try:
        conn.connect()
    except BaseException:
        conn.close()
        raise
    return conn


def exchange(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """Send one request on ``conn`` and read the answer; raises :class:`Unanswered`."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except NO_ANSWER as exc:
        raise Unanswered(repr(exc)) from exc
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode(errors="replace")


def health(node: ClusterNode) -> dict[str, Any]:
    """The node's /health, or {} if it does not answer soon."""
    try:
        conn = connect(node, HEALTH_TIMEOUT_S)
    except OSError:
        return {}
    try:
        status, body = exchange(conn, "GET", "/health")
    except Unanswered:
        return {}
    finally:
        conn.close()
    return body if status == 200 and isinstance(body, dict) else {}


def current_leader(nodes: list[ClusterNode]) -> ClusterNode | None:
    """A running node that says it leads (the one of the highest term if several do:
    an isolated old leader may not know yet that it was replaced)."""
    views = [(h, n) for n in nodes if running(n) for h in [health(n)]]
    leaders = [(h.get("term", 0), n) for h, n in views if h.get("role") == "leader"]
    return max(leaders, key=lambda c: c[0])[1] if leaders else None


# --- the operations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """The key space and operation mix clients draw from."""

    job_ids: tuple[str, ...]
    due_s: tuple[int, ...]  # one create body per due time; the first is the usual one
    weights: tuple[tuple[str, int], ...] = (
        ("get", 40),
        ("create", 25),
        ("cancel", 20),
        ("delete", 15),
    )

    def draw(self, rng: random.Random) -> JobInput:
        kinds, weights = zip(*self.weights, strict=True)
        kind = rng.choices(kinds, weights)[0]
        job_id = rng.choice(self.job_ids)
        if kind == "create":
            body = self.due_s[0] if rng.random() < 0.8 else rng.choice(self.due_s)
            return Create(job_id, body)
        return {"get": Get, "cancel": Cancel, "delete": Delete}[kind](job_id)


def request_of(inp: JobInput) -> tuple[str, str, Any]:
    """(method, path, JSON body) of an operation."""
    if isinstance(inp, Create):
        assert isinstance(inp.body, int)
        return "POST", "/jobs", job(inp.job_id, inp.body)
    if isinstance(inp, Get):
        return "GET", f"/jobs/{inp.job_id}?consistent=true", None
    if isinstance(inp, Delete):
        return "DELETE", f"/jobs/{inp.job_id}", None
    return "POST", f"/jobs/{inp.job_id}/cancel", None


def reply_of(inp: JobInput, status: int, body: Any) -> Reply:
    """The recorded output of an answered operation; raises :class:`Unanswered`
    for an answer that tells nothing (any 5xx; a read's anything but 200/404)."""
    if status >= 500:
        raise Unanswered(f"{status} {body}")
    if isinstance(inp, Get):
        if status == 404:
            return Reply(404)
        if status == 200 and isinstance(body, dict):
            return Reply(200, body.get("status"))
        raise Unanswered(f"{status} {body}")
    return Reply(status)


# --- the clients -------------------------------------------------------------------------


@dataclass
class ClientStats:
    """What the clients saw, for the report."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    node_of: dict[int, str] = field(default_factory=dict)  # history index -> node asked

    def note(self, what: str) -> None:
        with self.lock:
            self.answers[what] += 1


class Client(threading.Thread):
    """Loops over random operations against random nodes until ``stop`` is set.

    After an operation with an unknown outcome the client takes a fresh id, as a
    real client that timed out may still have that request in flight."""

    def __init__(
        self,
        index: int,
        count: int,
        nodes: list[ClusterNode],
        workload: Workload,
        recorder: HistoryRecorder,
        stats: ClientStats,
        stop: threading.Event,
        seed: int,
    ) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.client_id, self.stride = index, count
        self.nodes, self.workload, self.recorder = nodes, workload, recorder
        self.stats, self.stop = stats, stop
        self.rng = random.Random(seed)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.once()
        except Exception as exc:  # reported by the test, not lost in a thread
            with self.stats.lock:
                self.stats.errors.append(f"{self.name}: {exc!r}")

    def once(self) -> None:
        node = self.rng.choice(self.nodes)
        if perform(node, self.workload.draw(self.rng), self.client_id, self.recorder, self.stats):
            return
        self.client_id += self.stride


def perform(
    node: ClusterNode, inp: JobInput, client: int, recorder: HistoryRecorder, stats: ClientStats
) -> bool:
    """Run and record one operation; False if its outcome is unknown."""
    try:
        conn = connect(node, REQUEST_TIMEOUT_S)
    except OSError:  # nothing was sent: the operation never happened
        with stats.lock:
            stats.refused += 1
        return True
    try:
        token = recorder.invoke(client, inp)
        with stats.lock:
            stats.node_of[token] = node.node_id
        try:
            status, body = exchange(conn, *request_of(inp))
            out = reply_of(inp, status, body)
        except Unanswered:
            stats.note(f"{type(inp).__name__} unknown")
            return False
        recorder.complete(token, out)
        stats.note(f"{type(inp).__name__} {out.code}")
        return True
    finally:
        conn.close()


# --- the nemesis -------------------------------------------------------------------------


class Nemesis(threading.Thread):
    """Injects one fault every few seconds until ``stop`` is set, and undoes it:
    isolating the leader, SIGKILLing and restarting it, isolating a random node,
    or cutting the link between two nodes.  ``events`` says what it did, when."""

    FAULTS = ("isolate leader", "kill leader", "isolate a node", "cut a link")

    def __init__(
        self,
        nodes: list[ClusterNode],
        net: Partitioner,
        stop: threading.Event,
        seed: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="nemesis", daemon=True)
        self.nodes, self.net, self.stop, self.clock = nodes, net, stop, clock
        self.rng = random.Random(seed)
        self.events: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.started = clock()

    def note(self, what: str) -> None:
        self.events.append((self.clock() - self.started, what))

    def run(self) -> None:
        try:
            while not self.stop.wait(self.rng.uniform(1.0, 2.0)):  # calm between faults
                self.inject(self.rng.choice(self.FAULTS))
        except Exception as exc:  # reported by the test, not lost in a thread
            self.errors.append(repr(exc))
        finally:
            self.net.heal()

    def inject(self, fault: str) -> None:
        if fault == "cut a link":
            a, b = self.rng.sample(self.nodes, 2)
            self.partition(f"cut {a.node_id} <-> {b.node_id}", [a], [b])
            return
        target = current_leader(self.nodes) if "leader" in fault else None
        if target is None:
            target = self.rng.choice([n for n in self.nodes if running(n)])
        if fault == "kill leader":
            self.kill_and_restart(target)
        else:
            others = [n for n in self.nodes if n is not target]
            self.partition(f"isolate {target.node_id} ({fault})", [target], others)

    def partition(self, what: str, a: list[ClusterNode], b: list[ClusterNode]) -> None:
        self.net.split([n.node_id for n in a], [n.node_id for n in b])
        self.note(what)
        try:
            self.stop.wait(self.rng.uniform(2.0, 4.0))
        finally:
            self.net.heal()
            self.note("heal")

    def kill_and_restart(self, node: ClusterNode) -> None:
        node.stop(signal.SIGKILL)
        self.note(f"SIGKILL {node.node_id}")
        try:
            self.stop.wait(self.rng.uniform(0.5, 2.0))
        finally:
            node.start(wait=False)
            self.note(f"restart {node.node_id}")


# --- tampering, to show the checker catches an anomaly in a real history ----------------


def forced_reads(history: list[Operation]) -> list[int]:
    """Indexes of the reads that saw a job no linearization could make absent.

    Such a read answered 200 after a create of its id answered 200 (the job is
    there once that create returns), and no delete of the id could fall between
    that create and the read: every delete called before the read returned had
    itself returned before the create was called."""
    found = []
    for i, op in enumerate(history):
        if not isinstance(op.input, Get) or op.ret is None or op.output.code != 200:
            continue
        same = [o for o in history if o.input.job_id == op.input.job_id]
        deletes = [o for o in same if isinstance(o.input, Delete) and o.call < op.ret]
        for create in same:
            if (
                isinstance(create.input, Create)
                and create.ret is not None
                and create.ret < op.call
                and create.output.code in (200, 201)
                and all(d.ret is not None and d.ret < create.call for d in deletes)
            ):
                found.append(i)
                break
    return found


class Transcript:
    """Operations as lines a person can match against the node logs: the node each
    one asked and its times on the wall clock (UTC, as the logs print them)."""

    def __init__(
        self, history: list[Operation], node_of: dict[int, str], wall_offset: float
    ) -> None:
        self.history, self.node_of, self.wall_offset = history, node_of, wall_offset
        self._index = {id(op): i for i, op in enumerate(history)}

    def _wall(self, t: float | None) -> str:
        if t is None:
            return "?"
        stamp = datetime.fromtimestamp(t + self.wall_offset, UTC)
        return stamp.strftime("%H:%M:%S.%f")[:-3]

    def line(self, op: Operation) -> str:
        i = self._index.get(id(op), -1)
        span = f"[{self._wall(op.call)}, {self._wall(op.ret)}]"
        return f"#{i} {self.node_of.get(i, '?')} {span} {op.input!r} -> {op.output!r}"

    def explain(self, result: CheckResult) -> str:
        """The last operations a failed check placed, and the ones it could not."""
        lines = ["Last linearized operations:"]
        lines += [f"  {self.line(op)}" for op in result.linearized[-12:]]
        lines += ["Could not be placed:", *(f"  {self.line(op)}" for op in result.stuck[:12])]
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        path.write_text("".join(f"{self.line(op)}\n" for op in self.history))
