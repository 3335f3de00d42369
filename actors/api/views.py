"""The JSON shapes of the REST API: pure functions from records to dicts.

Times go out as epoch seconds (an int when whole, else a float carrying the
milliseconds), ``None`` as ``null``; enums as their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.api.backend import NodeStatus, ServerInfo
from actors.runtime.metrics import memory_utilization_percent
from scheduled_db.jobs.model import Attempt, Job, JobStatus
from scheduled_db.jobs.timestamps import format_epoch_seconds
from scheduled_db.state.records import Counters

DEGRADED_MEMORY_PERCENT = 90.0
UNHEALTHY_FAILURE_RATE = 0.5
MIN_FINISHED_FOR_RATE = 10  # fewer finished jobs than this say nothing about failure rates
_FAILED = (JobStatus.FAILED, JobStatus.TIMEOUT)


def seconds(ms: int | None) -> int | float | None:
    return None if ms is None else format_epoch_seconds(ms)


def job_view(job: Job) -> dict[str, Any]:
    """A stored job as ``POST /jobs`` and ``GET /jobs/{id}`` show it."""
    spec = job.spec
    return {
        "id": spec.id,
        "type": spec.type.value,
        "timestamp": seconds(spec.timestamp_ms),
        "cron_expression": spec.cron_expression,
        "timezone": spec.timezone,
        "last_date": seconds(spec.last_date_ms),
        "webhook_url": spec.webhook_url,
        "payload": spec.payload,
        "misfire_policy": spec.misfire_policy.value,
        "max_attempts": spec.max_attempts,
        "timeout": seconds(spec.timeout_ms),
        "signing_secret_ref": spec.signing_secret_ref,
        "status": job.status.value,
        "paused": job.paused,
        "created_at": seconds(job.created_at_ms),
        "next_run_at": seconds(job.next_run_at_ms),
    }


def status_view(job: Job) -> dict[str, Any]:
    """``GET /jobs/{id}/status``."""
    return {
        "job_id": job.id,
        "status": job.status.value,
        "attempt_count": job.attempt_count,
        "created_at": seconds(job.created_at_ms),
        "first_attempt_at": seconds(job.first_attempt_at_ms),
        "last_attempt_at": seconds(job.last_attempt_at_ms),
        "completed_at": seconds(job.completed_at_ms),
        "executing_node_id": job.executing_node_id,
        "cancellation_reason": job.cancellation_reason,
        "cancelled_at": seconds(job.cancelled_at_ms),
    }


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt_num": attempt.attempt_num,
        "scheduled_at": seconds(attempt.scheduled_at_ms),
        "start_time": seconds(attempt.start_time_ms),
        "end_time": seconds(attempt.end_time_ms),
        "node_id": attempt.node_id,
        "status": attempt.status.value,
        "http_status": attempt.http_status,
        "response_time_ms": attempt.response_time_ms,
        "error_message": attempt.error_message,
        "error_type": attempt.error_type.value if attempt.error_type else None,
    }


def cancel_view(job: Job, reason: str | None) -> dict[str, Any]:
    """``POST /jobs/{id}/cancel``; ``cancelled_at`` is when the job was first cancelled."""
    view: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status.value,
        "cancelled_at": seconds(job.completed_at_ms),
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


def health_status(utilization_percent: float, rate: float, finished: int, threshold: float) -> str:
    """ok, degraded (memory >= 90 %, or failures above ``threshold``) or unhealthy
    (degraded with more than half failing).  A failure rate counts only once at
    least :data:`MIN_FINISHED_FOR_RATE` jobs have finished."""
    rate_counts = finished >= MIN_FINISHED_FOR_RATE
    degraded = utilization_percent >= DEGRADED_MEMORY_PERCENT or (rate_counts and rate > threshold)
    if not degraded:
        return "ok"
    return "unhealthy" if rate_counts and rate > UNHEALTHY_FAILURE_RATE else "degraded"


def health_view(status: NodeStatus, counters: Counters, limits: Limits) -> dict[str, Any]:
    """``GET /health``."""
    utilization = memory_utilization_percent(counters.bytes, limits.memory_limit_bytes)
    rate, finished = failure_rate(counters)
    execution: dict[str, Any] = {s.value: n for s, n in counters.by_status}
    execution["failure_rate"] = round(rate, 4)
    execution["last_executed_at"] = None  # not tracked by the state machine yet
    return {
        "status": health_status(utilization, rate, finished, limits.failure_threshold),
        "role": status.role,
        "leader": status.leader_http_address or None,
        "node_id": status.node_id,
        "memory": {
            "current_bytes": counters.bytes,
            "limit_bytes": limits.memory_limit_bytes,
            "available_bytes": max(0, limits.memory_limit_bytes - counters.bytes),
            "utilization_percent": utilization,
        },
        "jobs": {
            "current_count": counters.jobs,
            "limit": limits.job_limit,
            "available": max(0, limits.job_limit - counters.jobs),
        },
        "execution": execution,
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


def server_view(server: ServerInfo) -> dict[str, Any]:
    return {
        "id": server.id,
        "address": server.raft_address,
        "suffrage": server.suffrage,
        "raft_address": server.raft_address,
        "http_address": server.http_address,
        "match_index": server.match_index,
        "last_contact": server.last_contact_ms,
    }


def cluster_view(status: NodeStatus, counters: Counters) -> dict[str, Any]:
    """``GET /debug/cluster``: this node's view of the Raft group."""
    return {
        "node_id": status.node_id,
        "is_leader": status.role == "leader",
        "leader": status.leader_id or None,
        "leader_http_address": status.leader_http_address or None,
        "raft_state": status.role,
        "term": status.term,
        "commit_index": status.commit_index,
        "applied_index": status.applied_index,
        "servers": [server_view(s) for s in status.servers],
        "job_count": counters.jobs,
    }
