"""A job's view writes its instants as every instant of the API goes out."""

from __future__ import annotations

from actors.api.views import instant, job_view
from scheduled_db.jobs.model import Job, JobSpec, JobType

INSTANTS = {
    "timestamp": lambda j: j.spec.timestamp_ms,
    "last_date": lambda j: j.spec.last_date_ms,
    "created_at": lambda j: j.created_at_ms,
    "next_run_at": lambda j: j.next_run_at_ms,
}


def test_a_job_view_writes_its_instants_as_instant_does() -> None:
    jobs = [
        Job(JobSpec("a", JobType.UNICO, timestamp_ms=1_800_000_000_999), 1_700_000_000_001, None),
        Job(
            JobSpec("b", JobType.RECURRENTE, cron_expression="* * * * *", last_date_ms=1_900_000),
            0,
            1_800_000_000_000,
        ),
    ]
    for job in jobs:
        view = job_view(job)
        keys = list(view)
        for name, of in INSTANTS.items():
            expected = instant(name, of(job))
            assert {k: view[k] for k in expected} == expected
            assert keys.index(f"{name}_ms") == keys.index(name) + 1  # side by side
