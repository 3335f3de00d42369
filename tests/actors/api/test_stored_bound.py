"""What admission counts a create as: ``new_job_bytes`` (the bytes a create adds,
listed key by key for speed) is what applying the create adds, and the shortcut's
bound is above it, for any valid body."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.api.jobs import created_job, stored_bound
from scheduled_db.jobs.validation import parse_job_spec
from scheduled_db.state import transitions
from scheduled_db.state.commands import CreateJob
from scheduled_db.state.records import new_job_bytes
from scheduled_db.state.results import ResultCode
from scheduled_db.state.stateview import MemoryState
from scheduled_db.state.txn import Txn
from tests.command_gen import TRACEPARENT
from tests.core.jobs.test_validation import NOW, valid_bodies

traceparents = st.sampled_from((None, TRACEPARENT))  # tracing off, and on


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_bodies, traceparents)
def test_the_bound_is_above_what_a_create_adds(
    body: dict[str, object], traceparent: str | None
) -> None:
    spec = parse_job_spec(body, NOW, generated_id="0" * 36, header_secret_names=("token",))
    create = CreateJob(spec, NOW, NOW + 1, traceparent)
    added = new_job_bytes(created_job(create))
    assert added <= stored_bound(len(json.dumps(body).encode()), [create])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_bodies, traceparents)
def test_new_job_bytes_is_what_applying_the_create_adds(
    body: dict[str, object], traceparent: str | None
) -> None:
    """The key-by-key count cannot drift from Txn.put_job and the create transition."""
    spec = parse_job_spec(body, NOW, generated_id="0" * 36, header_secret_names=("token",))
    tx = Txn(MemoryState())
    create = CreateJob(spec, NOW, NOW + 1, traceparent)
    assert transitions.create(tx, create).code is ResultCode.OK
    assert new_job_bytes(created_job(create)) == tx.ov.size_delta
