"""Helpers for the cluster fault tests: nodes wired through a proxy mesh, replica
digests, a stream of concurrent creates, and what a webhook receiver was sent.

Everything here waits on a condition with a bound; nothing sleeps to let a
cluster settle.
"""

from __future__ import annotations

import http.client
import itertools
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduled_db.testing.harness import wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import ClusterNode, job
from tests.integration.partitioner import Partitioner

HTTP_ERRORS = (OSError, http.client.HTTPException)  # refused, reset, cut mid-answer


def new_nodes(root: Path, size: int = 3, extra: tuple[str, ...] = ()) -> list[ClusterNode]:
    """``size`` nodes (not started) with their ports picked and their directories made."""
    nodes = [ClusterNode(root / f"n{i}" / "data", f"node-{i}", extra) for i in range(1, size + 1)]
    for n in nodes:
        n.data_dir.parent.mkdir(parents=True)
    return nodes


def wire(nodes: list[ClusterNode], net: Partitioner | None = None) -> None:
    """Give each node its member list: itself at its real Raft port and, with a
    ``net``, every peer at the proxy that carries this node's traffic to it."""
    for me in nodes:
        members = []
        for peer in nodes:
            raft = f"127.0.0.1:{peer.raft_port}"
            if net is not None and peer is not me:
                raft = net.address(me.node_id, peer.node_id)
            members.append(f"{peer.node_id}={raft}=127.0.0.1:{peer.http_port}")
        me.members = ",".join(members)


def mesh(nodes: list[ClusterNode]) -> Partitioner:
    """A proxy mesh between ``nodes``, to enter as a context manager (which starts it)."""
    return Partitioner({n.node_id: n.raft_port for n in nodes})


@contextmanager
def stopped_after(nodes: list[ClusterNode]) -> Iterator[list[ClusterNode]]:
    """Yield ``nodes``; stop every one still running afterwards, whatever happened."""
    try:
        yield nodes
    finally:
        for n in nodes:
            n.stop_if_running()


def start_together(nodes: list[ClusterNode]) -> None:
    """Start every node at once, then wait until each serves /health."""
    for n in nodes:
        n.start(wait=False)
    for n in nodes:
        wait_serving(n)


def wait_serving(node: ClusterNode, timeout: float = 30) -> None:
    """Wait until a started ``node`` serves /health; fail with the end of its log."""
    try:
        wait_until(node.answers, timeout, f"{node.node_id} to serve HTTP")
    except AssertionError as exc:
        tail = "\n".join(node.log().splitlines()[-40:])
        raise AssertionError(f"{exc}; the end of its log:\n{tail}") from None


def alive(node: ClusterNode) -> bool:
    return node.proc is not None and node.proc.poll() is None


def post(node: ClusterNode, body: dict[str, Any]) -> tuple[int, Any]:
    """POST /jobs; status 0 when the request got no HTTP answer at all."""
    try:
        status, _, answer = node.http.call("POST", "/jobs", body)
    except HTTP_ERRORS as exc:
        return 0, repr(exc)
    return status, answer


def timed_post(node: ClusterNode, body: dict[str, Any]) -> tuple[int, Any, float]:
    """:func:`post`, and how long it took to answer."""
    started = time.monotonic()
    status, answer = post(node, body)
    return status, answer, time.monotonic() - started


def status_of(node: ClusterNode, job_id: str) -> str | None:
    body = node.http.call("GET", f"/jobs/{job_id}/status")[2]
    return body.get("status") if isinstance(body, dict) else None


def has_job(node: ClusterNode, job_id: str) -> bool | None:
    """Whether ``node`` holds ``job_id``; None if it did not answer 200 or 404."""
    status = node.http.call("GET", f"/jobs/{job_id}")[0]
    return {200: True, 404: False}.get(status)


def digest(node: ClusterNode) -> str | None:
    try:
        status, _, body = node.http.call("GET", "/debug/digest")
    except HTTP_ERRORS:
        return None
    return body["digest"] if status == 200 and isinstance(body, dict) else None


def wait_converged(nodes: list[ClusterNode], timeout: float) -> str:
    """Wait until every node reports the same digest (same applied state); return it."""
    seen: list[list[str | None]] = []

    def equal() -> bool:
        seen.append([digest(n) for n in nodes])
        return None not in seen[-1] and len(set(seen[-1])) == 1

    try:
        wait_until(equal, timeout, "equal digests on " + ", ".join(n.node_id for n in nodes))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last digests {seen[-1] if seen else None}") from None
    return str(seen[-1][0])


def wait_write_served(nodes: list[ClusterNode], timeout: float, tag: str) -> ClusterNode:
    """Send probe creates to the live ``nodes`` until one is acknowledged; the node
    that acknowledged it.  A probe that failed may still be applied: ids are unique."""
    ids = itertools.count()
    served: list[ClusterNode] = []

    def one_acknowledged() -> bool:
        for n in (n for n in nodes if alive(n)):
            status, _ = post(n, job(f"{tag}-{next(ids)}", time.time() + 3600))
            if status in (200, 201):
                served.append(n)
                return True
        return False

    wait_until(one_acknowledged, timeout, "a live node to acknowledge a write")
    return served[0]


# --- a stream of creates --------------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    """One create the stream sent: when, to whom, what came back."""

    job_id: str
    node_id: str
    started: float  # time.monotonic()
    ended: float
    status: int  # 0: no HTTP answer
    code: str  # the error code of a refusal, or the exception of a failure
    due: float | None  # epoch seconds, for a job with a webhook

    @property
    def acked(self) -> bool:
        return self.status in (200, 201)


class CreateStream:
    """Client threads creating jobs with unique ids against random live nodes.

    Every ``webhook_every``-th job is due ``due_in`` seconds after it is sent and
    fires at ``webhook_url``; the rest (all of them, without a ``webhook_url``)
    are due an hour later.  ``pause`` paces each thread (a request rate, so three
    node processes keep a share of the two cores), not a wait for anything.
    ``seed`` picks the nodes each thread sends to.
    """

    def __init__(
        self,
        nodes: list[ClusterNode],
        webhook_url: str | None,
        threads: int = 3,
        due_in: float = 3.0,
        webhook_every: int = 4,
        pause: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.nodes = nodes
        self.webhook_url = webhook_url
        self.due_in = due_in
        self.webhook_every = webhook_every
        self.pause = pause
        self.seed = seed
        self._lock = threading.Lock()
        self._creates: list[Create] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(t,), name=f"creates-{t}", daemon=True)
            for t in range(threads)
        ]

    def start(self) -> CreateStream:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)  # one request is bounded by the client's 15 s timeout
            assert not t.is_alive(), f"{t.name} did not stop"

    def creates(self) -> list[Create]:
        with self._lock:
            return list(self._creates)

    def acked(self) -> list[Create]:
        return [c for c in self.creates() if c.acked]

    def _run(self, thread: int) -> None:
        rng = random.Random(self.seed * 1000 + thread)
        for i in itertools.count():
            if self._stop.is_set():
                return
            live = [n for n in self.nodes if alive(n)]
            if live:
                self._send(rng.choice(live), f"s{thread}-{i}", i % self.webhook_every == 0)
            self._stop.wait(self.pause)

    def _send(self, node: ClusterNode, job_id: str, webhook: bool) -> None:
        url = self.webhook_url if webhook else None
        due = None if url is None else round(time.time() + self.due_in, 3)
        body = job(job_id, time.time() + 3600) if due is None else job(job_id, due, url)
        started = time.monotonic()
        status, answer = post(node, body)
        code = str(answer.get("code") if isinstance(answer, dict) else answer)[:40]
        record = Create(job_id, node.node_id, started, time.monotonic(), status, code, due)
        with self._lock:
            self._creates.append(record)


# --- what the receiver got ------------------------------------------------------------------


def keys_by_job(receiver: Receiver, path: str) -> dict[str, list[str]]:
    """Idempotency keys the receiver got at ``path``, by the job id in each key
    ("<job_id>:<scheduled_ms>"), one entry per delivery."""
    keys: dict[str, list[str]] = defaultdict(list)
    for r in receiver.received(path):
        key = r.headers["Idempotency-Key"]
        keys[key.rsplit(":", 1)[0]].append(key)
    return dict(keys)


def expected_key(job_id: str, due: float) -> str:
    return f"{job_id}:{int(round(due * 1000))}"
