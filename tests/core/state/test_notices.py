"""Notices of outcomes in the state machine: what on_failure and on_success call for."""

from __future__ import annotations

from scheduled_db.jobs.model import Callback, ErrorType, JobStatus
from scheduled_db.state import commands as c
from scheduled_db.state import queries
from scheduled_db.state import records as r
from scheduled_db.state.results import ResultCode
from tests.fsm_helpers import Machine, check_invariants, spec

OK = ResultCode.OK
FAIL_URL = "https://example.com/failed"
AT = 1_000  # the one-time job's occurrence


def _claim(attempt: int, trigger: bool = False, at: int = AT) -> c.ClaimOccurrence:
    return c.ClaimOccurrence("j1", at, attempt, "n1", 1, at + attempt, trigger)


def _failed(
    attempt: int, retry: int | None, trigger: bool = False, at: int = AT
) -> c.RecordOutcome:
    return c.RecordOutcome(
        "j1", at, attempt, JobStatus.FAILED, at + 100 * attempt, http_status=500,
        response_time_ms=5, error_message="HTTP 500", error_type=ErrorType.HTTP_ERROR,
        retry_at_ms=retry, trigger=trigger,
    )  # fmt: skip


def _machine(**kw: object) -> Machine:
    m = Machine()
    assert m.one(c.CreateJob(spec("j1", **kw), 10, AT)).code is OK
    return m


def test_one_failure_notice_after_the_last_attempt_with_every_attempt_in_its_body() -> None:
    m = _machine(
        on_failure=Callback(FAIL_URL, (("X-Team", "billing", False),)), labels=(("a", "b"),)
    )
    for n in (1, 2):
        assert m.one(_claim(n)).code is OK
        res = m.one(_failed(n, retry=AT + 1_000 * n))  # retried: no notice yet
        assert res.code is OK and res.notices == ()
        assert queries.notices(m.state, 10) == ()
    m.one(_claim(3))
    res = m.one(_failed(3, retry=None))
    (notice,) = res.notices
    assert queries.notices(m.state, 10) == (notice,)
    assert (notice.url, notice.headers, notice.event) == (
        FAIL_URL,
        (("X-Team", "billing", False),),
        "failure",
    )
    assert (notice.attempt, notice.tries, notice.next_at_ms) == (3, 0, AT + 300)
    body = notice.body
    assert body["job_id"] == "j1" and body["status"] == "failed" and body["final"] is True
    assert body["scheduled_at_ms"] == AT and body["idempotency_key"] == "j1:1000"
    assert body["labels"] == {"a": "b"}
    assert [
        (a["attempt_num"], a["status"], a["http_status"], a["error_type"]) for a in body["attempts"]
    ] == [(n, "failed", 500, "http_error") for n in (1, 2, 3)]
    check_invariants(m.state)


def test_settle_deletes_a_sent_notice_and_keeps_a_failed_one_for_its_retry() -> None:
    m = _machine(on_failure=Callback(FAIL_URL))
    m.one(_claim(1))
    (notice,) = m.one(_failed(1, retry=None)).notices
    settle = c.SettleNotice("j1", AT, 1, False, "failure", retry_at_ms=9_000)
    (kept,) = m.one(settle).notices
    assert (kept.tries, kept.next_at_ms, kept.body) == (1, 9_000, notice.body)
    assert queries.notices(m.state, 10) == (kept,)
    gone = m.one(c.SettleNotice("j1", AT, 1, False, "failure"))
    assert gone.code is OK and gone.notices == () and queries.notices(m.state, 10) == ()
    again = m.one(c.SettleNotice("j1", AT, 1, False, "failure"))  # a second leader's settle
    assert again.code is ResultCode.STALE
    check_invariants(m.state)


def test_every_attempt_notifies_each_failed_attempt_and_success_notifies_completion() -> None:
    m = _machine(
        on_failure=Callback(FAIL_URL, every_attempt=True), on_success=Callback("https://e.com/ok")
    )
    m.one(_claim(1))
    (first,) = m.one(_failed(1, retry=AT + 5_000)).notices
    assert first.body["final"] is False and first.event == "failure"
    m.one(_claim(2))
    done = c.RecordOutcome("j1", AT, 2, JobStatus.COMPLETED, AT + 6_000, http_status=200)
    (success,) = m.one(done).notices
    assert success.event == "success" and success.url == "https://e.com/ok"
    assert [a["status"] for a in success.body["attempts"]] == ["failed", "completed"]
    assert {n.key for n in queries.notices(m.state, 10)} == {first.key, success.key}


def test_a_triggered_run_notifies_under_its_own_key_and_a_job_without_callbacks_never() -> None:
    m = _machine(on_failure=Callback(FAIL_URL))
    asked = m.one(c.TriggerJob("j1", 5_000)).trigger
    assert asked is not None
    m.one(_claim(1, trigger=True, at=5_000))
    (notice,) = m.one(_failed(1, retry=None, trigger=True, at=5_000)).notices
    assert notice.trigger and notice.body["idempotency_key"] == "j1:t5000"
    assert notice.key != r.notice_key("j1", 5_000, 1, False, "failure")
    plain = _machine()
    plain.one(_claim(1))
    assert plain.one(_failed(1, retry=None)).notices == ()
    assert queries.notices(plain.state, 10) == ()


def test_a_notice_outlives_its_job_and_is_replicated_byte_for_byte() -> None:
    a, b = _machine(on_failure=Callback(FAIL_URL)), _machine(on_failure=Callback(FAIL_URL))
    for m in (a, b):
        m.one(_claim(1))
        m.one(_failed(1, retry=None))
        m.one(c.DeleteJob("j1"))
    assert len(queries.notices(a.state, 10)) == 1
    assert list(a.state.iter_range(b"", b"\xff")) == list(b.state.iter_range(b"", b"\xff"))
