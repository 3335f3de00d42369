"""Record encodings: the fast encoders equal the job module's own wire form."""

from __future__ import annotations

import random

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduled_db.jobs.model import Attempt, ErrorType, Job, JobStatus
from scheduled_db.state import records as r
from tests.command_gen import random_spec


def _packed(d: dict[str, object]) -> bytes:
    return bytes([r.RECORD_VERSION]) + bytes(msgpack.packb(d, use_bin_type=True))


@settings(max_examples=100, deadline=None)
@given(rng=st.randoms(use_true_random=False), status=st.sampled_from(JobStatus))
def test_job_and_attempt_records_match_to_wire(rng: random.Random, status: JobStatus) -> None:
    spec = random_spec(rng, "job-1")
    job = Job(spec, 1, rng.choice((None, 5)), status=status, paused=True, extra={"x": [1]})
    assert r.encode_job(job) == _packed(job.to_wire())
    assert r.decode_job(r.encode_job(job)) == job
    attempt = Attempt("job-1", 5, 2, "n1", 3, 6, 9, status, 500, 12, "boom", ErrorType.DNS_ERROR)
    assert r.encode_attempt(attempt) == _packed(attempt.to_wire())
    assert r.decode_attempt(r.encode_attempt(attempt)) == attempt


def test_keys_sort_numerically() -> None:
    assert r.due_key(255, "b") < r.due_key(256, "a") < r.due_key(2**40, "a")
    assert r.history_key("a", 9, 1) < r.history_key("a", 10, 0)
    assert r.parse_by_start_key(r.by_start_key(7, "job:x", 8, 9)) == ("job:x", 8, 9, False)
    assert r.parse_by_start_key(r.by_start_key(7, "j", 8, 0x74, True)) == ("j", 8, 0x74, True)
    assert r.parse_due_key(r.due_key(42, "id")) == (42, "id")


def _as_written_before(job: Job) -> dict[str, object]:
    """The wire form of a job record before cancel reasons existed (its field order)."""
    return {
        "spec": job.spec.to_wire(),
        "created_at_ms": job.created_at_ms,
        "next_run_at_ms": job.next_run_at_ms,
        "status": job.status.value,
        "paused": job.paused,
        "attempt_count": job.attempt_count,
        "first_attempt_at_ms": job.first_attempt_at_ms,
        "last_attempt_at_ms": job.last_attempt_at_ms,
        "completed_at_ms": job.completed_at_ms,
        "executing_node_id": job.executing_node_id,
        "extra": job.extra,
    }


def test_job_records_written_before_cancel_reasons_decode() -> None:
    pending = Job(random_spec(random.Random(1), "old"), 1, 5, attempt_count=2)
    old = _packed(_as_written_before(pending))
    assert r.decode_job(old) == pending
    assert r.encode_job(pending) == old  # a job never cancelled: the same bytes as before
    cancelled = pending.evolve(status=JobStatus.CANCELLED, next_run_at_ms=None, completed_at_ms=9)
    decoded = r.decode_job(_packed(_as_written_before(cancelled)))
    # Cancelled back then: no reason was kept, and the cancel time is its completion.
    assert (decoded.cancellation_reason, decoded.cancelled_at_ms) == (None, 9)
    assert decoded == cancelled.evolve(cancelled_at_ms=9)


def test_a_cancelled_job_record_keeps_the_reason_and_time() -> None:
    spec = random_spec(random.Random(2), "tarea-año")
    job = Job(spec, 1, None, status=JobStatus.CANCELLED, completed_at_ms=9, cancelled_at_ms=9)
    job = job.evolve(cancellation_reason="pagada ✓")
    assert r.decode_job(r.encode_job(job)) == job
    assert r.encode_job(job) == _packed(job.to_wire())


def test_counters_written_before_the_last_execution_was_kept_still_decode() -> None:
    by_status = tuple((s, i) for i, s in enumerate(r.STATUS_ORDER))
    old = bytes([r.RECORD_VERSION]) + msgpack.packb([3, 99, [n for _, n in by_status]])
    assert r.decode_counters(old) == r.Counters(3, 99, by_status, None)
    assert r.encode_counters(r.Counters(3, 99, by_status)) == old  # unchanged until a run
    ran = r.Counters(3, 99, by_status, 1_234)
    assert r.decode_counters(r.encode_counters(ran)) == ran
