"""``POST /jobs/{id}/trigger``: one delivery of a job now, outside its schedule.

The node that leads decides when it was asked for (its clock, like a create's
``created_at``): a follower's handler proposes with its own time, is refused as
not the leader, and the forwarding middleware sends the request on, where the
leader's time goes into the command.  The run is an occurrence of its own
(:mod:`scheduled_db.state.triggers`): claimed before it fires, retried per the
job's policy, with an idempotency key of its own (``<id>:t<ms>``), and recorded in
the job's executions with ``"trigger": true``.  The job's schedule is untouched.

202 and not 200: the run is accepted, not done; its attempts show in
``GET /jobs/{id}/executions``.  A POST is not idempotent: a retry after an
``unknown_outcome`` 503 may run the job twice (each run with its own key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from actors.api.responses import json_response
from scheduled_db.errors import JobCancelled, JobNotFound
from scheduled_db.jobs.model import idempotency_key
from scheduled_db.state.commands import Command, TriggerJob
from scheduled_db.state.results import CommandResult, ResultCode

Propose = Callable[[Command], Awaitable[CommandResult]]


async def trigger(job_id: str, now_ms: int, propose: Propose) -> web.Response:
    result = await propose(TriggerJob(job_id, now_ms))
    if result.code is ResultCode.OK and result.trigger is not None:
        asked = result.trigger.asked_ms
        view = {
            "job_id": job_id,
            "occurrence": asked // 1000,
            "occurrence_ms": asked,
            "idempotency_key": idempotency_key(job_id, asked, trigger=True),
            "trigger": True,
        }
        return json_response(view, status=202)
    if result.code is ResultCode.NOT_FOUND:
        raise JobNotFound(job_id)
    if result.code is ResultCode.ILLEGAL_TRANSITION:
        raise JobCancelled(job_id)
    raise RuntimeError(f"unexpected result {result.code.value} for a trigger")
