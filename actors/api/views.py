"""The JSON shapes of the REST API: pure functions from records to dicts.

Instants go out as whole epoch seconds (an int, rounded down), as the original's
clients decode them (Go ``int64``: a fraction fails to decode), each with its
milliseconds beside it under the same name plus ``_ms`` (``created_at`` and
``created_at_ms``).  Durations (a job's ``timeout``) are seconds, with a fraction
when there is one, and ``timeout_ms`` beside.  ``None`` is ``null``; enums are
their values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from actors.api.backend import NodeStatus, ServerInfo
from actors.runtime.metrics import memory_utilization_percent
from scheduled_db.jobs.model import Attempt, Callback, Job, JobStatus, JobType
from scheduled_db.state.records import Counters

DEGRADED_MEMORY_PERCENT = 90.0
UNHEALTHY_FAILURE_RATE = 0.5
MIN_FINISHED_FOR_RATE = 10  # fewer finished jobs than this say nothing about failure rates
_FAILED = (JobStatus.FAILED, JobStatus.TIMEOUT)


def seconds(ms: int | None) -> int | None:
    """Whole epoch seconds of an instant in milliseconds (rounded down)."""
    return None if ms is None else ms // 1000


def instant(name: str, ms: int | None) -> dict[str, int | None]:
    """``{name: whole seconds, name_ms: milliseconds}``: how every instant goes out."""
    return {name: seconds(ms), f"{name}_ms": ms}


def duration_seconds(ms: int | None) -> int | float | None:
    """A duration in seconds: an int when whole, else with the milliseconds."""
    if ms is None:
        return None
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def headers_view(headers: tuple[tuple[str, str, bool], ...]) -> dict[str, Any]:
    """A job's headers as the API takes them: a secret's as ``{"secret_ref": name}``."""
    return {n: {"secret_ref": v} if secret else v for n, v, secret in headers}


def callback_view(callback: Callback | None) -> dict[str, Any] | None:
    """A job's ``on_failure`` or ``on_success`` as the API takes it."""
    if callback is None:
        return None
    view: dict[str, Any] = {"url": callback.url, "headers": headers_view(callback.headers)}
    if callback.every_attempt:
        view["every_attempt"] = True
    return view


def job_view(job: Job) -> dict[str, Any]:
    """A stored job as ``POST /jobs`` and ``GET /jobs/{id}`` show it.  Its instants are
    written out as :func:`instant` writes them (not through it: a batch answer holds
    1,000 views, and four small dicts unpacked into each cost a microsecond)."""
    spec = job.spec
    timestamp, last_date = spec.timestamp_ms, spec.last_date_ms
    created, next_run = job.created_at_ms, job.next_run_at_ms
    return {
        "id": spec.id,
        "type": spec.type.value,
        "timestamp": None if timestamp is None else timestamp // 1000,
        "timestamp_ms": timestamp,
        "cron_expression": spec.cron_expression,
        "timezone": spec.timezone,
        "last_date": None if last_date is None else last_date // 1000,
        "last_date_ms": last_date,
        "webhook_url": spec.webhook_url,
        "payload": spec.payload,
        "misfire_policy": spec.misfire_policy.value,
        "max_attempts": spec.max_attempts,
        "timeout": duration_seconds(spec.timeout_ms),
        "timeout_ms": spec.timeout_ms,
        "signing_secret_ref": spec.signing_secret_ref,
        "labels": spec.label_map,
        "jitter": duration_seconds(spec.jitter_ms),
        "jitter_ms": spec.jitter_ms,
        "method": spec.http_method,
        "headers": headers_view(spec.headers),
        "on_failure": callback_view(spec.on_failure),
        "on_success": callback_view(spec.on_success),
        "overlap": spec.overlap_policy.value if spec.type is JobType.RECURRENTE else None,
        "status": job.status.value,
        "paused": job.paused,
        "version": job.version,
        "created_at": None if created is None else created // 1000,
        "created_at_ms": created,
        "next_run_at": None if next_run is None else next_run // 1000,
        "next_run_at_ms": next_run,
    }


def status_view(job: Job, attempts: Iterable[Attempt]) -> dict[str, Any]:
    """``GET /jobs/{id}/status``: the original's execution state of a job.

    ``attempts`` are those of the job's current occurrence (the original's state
    held only those: it began anew with every run); ``/executions`` has them all.
    """
    view: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status.value,
        "attempt_count": job.attempt_count,
        **instant("created_at", job.created_at_ms),
        **instant("first_attempt_at", job.first_attempt_at_ms),
        **instant("last_attempt_at", job.last_attempt_at_ms),
        **instant("completed_at", job.completed_at_ms),
        **instant("cancelled_at", job.cancelled_at_ms),
        "executing_node_id": job.executing_node_id,
        **instant("next_run_at", job.next_run_at_ms),
        "attempts": [attempt_view(a) for a in attempts],
        "cancellation_reason": job.cancellation_reason,
    }
    return view


def list_item_view(job: Job, attempts: Iterable[Attempt]) -> dict[str, Any]:
    """An item of ``GET /jobs``: the job, and the original's execution state of it
    (``job_id``, ``attempt_count``, ``attempts``, ...), in one object."""
    return {**job_view(job), **status_view(job, attempts)}


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    """An attempt; an entry of skipped runs (status ``skipped``, ``attempt_num`` 0)
    adds why (``skip_reason``) and how many runs from ``scheduled_at`` on it stands
    for (``skipped_runs``)."""
    view = {
        "attempt_num": attempt.attempt_num,
        **instant("scheduled_at", attempt.scheduled_at_ms),
        **instant("start_time", attempt.start_time_ms),
        **instant("end_time", attempt.end_time_ms),
        "node_id": attempt.node_id,
        "status": attempt.status.value,
        "http_status": attempt.http_status,
        "response_time_ms": attempt.response_time_ms,
        "error_message": attempt.error_message,
        "error_type": attempt.error_type.value if attempt.error_type else None,
        "trigger": attempt.manual,
    }
    if attempt.skip_reason is not None:
        view["skip_reason"] = attempt.skip_reason.value
        view["skipped_runs"] = attempt.skipped_runs
    return view


def cancel_view(job: Job, reason: str | None) -> dict[str, Any]:
    """``POST /jobs/{id}/cancel``; ``cancelled_at`` is when the job was first cancelled."""
    view: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status.value,
        **instant("cancelled_at", job.cancelled_at_ms),
    }
    if reason is not None:
        view["reason"] = reason
    return view


# --- health ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """The capacity limits and thresholds ``/health`` judges the node by."""

    job_limit: int
    memory_limit_bytes: int
    failure_threshold: float


def failure_rate(counters: Counters) -> tuple[float, int]:
    """``(failed + timeout) / (completed + failed + timeout)`` and that denominator."""
    failed = sum(counters.count(s) for s in _FAILED)
    finished = failed + counters.count(JobStatus.COMPLETED)
    return (failed / finished if finished else 0.0), finished


def health_status(
    utilization_percent: float, rate: float, finished: int, threshold: float, leader_known: bool
) -> tuple[str, str | None]:
    """``(status, why)``: ``ok``; ``degraded``; or ``unhealthy``, which /health
    answers with 503.

    Decisions (the original's rule, plus a cluster that cannot act):

    - ``degraded``: the queue's memory over 90 % of its budget, or more than
      ``threshold`` of finished jobs failed (a failure rate counts only once
      :data:`MIN_FINISHED_FOR_RATE` jobs have finished);
    - ``unhealthy``: both at once with more than half failing, as the original;
      or no leader known: this node can neither take writes nor see its jobs
      fire, so it must not look healthy to a load balancer or a monitor.
    """
    if not leader_known:
        return "unhealthy", "no leader known (an election, or no quorum)"
    memory_high = utilization_percent > DEGRADED_MEMORY_PERCENT
    failing = finished >= MIN_FINISHED_FOR_RATE and rate > threshold
    if memory_high and failing and rate > UNHEALTHY_FAILURE_RATE:
        return "unhealthy", "memory over 90 % of its budget and most finished jobs failed"
    if memory_high:
        return "degraded", "memory over 90 % of its budget"
    if failing:
        return "degraded", f"failure rate over {threshold:g}"
    return "ok", None


def health_view(
    status: NodeStatus, counters: Counters, limits: Limits, last_executed_ms: int | None
) -> dict[str, Any]:
    """``GET /health``, in the original's field order, then ours."""
    utilization = memory_utilization_percent(counters.bytes, limits.memory_limit_bytes)
    rate, finished = failure_rate(counters)
    health, why = health_status(
        utilization, rate, finished, limits.failure_threshold, bool(status.leader_id)
    )
    execution: dict[str, Any] = {s.value: n for s, n in counters.by_status}
    execution["total"] = counters.jobs
    execution.update(instant("last_executed_at", last_executed_ms))
    execution["failure_rate"] = round(rate, 4)
    return {
        "status": health,
        "role": status.role,
        # The leader's HTTP address, where clients may send writes: not its Raft
        # address, as the original gave.  /health is open without a token, and a
        # peer's Raft address is internal (it is in /debug/cluster, for operators).
        "leader": status.leader_http_address or None,
        "node_id": status.node_id,
        "memory": {
            "current_bytes": counters.bytes,
            "limit_bytes": limits.memory_limit_bytes,
            "available_bytes": max(0, limits.memory_limit_bytes - counters.bytes),
            "utilization_percent": utilization,
        },
        "jobs": {
            "count": counters.jobs,
            "limit": limits.job_limit,
            "available": max(0, limits.job_limit - counters.jobs),
            "current_count": counters.jobs,  # what this API called it first
        },
        "execution": execution,
        "leader_id": status.leader_id or None,
        "reason": why,
        # A 503 body carries error and code, like every other non-2xx body.
        **({"error": f"Unhealthy: {why}", "code": "unhealthy"} if health == "unhealthy" else {}),
    }


def ready_view(status: NodeStatus) -> tuple[bool, dict[str, Any]]:
    """``GET /ready``: whether this node can serve: it is a member of the cluster, it
    knows a leader, and it has applied every entry it knows to be committed."""
    member = any(s.id == status.node_id for s in status.servers)
    if not member:
        reason = "not a member of the cluster (yet)"
    elif not status.leader_id:
        reason = "no leader known"
    elif status.applied_index < status.commit_index:
        reason = f"applying the log ({status.applied_index} of {status.commit_index})"
    else:
        reason = None
    body: dict[str, Any] = {"ready": reason is None, "node_id": status.node_id}
    if reason is not None:
        body["error"] = f"Not ready: {reason}"
        body["code"] = "not_ready"  # like every other non-2xx body
    return reason is None, body


# --- cluster --------------------------------------------------------------------------

# How the original (hashicorp/raft) names the states.
RAFT_STATE_NAMES = {"leader": "Leader", "follower": "Follower", "candidate": "Candidate"}


def member_view(server: ServerInfo) -> dict[str, Any]:
    """A member with what this node knows of it (no ``id`` key: see :func:`cluster_view`)."""
    return {
        "node_id": server.id,
        "suffrage": server.suffrage,
        "raft_address": server.raft_address,
        "http_address": server.http_address,
        "match_index": server.match_index,
        "last_contact": server.last_contact_ms,
    }


def cluster_view(status: NodeStatus, counters: Counters) -> dict[str, Any]:
    """``GET /debug/cluster``: this node's view of the Raft group.

    The original's fields first, as its clients decode them: ``leader`` is the
    leader's Raft address, ``raft_state`` is spelled as hashicorp/raft does, and
    ``servers`` holds string maps ``{id, address}`` only.  ``"id"`` appears as a key
    nowhere else in the body: the original's scripts count the servers with
    ``grep -o '"id"' | wc -l``.  Our details follow, members under ``members``.
    """
    return {
        "node_id": status.node_id,
        "is_leader": status.role == "leader",
        "leader": status.leader_raft_address or None,
        "raft_state": RAFT_STATE_NAMES.get(status.role, status.role.capitalize()),
        "servers": [{"id": s.id, "address": s.raft_address} for s in status.servers],
        "job_count": counters.jobs,
        "role": status.role,
        "leader_id": status.leader_id or None,
        "leader_http_address": status.leader_http_address or None,
        "term": status.term,
        "commit_index": status.commit_index,
        "applied_index": status.applied_index,
        "members": [member_view(s) for s in status.servers],
    }
