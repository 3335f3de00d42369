"""Random but reproducible state-machine commands for property and crash tests.

Ids, times and attempts come from small sets so that a good share of the
random commands are *valid* (a claim names the job's current occurrence...)
and the rest exercise the deterministic rejections.
"""

from __future__ import annotations

import random
from dataclasses import replace

from scheduled_db.jobs.model import ErrorType, JobSpec, JobStatus, JobType
from scheduled_db.raft.messages import Entry
from scheduled_db.state import commands as c

IDS = ("a", "b", "c", "d", "e")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # W3C's example
# A spec whose create and record bytes from before traceparents existed the tests keep.
GOLDEN_SPEC = JobSpec(
    id="golden-1",
    type=JobType.UNICO,
    timestamp_ms=1_900_000_000_000,
    webhook_url="https://example.com/hook",
    payload={"n": 1},
    labels=(("team", "a"),),
)
TIMES = (100, 200, 300, 400)
STATUSES = (JobStatus.COMPLETED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT) + (
    JobStatus.PENDING,  # not an outcome: rejected as invalid
)


def random_spec(rng: random.Random, job_id: str) -> JobSpec:
    recurring = rng.random() < 0.5
    return JobSpec(
        id=job_id,
        type=JobType.RECURRENTE if recurring else JobType.UNICO,
        timestamp_ms=None if recurring else 100,
        cron_expression="*/5 * * * *" if recurring else None,
        webhook_url=f"https://hooks.example.com/{job_id}",
        payload={"n": rng.choice((1, 2)), "tags": ["x", "y"], "ratio": 0.5},
        # Every spec field in some specs (added-later ones too), without another draw
        # from rng: the streams stay what they were.
        method="PUT" if job_id == "c" else None,
        headers=(("X-Team", "a", False), ("Authorization", "tok", True)) if job_id == "c" else (),
    )


def _claim(rng: random.Random, job_id: str, t: int) -> c.Command:
    node = rng.choice(("n1", "n2"))
    return c.ClaimOccurrence(
        job_id,
        t,
        rng.choice((1, 1, 2, 3)),
        node,
        rng.choice((1, 2, 3)),
        t + 1,
        trigger=rng.random() < 0.3,
    )


def _outcome(rng: random.Random, job_id: str, t: int) -> c.Command:
    status = rng.choice(STATUSES)
    failed = status is not JobStatus.COMPLETED
    return c.RecordOutcome(
        job_id,
        t,
        rng.choice((1, 1, 2)),
        status,
        t + 2,
        http_status=rng.choice((200, 500, None)),
        response_time_ms=rng.choice((5, None)),
        error_message="boom" if failed else None,
        error_type=rng.choice((None, ErrorType.HTTP_ERROR)),
        retry_at_ms=rng.choice((None, t + 50)) if failed else None,
        trigger=rng.random() < 0.3,
    )


def _complete(rng: random.Random, job_id: str, t: int) -> c.Command:
    final = rng.choice((None, JobStatus.COMPLETED, JobStatus.FAILED))
    return c.CompleteOccurrence(job_id, t, rng.choice((None, t + 100)), final, t + 3)


def _lifecycle(rng: random.Random, job_id: str, t: int) -> c.Command:
    """Claim, outcome and completion of one attempt in one batch (the common path)."""
    attempt = rng.choice((1, 1, 2))
    trigger = rng.random() < 0.25
    claim = c.ClaimOccurrence(job_id, t, attempt, "n1", rng.choice((1, 2, 3)), t + 1, trigger)
    outcome = _outcome(rng, job_id, t)
    assert isinstance(outcome, c.RecordOutcome)
    steps: list[c.Command] = [claim, replace(outcome, attempt=attempt, trigger=trigger)]
    if trigger:  # a triggered run: asked for, claimed, recorded; no completion
        return c.Batch((c.TriggerJob(job_id, t), *steps[: rng.randint(1, len(steps))]))
    if rng.random() < 0.7:
        steps.append(_complete(rng, job_id, t))
    return c.Batch(tuple(steps[: rng.randint(1, len(steps))]))


def random_command(rng: random.Random, allow_batch: bool = True) -> c.Command:
    job_id, t = rng.choice(IDS), rng.choice(TIMES)
    roll = rng.random()
    if allow_batch and rng.random() < 0.15:
        return _lifecycle(rng, job_id, t)
    if roll < 0.22:
        return c.CreateJob(random_spec(rng, job_id), t - 50, t, rng.choice((None, TRACEPARENT)))
    if roll < 0.42:
        return _claim(rng, job_id, t)
    if roll < 0.60:
        return _outcome(rng, job_id, t)
    if roll < 0.72:
        return _complete(rng, job_id, t)
    return _admin(rng, job_id, t, roll, allow_batch)


def _admin(rng: random.Random, job_id: str, t: int, roll: float, allow_batch: bool) -> c.Command:
    if roll < 0.76:
        return c.CancelJob(job_id, t, rng.choice((None, "no longer needed", "pagada ✓")))
    if roll < 0.79:
        return c.DeleteJob(job_id)
    if roll < 0.83:
        return c.PauseJob(job_id)
    if roll < 0.87:
        return c.ResumeJob(job_id, rng.choice((None, t + 100)))
    if roll < 0.90:
        return c.UpdateJob(random_spec(rng, job_id), t)
    if roll < 0.92 or not allow_batch:
        return c.PruneHistory(rng.choice(TIMES), rng.choice((1, 5)))
    if roll < 0.95:
        return c.TriggerJob(job_id, t)
    n = rng.randint(1, 4)
    return c.Batch(tuple(random_command(rng, allow_batch=False) for _ in range(n)))


def random_entry_data(rng: random.Random) -> bytes:
    """Mostly commands; sometimes a leader no-op or undecodable bytes."""
    roll = rng.random()
    if roll < 0.04:
        return b""
    if roll < 0.07:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
    return c.encode_command(random_command(rng))


def entry_at(seed: int, index: int, term: int = 1) -> Entry:
    """The entry at ``index`` of the reproducible stream ``seed`` (random access)."""
    rng = random.Random(seed * 1_000_003 + index)
    return Entry(term, index, data=random_entry_data(rng))
