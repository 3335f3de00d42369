"""The job state machine, pure: status machine, rejections, batches, determinism."""

from __future__ import annotations

import random
from dataclasses import replace

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduled_db.jobs.model import Job, JobStatus
from scheduled_db.raft.messages import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from scheduled_db.state import commands as c
from scheduled_db.state import fsm, queries
from scheduled_db.state import records as r
from scheduled_db.state.records import APPLIED, encode_member
from scheduled_db.state.results import ResultCode
from scheduled_db.state.stateview import MemoryState, state_digest
from scheduled_db.state.txn import JobMemo
from scheduled_db.testing import sim_jobs
from tests.command_gen import random_command, random_entry_data
from tests.fsm_helpers import ALL, Machine, check_invariants, spec

OK = ResultCode.OK


def _claimed(m: Machine, job_id: str = "j1", at: int = 1_000, term: int = 1) -> None:
    assert m.one(c.ClaimOccurrence(job_id, at, 1, "n1", term, at + 1)).code is OK


def test_create_then_read() -> None:
    m = Machine()
    res = m.one(c.CreateJob(spec(), 10, 1_000))
    assert res.code is OK and res.job is not None and res.job.status is JobStatus.PENDING
    assert queries.get_job(m.state, "j1") == res.job
    assert queries.due_before(m.state, 1_001) == (res.job,)
    assert queries.due_before(m.state, 1_000) == ()
    assert queries.counters(m.state).jobs == 1
    check_invariants(m.state)


def test_duplicate_create_identical_or_different() -> None:
    m = Machine()
    first = m.one(c.CreateJob(spec(), 10, 1_000))
    again = m.one(c.CreateJob(spec(), 99, 2_000))
    assert again.code is ResultCode.EXISTS_IDENTICAL and again.job == first.job
    other = m.one(c.CreateJob(spec(payload={"k": "other"}), 10, 1_000))
    assert other.code is ResultCode.EXISTS_DIFFERENT and not other.accepted
    assert queries.get_job(m.state, "j1") == first.job


@pytest.mark.parametrize("bad_id", ["", "a\0b", "x" * 1025, "\U0001f600" * 257])
def test_invalid_job_id_is_rejected(bad_id: str) -> None:
    m = Machine()
    assert m.one(c.CreateJob(spec(bad_id), 10, 1_000)).code is ResultCode.INVALID
    assert queries.counters(m.state).jobs == 0


@pytest.mark.parametrize("job_id", ["\U0001f600" * 256, "tarea-año", "job 1", "%?#+@ ."])
def test_every_id_validation_accepts_fits_a_key(job_id: str) -> None:
    # 256 characters of 4 bytes: the longest id the API accepts is 1,024 bytes.
    m = Machine()
    assert m.one(c.CreateJob(spec(job_id), 10, 1_000)).code is ResultCode.OK
    assert queries.get_job(m.state, job_id) is not None


def test_one_time_job_lifecycle() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    _claimed(m)
    assert queries.due_before(m.state, 10**12) == ()
    (claim,) = queries.open_claims(m.state)
    assert (claim.job_id, claim.scheduled_at_ms, claim.attempt_num, claim.term) == (
        "j1",
        1_000,
        1,
        1,
    )
    done = m.run(
        c.Batch(
            (
                c.RecordOutcome("j1", 1_000, 1, JobStatus.COMPLETED, 1_005, http_status=200),
                c.CompleteOccurrence("j1", 1_000, None, None, 1_006),
            )
        )
    )
    assert [r.code for r in done] == [OK, OK]
    job = queries.get_job(m.state, "j1")
    assert job is not None and job.status is JobStatus.COMPLETED and job.completed_at_ms == 1_006
    assert queries.open_claims(m.state) == ()
    (attempt,) = queries.executions(m.state, "j1")
    assert attempt.status is JobStatus.COMPLETED and attempt.http_status == 200
    check_invariants(m.state)


def test_retry_after_failure_uses_the_next_attempt() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    _claimed(m)
    failed = m.one(c.RecordOutcome("j1", 1_000, 1, JobStatus.FAILED, 1_002, retry_at_ms=1_500))
    assert failed.job is not None and failed.job.status is JobStatus.FAILED
    assert [j.id for j in queries.due_before(m.state, 1_501)] == ["j1"]
    assert m.one(c.ClaimOccurrence("j1", 1_000, 1, "n1", 1, 1_501)).code is ResultCode.STALE
    retry = m.one(c.ClaimOccurrence("j1", 1_000, 2, "n2", 1, 1_501))
    assert retry.code is OK and retry.job is not None and retry.job.attempt_count == 2
    assert len(queries.executions(m.state, "j1")) == 2
    check_invariants(m.state)


def test_claims_naming_the_wrong_occurrence_attempt_or_term_are_stale() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    assert m.one(c.ClaimOccurrence("j1", 999, 1, "n1", 1, 1)).code is ResultCode.STALE
    assert m.one(c.ClaimOccurrence("j1", 1_000, 2, "n1", 1, 1)).code is ResultCode.STALE
    _claimed(m, term=2)
    assert m.one(c.ClaimOccurrence("j1", 1_000, 2, "n2", 2, 5)).code is ResultCode.STALE
    takeover = m.one(c.ClaimOccurrence("j1", 1_000, 2, "n2", 3, 5))  # a newer leader re-fires
    assert takeover.code is OK
    assert [a.attempt_num for a in queries.open_claims(m.state)] == [2]
    stale = m.one(c.RecordOutcome("j1", 1_000, 1, JobStatus.COMPLETED, 9))
    assert stale.code is ResultCode.STALE
    check_invariants(m.state)


def test_recurring_completion_reschedules() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(recurring=True), 10, 1_000))
    _claimed(m)
    m.one(c.RecordOutcome("j1", 1_000, 1, JobStatus.COMPLETED, 1_002))
    res = m.one(c.CompleteOccurrence("j1", 1_000, 4_600, None, 1_003))
    assert res.job is not None and res.job.status is JobStatus.PENDING
    assert res.job.next_run_at_ms == 4_600 and res.job.attempt_count == 0
    assert queries.due_before(m.state, 4_000) == ()
    assert [j.id for j in queries.due_before(m.state, 4_601)] == ["j1"]
    assert m.one(c.ClaimOccurrence("j1", 4_600, 1, "n1", 1, 4_601)).code is OK
    again = m.one(c.CompleteOccurrence("j1", 1_000, 9_000, None, 1))
    assert again.code is ResultCode.ILLEGAL_TRANSITION  # in flight: needs an outcome first
    check_invariants(m.state)


def test_one_time_job_cannot_get_a_next_run() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    res = m.one(c.CompleteOccurrence("j1", 1_000, 5_000, None, 1))
    assert res.code is ResultCode.INVALID


def test_cancel_in_flight_rejects_the_late_outcome() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    _claimed(m)
    assert m.one(c.CancelJob("j1", 1_001)).code is OK
    late = m.one(c.RecordOutcome("j1", 1_000, 1, JobStatus.COMPLETED, 1_003))
    assert late.code is ResultCode.ILLEGAL_TRANSITION
    complete = m.one(c.CompleteOccurrence("j1", 1_000, None, JobStatus.COMPLETED, 1_004))
    assert complete.code is ResultCode.ILLEGAL_TRANSITION
    assert (
        m.one(c.ClaimOccurrence("j1", 1_000, 2, "n1", 5, 1)).code is ResultCode.ILLEGAL_TRANSITION
    )
    assert m.one(c.CancelJob("j1", 1_005)).code is ResultCode.UNCHANGED
    job = queries.get_job(m.state, "j1")
    assert job is not None and job.status is JobStatus.CANCELLED
    assert queries.open_claims(m.state) == ()
    assert queries.executions(m.state, "j1")[0].status is JobStatus.CANCELLED
    check_invariants(m.state)


def test_a_cancel_keeps_its_reason_and_time_and_a_second_cancel_changes_neither() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    first = m.one(c.CancelJob("j1", 500, "paid early"))
    assert first.code is OK and first.job is not None
    assert (first.job.cancellation_reason, first.job.cancelled_at_ms) == ("paid early", 500)
    again = m.one(c.CancelJob("j1", 900, "another reason"))
    assert again.code is ResultCode.UNCHANGED and again.job == first.job
    assert queries.get_job(m.state, "j1") == first.job
    m.one(c.CreateJob(spec("j2"), 10, 1_000))
    plain = m.one(c.CancelJob("j2", 600)).job
    assert plain is not None and (plain.cancellation_reason, plain.cancelled_at_ms) == (None, 600)
    check_invariants(m.state)


def test_an_attempt_starts_when_its_request_goes_out_not_when_it_is_claimed() -> None:
    # Claims are made ahead of the run (due at 1_000, claimed at 800): a start at the
    # claim would read as a delivery 200 ms early.
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    claim = m.one(c.ClaimOccurrence("j1", 1_000, 1, "n1", 1, 800))
    assert claim.attempt is not None and claim.job is not None
    assert (claim.attempt.start_time_ms, claim.attempt.claimed_at_ms) == (1_000, 800)
    assert claim.job.first_attempt_at_ms == claim.job.last_attempt_at_ms == 1_000
    sent = c.RecordOutcome(
        "j1", 1_000, 1, JobStatus.FAILED, 1_034, 500, response_time_ms=30, retry_at_ms=2_000
    )
    first = m.one(sent)  # the request went out at 1_004 and was answered 30 ms later
    assert first.attempt is not None and first.job is not None
    assert (first.attempt.start_time_ms, first.attempt.claimed_at_ms) == (1_004, 800)
    assert first.job.first_attempt_at_ms == first.job.last_attempt_at_ms == 1_004
    # The retry, claimed ahead of its time too, sends nothing (no turn came).
    assert m.one(c.ClaimOccurrence("j1", 1_000, 2, "n1", 1, 1_900)).code is OK
    unsent = m.one(c.RecordOutcome("j1", 1_000, 2, JobStatus.TIMEOUT, 2_500))
    assert unsent.attempt is not None and unsent.job is not None
    assert (unsent.attempt.start_time_ms, unsent.attempt.claimed_at_ms) == (2_000, 1_900)
    assert (unsent.job.first_attempt_at_ms, unsent.job.last_attempt_at_ms) == (1_004, 2_000)
    check_invariants(m.state)


def test_an_attempt_cancelled_before_its_time_ends_where_it_starts() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    _claimed(m, at=1_000)  # claimed at 1_001 for the run at 1_000: starts at 1_001
    m.one(c.CreateJob(spec("j2"), 10, 1_000))
    assert m.one(c.ClaimOccurrence("j2", 1_000, 1, "n1", 1, 800)).code is OK
    assert m.one(c.CancelJob("j2", 900)).code is OK
    (attempt,) = queries.executions(m.state, "j2")
    assert (attempt.start_time_ms, attempt.end_time_ms, attempt.claimed_at_ms) == (900, 900, 800)
    job = queries.get_job(m.state, "j2")
    assert job is not None and job.first_attempt_at_ms == job.last_attempt_at_ms == 900
    check_invariants(m.state)


def test_an_attempt_claimed_by_older_code_closes_under_its_claim_time() -> None:
    # Older code kept the claim time as the start and had no claimed_at_ms: the
    # pruning index holds the attempt under that time, and must still after its outcome.
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    assert m.one(c.ClaimOccurrence("j1", 1_000, 1, "n1", 1, 800)).code is OK
    key = r.history_key("j1", 1_000, 1)
    current = m.state.get(key)
    assert current is not None
    written = {**msgpack.unpackb(current[1:]), "start_time_ms": 800}
    del written["claimed_at_ms"]
    old = bytes([r.RECORD_VERSION]) + msgpack.packb(written)
    counters = r.decode_counters(m.state.get(r.COUNTERS) or b"")
    size = replace(counters, bytes=counters.bytes + len(old) - len(current))
    m.state.apply([(key, old), (r.COUNTERS, r.encode_counters(size))])
    assert r.decode_attempt(old).claim_ms == 800
    check_invariants(m.state)
    done = m.one(c.RecordOutcome("j1", 1_000, 1, JobStatus.COMPLETED, 1_020, 200, 15))
    assert done.attempt is not None
    assert (done.attempt.start_time_ms, done.attempt.claimed_at_ms) == (1_005, 800)
    check_invariants(m.state)  # the t/ key written at the claim is still the attempt's


def test_finished_jobs_cannot_be_cancelled_paused_or_updated() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    m.one(c.CompleteOccurrence("j1", 1_000, None, JobStatus.COMPLETED, 2))  # skipped occurrence
    for cmd in (c.CancelJob("j1", 3), c.PauseJob("j1"), c.UpdateJob(spec(), 5)):
        assert m.one(cmd).code is ResultCode.ILLEGAL_TRANSITION


def test_pause_and_resume() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(recurring=True), 10, 1_000))
    assert m.one(c.PauseJob("j1")).code is OK
    assert m.one(c.PauseJob("j1")).code is ResultCode.UNCHANGED
    assert queries.due_before(m.state, 10**12) == ()
    assert (
        m.one(c.ClaimOccurrence("j1", 1_000, 1, "n1", 1, 2)).code is ResultCode.ILLEGAL_TRANSITION
    )
    res = m.one(c.ResumeJob("j1", 7_000))
    assert res.job is not None and res.job.next_run_at_ms == 7_000 and not res.job.paused
    assert m.one(c.ResumeJob("j1")).code is ResultCode.UNCHANGED
    assert m.one(c.ClaimOccurrence("j1", 7_000, 1, "n1", 1, 7_001)).code is OK
    check_invariants(m.state)


def test_update_only_while_pending() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    res = m.one(c.UpdateJob(spec(webhook_url="https://other.example/x"), 2_000))
    assert res.code is OK and res.job is not None and res.job.next_run_at_ms == 2_000
    assert m.one(c.UpdateJob(spec("nope"), 1)).code is ResultCode.NOT_FOUND
    _claimed(m, at=2_000)
    assert m.one(c.UpdateJob(spec(), 3_000)).code is ResultCode.ILLEGAL_TRANSITION
    check_invariants(m.state)


def test_an_update_restarts_a_run_waiting_for_a_retry_and_checks_version_and_type() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(), 10, 1_000))
    _claimed(m, at=1_000)
    failed = c.RecordOutcome("j1", 1_000, 1, JobStatus.FAILED, 1_010, 500, retry_at_ms=1_500)
    assert m.one(failed).code is OK
    assert m.one(c.UpdateJob(spec(), 3_000, expected_version=7)).code is ResultCode.STALE
    moved = m.one(c.UpdateJob(spec(recurring=True), 3_000, 1))
    assert (moved.code, moved.detail) == (ResultCode.INVALID, "the type cannot change")
    res = m.one(c.UpdateJob(spec(payload={"k": "w"}), 3_000, expected_version=1))
    assert res.code is OK and res.job is not None
    job = res.job
    assert (job.status, job.next_run_at_ms, job.attempt_count, job.version) == (
        JobStatus.PENDING, 3_000, 0, 2
    )  # fmt: skip
    assert [j.id for j in queries.due_before(m.state, 10**12)] == ["j1"]  # due at 3,000
    assert m.one(c.PauseJob("j1")).job.version == 3  # type: ignore[union-attr]
    check_invariants(m.state)


def test_labels_type_and_paused_are_indexed_and_unindexed_with_the_job() -> None:
    m = Machine()
    m.one(c.CreateJob(spec(labels=(("team", "a"),)), 10, 1_000))
    keys = {k for k, _ in m.state.iter_range(*ALL)}
    assert {r.label_prefix("team", "a") + b"j1", r.type_prefix(spec().type) + b"j1"} <= keys
    m.one(c.UpdateJob(spec(labels=(("team", "b"),)), 2_000))
    m.one(c.PauseJob("j1"))
    keys = {k for k, _ in m.state.iter_range(*ALL)}
    assert r.label_prefix("team", "a") + b"j1" not in keys
    assert {r.label_prefix("team", "b") + b"j1", r.paused_key("j1")} <= keys
    m.one(c.DeleteJob("j1"))
    left = [k for k, _ in m.state.iter_range(*ALL) if not k.startswith(b"m/")]
    assert left == []


def test_a_create_reads_only_its_job_key_and_counts_its_bytes_as_the_state_holds_them() -> None:
    m = Machine()
    m.one(c.CreateJob(spec("a"), 10, 1_000))  # not the first apply: indexes exist
    reads: list[bytes] = []

    class Counting(MemoryState):
        def get(self, key: bytes) -> bytes | None:
            reads.append(key)
            return super().get(key)

    counted = Counting()
    counted.apply(m.state.iter_range(*ALL))
    job = spec("b", labels=(("team", "x"), ("env", "prod")))
    out = fsm.apply_entries(counted, [Entry(1, m.index + 1, data=c.encode_command(
        c.CreateJob(job, 10, 1_000)))])  # fmt: skip
    # The job's key (is the id free?), then the state's own records, none of the new
    # job's other keys: they cannot exist while the job does not.
    assert [k for k in reads if not k.startswith(b"m/")] == [r.job_key("b")], reads
    counted.apply(out.writes)
    held = sum(len(k) + len(v) for k, v in counted.iter_range(*ALL) if not k.startswith(b"m/"))
    assert queries.counters(counted).bytes == held


def test_an_older_state_gets_its_indexes_on_its_first_apply() -> None:
    m = Machine()
    m.one(c.CreateJob(spec("a", labels=(("team", "x"),)), 10, 1_000))
    m.one(c.PauseJob("a"))
    indexed = dict(m.state.iter_range(*ALL))
    # As a state written before these indexes: no y/, l/, p/ keys, no marker, and
    # counters that never counted them.
    added = (r.BY_TYPE, r.BY_LABEL, r.PAUSED, r.INDEXES)
    kept = {k: v for k, v in indexed.items() if not k.startswith(added)}
    gone = sum(len(k) + len(v) for k, v in indexed.items() if k.startswith(added[:3]))
    counters = r.decode_counters(kept[r.COUNTERS])
    kept[r.COUNTERS] = r.encode_counters(replace(counters, bytes=counters.bytes - gone))
    older = MemoryState()
    older.apply(kept.items())
    out = fsm.apply_entries(
        older, [Entry(1, m.index + 1, data=c.encode_command(c.DeleteJob("zz")))]
    )
    older.apply(out.writes)
    again = Machine()
    again.state, again.index = m.state, m.index
    again.one(c.DeleteJob("zz"))
    assert state_digest(older) == state_digest(again.state)


def test_delete_removes_every_key_of_the_job() -> None:
    m = Machine()
    m.one(c.CreateJob(spec("keep"), 10, 1_000))
    before = {k: v for k, v in m.state.iter_range(*ALL) if not k.startswith(b"m/")}
    m.one(c.CreateJob(spec(), 10, 1_000))
    _claimed(m)
    m.one(c.RecordOutcome("j1", 1_000, 1, JobStatus.FAILED, 1_002, retry_at_ms=1_100))
    assert m.one(c.DeleteJob("j1")).code is OK
    after = {k: v for k, v in m.state.iter_range(*ALL) if not k.startswith(b"m/")}
    assert after == before
    assert m.one(c.DeleteJob("j1")).code is ResultCode.NOT_FOUND
    assert m.one(c.RecordOutcome("j1", 1_000, 1, JobStatus.FAILED, 1)).code is ResultCode.NOT_FOUND
    check_invariants(m.state)


def test_prune_history_uses_the_cutoff_in_the_command() -> None:
    m = Machine()
    for i in range(3):
        m.one(c.CreateJob(spec(f"j{i}"), 10, 1_000))
        _claimed(m, f"j{i}", at=1_000)
    for i in range(2):
        m.one(c.RecordOutcome(f"j{i}", 1_000, 1, JobStatus.COMPLETED, 1_002))
    assert m.one(c.PruneHistory(cutoff_ms=1_001, limit=10)).count == 0  # started at 1_001
    assert m.one(c.PruneHistory(cutoff_ms=1_002, limit=1)).count == 1
    assert m.one(c.PruneHistory(cutoff_ms=1_002, limit=10)).count == 1  # j2 is in flight
    assert [len(queries.executions(m.state, f"j{i}")) for i in range(3)] == [0, 0, 1]
    check_invariants(m.state)


def test_batch_applies_each_command_on_its_own_in_one_entry() -> None:
    m = Machine()
    out = m.apply_data(
        c.encode_command(
            c.Batch((c.CreateJob(spec("x"), 1, 100), c.DeleteJob("ghost"), c.PauseJob("x")))
        )
    )
    (entry,) = out.results
    assert [r.code for r in entry.results] == [OK, ResultCode.NOT_FOUND, OK]
    job = queries.get_job(m.state, "x")
    assert job is not None and job.paused


def test_empty_entry_only_advances_the_applied_index() -> None:
    m = Machine()
    m.run(c.CreateJob(spec(), 10, 1_000))
    before = {k: v for k, v in m.state.iter_range(*ALL) if k != APPLIED}
    out = m.apply_data(b"")
    assert out.results[0].results == () and out.applied_index == 2
    assert {k: v for k, v in m.state.iter_range(*ALL) if k != APPLIED} == before
    assert fsm.applied_position(m.state) == (2, 1)


@pytest.mark.parametrize("data", [b"\x01", b"\x02garbage", b"\x01\x93\x01\x02", b"\xff" * 5])
def test_undecodable_entries_are_rejected_not_raised(data: bytes) -> None:
    m = Machine()
    out = m.apply_data(data)
    (res,) = out.results[0].results
    assert res.code is ResultCode.INVALID and res.kind is None
    assert fsm.applied_position(m.state)[0] == 1


def test_conf_change_needs_its_conf_state_and_persists_it() -> None:
    m = Machine()
    cc = ConfChange(ConfChangeType.ADD_VOTER, "n2").encode()
    entry = Entry(1, 1, EntryType.CONF_CHANGE, cc)
    with pytest.raises(fsm.ApplyOrderError):
        fsm.apply_entries(m.state, [entry])
    conf = ConfState(("n1", "n2"))
    out = fsm.apply_entries(m.state, [entry], conf)
    m.state.apply(out.writes)
    assert queries.conf_state(m.state) == conf and out.results[0].results == ()


def test_replayed_entries_are_skipped_and_gaps_raise() -> None:
    m = Machine()
    m.run(c.CreateJob(spec(), 10, 1_000), c.CancelJob("j1", 5))
    digest = state_digest(m.state)
    replay = fsm.apply_entries(m.state, [Entry(1, 1, data=c.encode_command(c.DeleteJob("j1")))])
    assert replay.writes == () and replay.results == ()
    assert state_digest(m.state) == digest
    with pytest.raises(fsm.ApplyOrderError):
        fsm.apply_entries(m.state, [Entry(1, 4, data=b"")])


def test_apply_does_not_touch_the_view_it_reads() -> None:
    m = Machine()
    m.run(c.CreateJob(spec(), 10, 1_000))
    digest = state_digest(m.state)
    fsm.apply_entries(m.state, [Entry(1, 2, data=c.encode_command(c.DeleteJob("j1")))])
    assert state_digest(m.state) == digest


# --- properties -------------------------------------------------------------------


def _replay(datas: list[bytes], chunk: int) -> tuple[str, list[object]]:
    state, results = MemoryState(), list[object]()
    entries = [Entry(1, i + 1, data=d) for i, d in enumerate(datas)]
    for i in range(0, len(entries), chunk):
        out = fsm.apply_entries(state, entries[i : i + chunk])
        state.apply(out.writes)
        results.extend(out.results)
        check_invariants(state)
    return state_digest(state), results


@settings(max_examples=60, deadline=None)
@given(rng=st.randoms(use_true_random=False), n=st.integers(1, 60), chunk=st.integers(1, 9))
def test_same_commands_give_the_same_state_however_batched(
    rng: random.Random, n: int, chunk: int
) -> None:
    datas = [random_entry_data(rng) for _ in range(n)]
    digest_a, results_a = _replay(datas, 1)
    digest_b, results_b = _replay(datas, chunk)
    assert digest_a == digest_b
    assert results_a == results_b


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 80))
def test_the_leader_applying_its_own_commands_undecoded_writes_what_followers_write(
    seed: int, n: int
) -> None:
    rng = random.Random(seed)
    cmds = [random_command(rng) for _ in range(n)]
    follower, leader = MemoryState(), MemoryState()
    proposed = sim_jobs.Proposed()  # what a node's memo gives, without its lock
    for i, cmd in enumerate(cmds, start=1):
        data = c.encode_command(cmd)
        proposed.remember(data, cmd)
        entry = [Entry(1, i, data=bytes(data))]  # equal bytes, as read back from the log
        a = fsm.apply_entries(follower, entry)
        b = fsm.apply_entries(leader, entry, proposed=proposed)
        assert a == b
        follower.apply(a.writes)
        leader.apply(b.writes)
    assert len(proposed) == 0  # each taken by its entry
    assert state_digest(follower) == state_digest(leader)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 80), size=st.integers(1, 4))
def test_a_memo_of_written_jobs_never_changes_what_an_apply_writes(
    seed: int, n: int, size: int
) -> None:
    """Each entry applied by a node that decodes every job and by one that reads the
    jobs it wrote from a small memo (jobs fall out of it; some of its jobs are stale:
    every fourth entry's writes never reach that node's state, as a failed write)."""
    rng = random.Random(seed)
    plain, memoized = MemoryState(), MemoryState()
    memo = JobMemo(size=size)
    for i in range(1, n + 1):
        entry = [Entry(1, i, data=c.encode_command(random_command(rng)))]
        a = fsm.apply_entries(plain, entry)
        b = fsm.apply_entries(memoized, entry, memo=memo)
        assert a == b
        plain.apply(a.writes)
        memoized.apply(b.writes)
        if i % 4 == 0:  # a stale memo: this entry's jobs, written again and not kept
            fsm.apply_entries(memoized, [Entry(1, i + 1, data=entry[0].data)], memo=memo)
    assert state_digest(plain) == state_digest(memoized)


def test_an_occurrence_reads_back_from_the_memo_the_jobs_it_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Create, claim, and the outcome with the completion, each in an entry of its
    own: with a memo the job is never decoded; without one, at each later entry."""
    decoded: list[bytes] = []
    decode = r.decode_job

    def counting(data: bytes) -> Job:
        decoded.append(data)
        return decode(data)

    monkeypatch.setattr(r, "decode_job", counting)
    cmds = [
        c.CreateJob(spec("z"), 10, 1_000),  # the first apply (it builds any indexes missing)
        c.CreateJob(spec("a"), 10, 1_000),
        c.ClaimOccurrence("a", 1_000, 1, "n1", 1, 990),
        c.Batch((
            c.RecordOutcome("a", 1_000, 1, JobStatus.COMPLETED, 1_003, http_status=200),
            c.CompleteOccurrence("a", 1_000, None, JobStatus.COMPLETED, 1_003),
        )),
    ]  # fmt: skip
    for memo, decodes in ((None, 2), (JobMemo(), 0)):
        state, decoded[:] = MemoryState(), []
        for i, cmd in enumerate(cmds, start=1):
            out = fsm.apply_entries(state, [Entry(1, i, data=c.encode_command(cmd))], memo=memo)
            assert all(res.code is OK for e in out.results for res in e.results)
            state.apply(out.writes)
            if i == 1:
                decoded.clear()
        assert len(decoded) == decodes
        job = queries.get_job(state, "a")
        assert job is not None and job.status is JobStatus.COMPLETED
    assert memo is not None and memo.hits == 2


def test_a_memo_holds_its_size_and_forgets_a_deleted_job() -> None:
    memo, state = JobMemo(size=2), MemoryState()
    for i, job_id in enumerate(("a", "b", "c"), start=1):
        out = fsm.apply_entries(state, [Entry(1, i, data=c.encode_command(
            c.CreateJob(spec(job_id), 10, 1_000)))], memo=memo)  # fmt: skip
        state.apply(out.writes)
    raw = {job_id: state.get(r.job_key(job_id)) for job_id in "abc"}
    assert memo.find("a", raw["a"] or b"") is None  # the oldest went
    assert memo.find("c", raw["c"] or b"") is not None
    assert memo.find("c", (raw["c"] or b"") + b"x") is None  # other bytes, another record
    fsm.apply_entries(state, [Entry(1, 4, data=c.encode_command(c.DeleteJob("c")))], memo=memo)
    assert memo.find("c", raw["c"] or b"") is None
    assert len(memo) == 1  # b


def test_a_memo_holds_its_bytes() -> None:
    """Big payloads: the memo keeps what fits in its bytes, not a count of jobs."""
    memo, state = JobMemo(size=100, max_bytes=3 * 10_000), MemoryState()
    for i in range(10):
        job = spec(f"j{i}", payload={"blob": "x" * 9_000})
        out = fsm.apply_entries(state, [Entry(1, i + 1, data=c.encode_command(
            c.CreateJob(job, 10, 1_000)))], memo=memo)  # fmt: skip
        state.apply(out.writes)
    assert len(memo) == 3
    kept = [i for i in range(10) if memo.find(f"j{i}", state.get(r.job_key(f"j{i}")) or b"")]
    assert kept == [7, 8, 9]


# --- member addresses ---------------------------------------------------------------------


def test_conf_changes_record_and_forget_member_addresses() -> None:
    m = Machine()

    def change(kind: ConfChangeType, node: str, context: bytes, conf: ConfState) -> None:
        m.index += 1
        cc = ConfChange(kind, node, context)
        entry = Entry(1, m.index, EntryType.CONF_CHANGE, cc.encode())
        out = fsm.apply_entries(m.state, [entry], conf)
        m.state.apply(out.writes)

    one = ConfState(("n1",))
    change(ConfChangeType.ADD_LEARNER, "n4", encode_member("h4:7000", "h4:8080"), one)
    assert queries.members(m.state) == {"n4": ("h4:7000", "h4:8080")}
    # A promotion carries no address: the recorded one stays.
    change(ConfChangeType.ADD_VOTER, "n4", b"", ConfState(("n1", "n4")))
    assert queries.members(m.state) == {"n4": ("h4:7000", "h4:8080")}
    # A context that is not an address is not recorded; the change still applies.
    change(ConfChangeType.ADD_LEARNER, "n5", b"\x01garbage", ConfState(("n1", "n4"), ("n5",)))
    assert queries.members(m.state) == {"n4": ("h4:7000", "h4:8080")}
    assert queries.conf_state(m.state) == ConfState(("n1", "n4"), ("n5",))
    change(ConfChangeType.REMOVE, "n4", b"", ConfState(("n1",), ("n5",)))
    assert queries.members(m.state) == {}
    # Member records are metadata: they count towards no capacity limit.
    assert queries.counters(m.state).bytes == 0
