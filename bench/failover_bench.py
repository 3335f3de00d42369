"""Failover: how long writes and deliveries stop when the leader of 3 nodes is SIGKILLed.

    python -m bench --only failover [--quick]

A local 3-node cluster serves a steady load: a writer creates jobs at about
``WRITE_RATE`` per second from 8 connections spread over the live nodes (writes
to a follower are forwarded to the leader), and before each kill a run of jobs
falls due every 20 ms, each with a webhook to the receiver.  Then, each time:

1. the leader gets SIGKILL at a moment when jobs are falling due;
2. **write gap**: kill -> the first successful create *made by a new leader*
   (its ``created_at``, stamped by the node that proposed it, is after the kill);
3. **delivery gap**: kill -> the first webhook *sent after the kill* arrives
   (its body's ``executed_at`` is after the kill: the old leader is dead);
4. the killed node is restarted on its data (as a supervisor would) and the
   next kill waits until all three agree on a leader again.

At least 10 kills (2 with ``--quick``).  Targets (issue 6): write gap median
<= 1.5 s; a new leader serving writes and firing within 2 s (delivery gap
median <= 2 s).  Throughput over time around each kill (0.1 s buckets) is
kept for the plot.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from actors.webhook.client import WebhookClient
from bench.common import check, say
from bench.firing_receiver import ReceiverProcess
from bench.loadgen import LOCAL
from bench.procs import READY_S, Node, make_cluster, post_jobs
from scheduled_db.testing.harness import running, wait_leader, wait_until

NAME = "failover"
KILLS, QUICK_KILLS = 12, 2
WRITE_RATE = 200.0  # creations/s offered by the writer: a steady load, not a flood
WRITERS = 8
DUE_EVERY_S = 0.02
LEAD_S = 2.5  # creation of a kill's due jobs -> the first of them is due
KILL_AFTER_S = 1.5  # the first due -> the kill
SPAN_S = 6.0  # jobs fall due over this long
BUCKET_S = 0.1
GAP_TIMEOUT_S = 30.0
TARGET_WRITE_S, TARGET_DELIVERY_S = 1.5, 2.0


class Writer(threading.Thread):
    """Creates jobs at a steady rate from several connections, over the nodes it is given.

    Keeps, for every success, when the answer came and the job's ``created_at``.
    """

    def __init__(self, bases: list[str]) -> None:
        super().__init__(name="writer", daemon=True)
        self.bases = list(bases)
        self.done: list[tuple[float, float]] = []  # (answered at, created_at)
        self.errors = 0
        self._halt = threading.Event()
        self._due_s = round(time.time() + 30 * 86_400)

    def run(self) -> None:
        asyncio.run(self._main())

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    async def _main(self) -> None:
        client = WebhookClient(per_origin=WRITERS, policy=LOCAL)
        await asyncio.gather(*(self._worker(client, w) for w in range(WRITERS)))
        await client.close()

    async def _worker(self, client: WebhookClient, w: int) -> None:
        period, k = WRITERS / WRITE_RATE, 0
        while not self._halt.is_set():
            started = time.monotonic()
            k += 1
            base = self.bases[(w + k) % len(self.bases)]
            body = {"id": f"w{w}-{k}", "type": "unico", "timestamp": self._due_s}
            ok = await self._create(client, base, json.dumps(body).encode())
            pause = period - (time.monotonic() - started) if ok else 0.05
            await asyncio.sleep(max(0.0, pause))

    async def _create(self, client: WebhookClient, base: str, body: bytes) -> bool:
        try:
            async with asyncio.timeout(5):
                resp = await client.post(base + "/jobs", body, {"Content-Type": "application/json"})
        except (OSError, TimeoutError):
            self.errors += 1
            return False
        if resp.status != 200:
            self.errors += 1
            return False
        self.done.append((time.time(), json.loads(resp.body)["created_at_ms"] / 1000))
        return True


def timeline(times: list[float], start: float, end: float) -> list[int]:
    counts = [0] * round((end - start) / BUCKET_S)
    for t in times:
        if start <= t < end:
            counts[min(len(counts) - 1, int((t - start) / BUCKET_S))] += 1
    return counts


def create_due_jobs(k: int, leader: Node, receiver: ReceiverProcess) -> tuple[float, int]:
    """Jobs due every DUE_EVERY_S over SPAN_S from LEAD_S on; (first due time, count)."""
    due_start = time.time() + LEAD_S
    n = int(SPAN_S / DUE_EVERY_S)
    bodies = [
        {"id": f"f{k}-{i:04d}", "type": "unico", "timestamp": round(due_start + i * DUE_EVERY_S, 3),
         "webhook_url": receiver.url}
        for i in range(n)
    ]  # fmt: skip
    post_jobs(leader.base, bodies, connections=8)
    return due_start, n


def kill(node: Node) -> float:
    """SIGKILL; the wall-clock time once the signal was sent."""
    assert node.proc is not None
    node.proc.kill()
    killed_at = time.time()
    node.proc.wait(10)
    return killed_at


def one_kill(k: int, nodes: list[Node], writer: Writer, receiver: ReceiverProcess) -> Any:
    """Kill the leader once; the gaps, the timeline and what the receiver saw."""
    leader = wait_leader(nodes)
    term_before = leader.call("GET", "/debug/cluster")[1]["term"]
    receiver.reset()
    due_start, n = create_due_jobs(k, leader, receiver)
    time.sleep(max(0.0, due_start + KILL_AFTER_S - time.time()))  # the planned moment
    killed_at = kill(leader)
    writer.bases = [n.base for n in nodes if n is not leader]
    write_at, deliver_at = wait_gaps(writer, receiver, killed_at)
    # Watch until the jobs are all due, and at least 3 s past the recovery.
    end = max(due_start + SPAN_S + 2.0, max(write_at, deliver_at) + 3.0)
    time.sleep(max(0.0, end - time.time()))  # the rest of the observed window
    rows = receiver.records()
    now = wait_leader(nodes)
    writes = timeline([t for t, _ in writer.done], killed_at - 2, end)
    resumed = 2 + write_at - killed_at  # from the timeline's start
    figures = {
        "killed": leader.node_id,
        "write_gap_s": round(write_at - killed_at, 3),
        "delivery_gap_s": round(deliver_at - killed_at, 3),
        "leader_after": now.node_id,
        "elections": now.call("GET", "/debug/cluster")[1]["term"] - term_before,
        "longest_write_pause_after_recovery_s": pause_after_recovery(writes, resumed),
        "due_jobs": n,
        "delivered": len({r[1] for r in rows}),
        "duplicates": len(rows) - len({r[1] for r in rows}),
        "writes_per_bucket": writes,
        "deliveries_per_bucket": timeline([r[0] for r in rows], killed_at - 2, end),
    }
    restart(leader, nodes)
    writer.bases = [n.base for n in nodes]
    return figures


def pause_after_recovery(buckets: list[int], resumed_s: float) -> float:
    """The longest run of empty buckets after writes resumed (``resumed_s`` from the
    start of the timeline): a second stall (another election, a node starved of CPU)
    shows here."""
    k = int(resumed_s / BUCKET_S) + 1
    longest = run = 0
    for count in buckets[k:]:
        run = run + 1 if count == 0 else 0
        longest = max(longest, run)
    return round(longest * BUCKET_S, 1)


def wait_gaps(writer: Writer, receiver: ReceiverProcess, killed_at: float) -> tuple[float, float]:
    """When the first write by a new leader was answered, and the first delivery sent
    after the kill arrived."""
    found: dict[str, float] = {}

    def seen() -> bool:
        if "write" not in found:
            after = [t for t, created in list(writer.done) if created > killed_at]
            if after:
                found["write"] = min(after)
        if "delivery" not in found:
            after = [r[0] for r in receiver.records() if r[3] > killed_at]
            if after:
                found["delivery"] = min(after)
        return len(found) == 2

    wait_until(seen, GAP_TIMEOUT_S, "a write and a delivery after the kill", poll=0.1)
    return found["write"], found["delivery"]


def restart(node: Node, nodes: list[Node]) -> None:
    """Start the killed node on its data again and wait until it serves and has caught up."""
    node.start(wait=False)
    wait_until(lambda: node.answers("/ready"), 60, f"{node.node_id} to be ready again")
    wait_leader(nodes)


def summary(kills: list[dict[str, Any]], key: str) -> dict[str, float]:
    gaps = sorted(k[key] for k in kills)
    return {
        "median": round(statistics.median(gaps), 3),
        "p90": round(gaps[min(len(gaps) - 1, int(0.9 * len(gaps)))], 3),
        "min": gaps[0],
        "max": gaps[-1],
    }


def run(quick: bool) -> dict[str, Any]:
    count = QUICK_KILLS if quick else KILLS
    receiver = ReceiverProcess()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp,
            running(make_cluster(Path(tmp)), READY_S) as nodes,
        ):
            wait_leader(nodes)
            writer = Writer([n.base for n in nodes])
            writer.start()
            try:
                kills = []
                for k in range(count):
                    kills.append(one_kill(k, nodes, writer, receiver))
                    w, d = kills[-1]["write_gap_s"], kills[-1]["delivery_gap_s"]
                    say(f"failover: kill {k + 1}/{count}: write gap {w} s, delivery gap {d} s")
            finally:
                writer.stop()
    finally:
        receiver.stop()
    return figures(kills, writer.errors)


def figures(kills: list[dict[str, Any]], errors: int) -> dict[str, Any]:
    writes, deliveries = summary(kills, "write_gap_s"), summary(kills, "delivery_gap_s")
    return {
        "kills": kills,
        "write_rate_offered": WRITE_RATE,
        "due_every_ms": DUE_EVERY_S * 1000,
        "bucket_s": BUCKET_S,
        "timeline_starts_before_kill_s": 2.0,
        "write_errors": errors,
        "write_gap_s": writes,
        "delivery_gap_s": deliveries,
        "checks": [
            check(
                f"leader SIGKILL -> first write, median of {len(kills)} kills (s)",
                f"<= {TARGET_WRITE_S} s",
                writes["median"],
                writes["median"] <= TARGET_WRITE_S,
            ),
            check(
                f"leader SIGKILL -> first delivery, median of {len(kills)} kills (s)",
                f"<= {TARGET_DELIVERY_S} s",
                deliveries["median"],
                deliveries["median"] <= TARGET_DELIVERY_S,
            ),
        ],
    }
