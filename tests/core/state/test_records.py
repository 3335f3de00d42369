"""Record encodings: the fast encoders equal the job module's own wire form."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduled_db.jobs.model import Attempt, ErrorType, Job, JobStatus, evolved, field_values
from scheduled_db.state import records as r
from tests.command_gen import GOLDEN_SPEC, TRACEPARENT, random_spec


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


# What the code before traceparents existed wrote for Job(GOLDEN_SPEC, 1.8e12, 1.9e12) (hex).
OLD_JOB = bytes.fromhex(
    "018ba4737065638ca26964a8676f6c64656e2d31a474797065a5756e69636fac74696d657374616d705f6d"
    "73cf000001ba60d33800af63726f6e5f65787072657373696f6ec0a874696d657a6f6e65a3555443ac6c61"
    "73745f646174655f6d73c0ab776562686f6f6b5f75726cb868747470733a2f2f6578616d706c652e636f6d"
    "2f686f6f6ba77061796c6f616481a16e01ae6d6973666972655f706f6c696379a9666972655f6f6e6365ac"
    "6d61785f617474656d707473c0aa74696d656f75745f6d73c0a66c6162656c739192a47465616da161ad63"
    "7265617465645f61745f6d73cf000001a3185c5000ae6e6578745f72756e5f61745f6d73cf000001ba60d3"
    "3800a6737461747573a770656e64696e67a6706175736564c2ad617474656d70745f636f756e7400b36669"
    "7273745f617474656d70745f61745f6d73c0b26c6173745f617474656d70745f61745f6d73c0af636f6d70"
    "6c657465645f61745f6d73c0b1657865637574696e675f6e6f64655f6964c0a5657874726180"
)


def test_a_job_created_untraced_is_stored_as_before_and_a_traced_one_keeps_its_context() -> None:
    job = Job(GOLDEN_SPEC, 1_800_000_000_000, 1_900_000_000_000)
    assert r.encode_job(job) == OLD_JOB
    assert r.decode_job(OLD_JOB) == job
    traced = job.evolve(traceparent=TRACEPARENT)
    assert r.decode_job(r.encode_job(traced)) == traced
    assert r.encode_job(traced) == _packed(traced.to_wire())
    # What admission counts a create as grows by what the record grows by.
    grown = len(r.encode_job(traced)) - len(OLD_JOB)
    assert r.new_job_bytes(traced) - r.new_job_bytes(job) == grown > len(TRACEPARENT)


@settings(max_examples=100, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_evolved_is_dataclasses_replace(rng: random.Random) -> None:
    job = Job(random_spec(rng, "job-1"), 1, 5, extra={"x": [1]})
    attempt = Attempt("job-1", 5, 2, "n1", 3, 6)
    execution = r.Execution(5, 1, True, "n1", 3)
    for obj, changes in (
        (job, {"status": rng.choice(list(JobStatus)), "attempt_count": rng.randint(0, 9)}),
        (job, {"next_run_at_ms": None, "executing_node_id": "n2", "version": 4}),
        (attempt, {"end_time_ms": 9, "error_type": ErrorType.TIMEOUT, "trigger": True}),
        (execution, {"claim_open": False}),
        (execution, {}),
    ):
        made = evolved(obj, **changes)
        assert made == replace(obj, **changes)
        assert type(made) is type(obj)
    with pytest.raises(TypeError, match="no field 'colour'"):
        evolved(job, colour="red")


def test_evolved_copies_a_dataclass_of_one_field() -> None:
    """``field_values`` gives a tuple for one field too (a bare ``attrgetter`` of one
    name gives the value itself, which a string would spread into characters)."""
    assert evolved(Withdrawn("job-1"), job_id="job-2") == Withdrawn("job-2")
    assert field_values(Withdrawn)(Withdrawn("job-1")) == ("job-1",)


@dataclass(frozen=True, slots=True)
class Withdrawn:
    job_id: str
