"""The one read dispatch: every query type is answered, by the StorageActor's twin too."""

from __future__ import annotations

from typing import get_args

import pytest

from scheduled_db.state import commands as c
from scheduled_db.state import fsm, queries, reads
from scheduled_db.state.stateview import MemoryState, state_digest
from tests.actors.memory_backend import MemoryBackend
from tests.fsm_helpers import Machine, spec

# One instance of each query type; the first test checks that none is missing.
SAMPLES: tuple[reads.Query, ...] = (
    reads.GetJob("job-1"),
    reads.ListJobs(),
    reads.GetExecutions("job-1"),
    reads.RecentAttempts(),
    reads.GetCurrentAttempts(("job-1", "job-2")),
    reads.DueBefore(10_000),
    reads.DueOccurrences(10_000),
    reads.GetCounters(),
    reads.GetOpenClaims(),
    reads.GetNotices(),
    reads.GetMembers(),
    reads.GetApplied(),
    reads.GetDigest(),
)


def test_the_samples_cover_every_query_type() -> None:
    assert {type(q) for q in SAMPLES} == set(get_args(reads.Query))


@pytest.mark.parametrize("query", SAMPLES, ids=lambda q: type(q).__name__)
def test_every_query_type_is_answered_on_an_empty_state(query: reads.Query) -> None:
    reads.answer(MemoryState(), query)  # no TypeError: the dispatch handles it


@pytest.mark.parametrize("query", SAMPLES, ids=lambda q: type(q).__name__)
def test_the_in_memory_twin_answers_every_query_type(query: reads.Query) -> None:
    backend = MemoryBackend()
    backend.apply(c.CreateJob(spec("job-1"), 1, 5_000))
    assert backend.query(query) == reads.answer(backend.state, query)


def test_answers_are_the_queries_of_the_state() -> None:
    m = Machine()
    m.run(c.CreateJob(spec("job-1"), 1, 5_000))
    assert reads.answer(m.state, reads.GetJob("job-1")) == queries.get_job(m.state, "job-1")
    assert reads.answer(m.state, reads.DueBefore(10_000)) == queries.due_before(m.state, 10_000)
    assert reads.answer(m.state, reads.GetApplied()) == fsm.applied_position(m.state)
    assert reads.answer(m.state, reads.GetDigest()) == state_digest(m.state)


def test_something_that_is_not_a_query_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a query"):
        reads.answer(MemoryState(), "GetJob")  # type: ignore[arg-type]  # the point of the test
