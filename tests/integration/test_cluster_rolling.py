"""SIGTERM on the leader hands leadership over; a rolling restart loses nothing.

Each node in turn is stopped with SIGTERM (exit 0), restarted, and caught up
before the next one goes.  Meanwhile a recurring job fires every two seconds and
one-time jobs fall due: afterwards every job is present on every node, every
one-time job was delivered, and the recurring job missed no occurrence between
its first and last delivery (late is allowed across a hand-over; missing is not).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from scheduled_db.testing.harness import leader_of, wait_leader, wait_until
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import ClusterNode, job, running_cluster

EVERY_MS = 2000


def test_a_rolling_restart_loses_no_job_and_misses_no_occurrence(tmp_path: Path) -> None:
    receiver = Receiver().start()
    try:
        with running_cluster(tmp_path) as nodes:
            leader = wait_leader(nodes)
            recurring = {
                "id": "tick",
                "type": "recurrente",
                "cron_expression": "*/2 * * * * *",
                "webhook_url": receiver.url("/seq/tick?codes=200"),
            }
            status, _, body = leader.http.call("POST", "/jobs", recurring)
            assert status in (200, 201), body
            first = time.time()
            one_time = [f"once-{i}" for i in range(12)]
            for i, job_id in enumerate(one_time):
                body = job(job_id, first + 2 + 1.5 * i, receiver.url("/ok"))
                status, _, reply = leader.http.call("POST", "/jobs", body)
                assert status in (200, 201), reply

            handed = 0
            for node in nodes:
                # Let an occurrence fire between restarts, so every hand-over has one on
                # each side of it.
                seen = len(keys(receiver, "/seq/tick"))
                receiver.wait_until(lambda r, k=seen: len(keys(r, "/seq/tick")) > k, 10)
                was_leader = leader_of(nodes) is node
                assert node.stop(signal.SIGTERM) == 0, node.log()
                if was_leader:
                    assert "leadership handed to" in node.log()
                    handed += 1
                rest = [n for n in nodes if n is not node]
                new = wait_leader(rest, 10)
                status, _, body = new.http.call(
                    "POST", "/jobs", job(f"during-{node.node_id}", time.time() + 3600)
                )
                assert status in (200, 201), body
                node.start()
                wait_until(lambda n=node, t=new: caught_up(n, t), 20, f"{node.node_id} to catch up")
            assert handed >= 1

            leader = wait_leader(nodes)
            expected = set(one_time) | {"tick"} | {f"during-{n.node_id}" for n in nodes}
            for node in nodes:
                listed = node.http.call("GET", "/jobs?limit=100")[2]["jobs"]
                assert {j["id"] for j in listed} == expected, node.node_id
            receiver.wait_until(
                lambda r: {k.split(":")[0] for k in keys(r, "/ok")} >= set(one_time), timeout=30
            )
            ticks = sorted({int(k.split(":")[1]) for k in keys(receiver, "/seq/tick")})
            assert len(ticks) >= 5, ticks
            gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
            assert all(gap == EVERY_MS for gap in gaps), f"missed occurrences: {ticks}"
    finally:
        receiver.stop()


def keys(receiver: Receiver, path: str) -> list[str]:
    return [r.headers["Idempotency-Key"] for r in receiver.received(path)]


def caught_up(node: ClusterNode, leader: ClusterNode) -> bool:
    if not node.answers():
        return False
    mine = node.http.call("GET", "/jobs?limit=1")[2].get("total")
    theirs = leader.http.call("GET", "/jobs?limit=1")[2].get("total")
    return mine is not None and mine == theirs
