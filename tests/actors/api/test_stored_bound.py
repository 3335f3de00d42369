"""The admission shortcut's bound: more than the bytes a create adds, for any valid body."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings

from actors.api.jobs import stored_bound
from scheduled_db.jobs.model import Job
from scheduled_db.jobs.validation import parse_job_spec
from scheduled_db.state.commands import CreateJob
from scheduled_db.state.records import new_job_bytes
from tests.core.jobs.test_validation import NOW, valid_bodies


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_bodies)
def test_the_bound_is_above_what_a_create_adds(body: dict[str, object]) -> None:
    spec = parse_job_spec(body, NOW, generated_id="0" * 36)
    create = CreateJob(spec, NOW, NOW + 1)
    added = new_job_bytes(Job(spec, NOW, NOW + 1))
    assert added <= stored_bound(len(json.dumps(body).encode()), [create])
