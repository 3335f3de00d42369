"""Prometheus metrics of one node, in a registry of its own.

Each node gets its own :class:`prometheus_client.CollectorRegistry`: tests run
many nodes in one process, and the global registry would refuse the second
node's metrics (duplicate names) or mix the nodes' values.

Request metrics are observed by the HTTP middleware as requests finish; the
state gauges (queue, jobs, raft) are refreshed from the node when ``/metrics``
is scraped, so they cost nothing between scrapes.  Other actors add their own
metrics to the same holder with :meth:`ApiMetrics.counter`,
:meth:`ApiMetrics.gauge` and :meth:`ApiMetrics.histogram`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from actors.api.backend import NodeStatus
from actors.raft.hooks import RaftHooks
from scheduled_db.state.records import Counters

PREFIX = "scheduled_db_"
# Buckets for request latency: sub-millisecond reads up to writes waiting on a slow quorum.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def memory_utilization_percent(current_bytes: int, limit_bytes: int) -> float:
    """Percent of ``limit_bytes`` in use, rounded to 2 decimals (100 when there is no budget)."""
    if limit_bytes <= 0:
        return 100.0
    return round(current_bytes * 100.0 / limit_bytes, 2)


class ApiMetrics:
    """The metrics of one node: HTTP traffic, queue capacity, jobs and Raft state."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.http_requests = self.counter(
            "http_requests_total", "HTTP requests answered", ("route", "method", "status")
        )
        self.http_latency = self.histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
        )
        self.queue_job_count = self.gauge("queue_job_count", "Jobs stored")
        self.queue_job_limit = self.gauge("queue_job_limit", "Most jobs the queue admits")
        self.queue_memory_usage = self.gauge(
            "queue_memory_usage_bytes", "Bytes of job state stored"
        )
        self.queue_memory_limit = self.gauge(
            "queue_memory_limit_bytes", "Byte budget of the job state"
        )
        self.queue_memory_utilization = self.gauge(
            "queue_memory_utilization_percent", "Job state bytes as a percent of the budget"
        )
        self.jobs = self.gauge("jobs", "Jobs by status", ("status",))
        self.raft_term = self.gauge("raft_term", "Current Raft term")
        self.raft_commit_index = self.gauge("raft_commit_index", "Raft commit index")
        self.raft_applied_index = self.gauge(
            "raft_applied_index", "Last Raft index the state machine applied"
        )
        self.raft_is_leader = self.gauge("raft_is_leader", "1 if this node is the Raft leader")
        self.job_rejections = self.counter(
            "job_rejections_total", "Job creations refused at a capacity limit", ("reason",)
        )
        self.job_retries = self.counter("job_retries_total", "Failed attempts scheduled to retry")
        self.callbacks = self.counter(
            "callbacks_total",
            "Sends of on_failure/on_success notices by result (sent, retry, given_up)",
            ("event", "result"),
        )
        self.occurrences_skipped = self.counter(
            "occurrences_skipped_total",
            "Runs of recurring jobs not fired (overlap, misfire, paused)",
            ("reason",),
        )
        self.requests_shed = self.counter(
            "http_requests_shed_total", "Requests refused on arrival: 503 overloaded", ("kind",)
        )
        self.requests_in_flight = self.gauge(
            "http_requests_in_flight", "Requests admitted and not yet answered", ("kind",)
        )
        self.admission_limit = self.gauge(
            "http_admission_limit", "Most requests admitted at once now", ("kind",)
        )
        self.leader_changes = self.counter(
            "raft_leader_changes_total", "Leaders elected (a new leader or term) seen by this node"
        )
        self.peer_last_contact = self.gauge(
            "raft_peer_last_contact_seconds",
            "On the leader: seconds since it last heard from each other member (+Inf: never)",
            ("peer",),
        )
        self.disk_full = self.gauge("disk_full", "1 while this node's disk has no room to write")
        self.disk_full_refusals = self.counter(
            "disk_full_refusals_total", "Writes this leader refused because its disk was full"
        )

    # --- extension points: every metric of the node lives in this registry ----------

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        """A counter named ``scheduled_db_<name>`` in this node's registry."""
        return Counter(PREFIX + name, doc, tuple(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge named ``scheduled_db_<name>`` in this node's registry."""
        return Gauge(PREFIX + name, doc, tuple(labels), registry=self.registry)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A histogram named ``scheduled_db_<name>`` in this node's registry."""
        return Histogram(
            PREFIX + name, doc, tuple(labels), registry=self.registry, buckets=tuple(buckets)
        )

    # --- updates ---------------------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one answered request; ``route`` must be a route template, never a raw
        path (one series per job id would grow without bound)."""
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_latency.labels(route, method).observe(seconds)

    def update_state(self, counters: Counters, job_limit: int, memory_limit_bytes: int) -> None:
        """Refresh the queue and per-status gauges from the state counters."""
        self.queue_job_count.set(counters.jobs)
        self.queue_job_limit.set(job_limit)
        self.queue_memory_usage.set(counters.bytes)
        self.queue_memory_limit.set(memory_limit_bytes)
        self.queue_memory_utilization.set(
            memory_utilization_percent(counters.bytes, memory_limit_bytes)
        )
        for status, count in counters.by_status:
            self.jobs.labels(status.value).set(count)

    def update_raft(self, status: NodeStatus) -> None:
        """Refresh the Raft gauges from a node status.  The applied index is not
        among them: :meth:`raft_hooks` keeps it as the storage applies entries."""
        self.raft_term.set(status.term)
        self.raft_commit_index.set(status.commit_index)
        leading = status.role == "leader"
        self.raft_is_leader.set(1 if leading else 0)
        # Only a leader hears from every member (a follower hears from the leader
        # alone), and a member removed, or a node no longer leading, drops its series.
        self.peer_last_contact.clear()
        if not leading:
            return
        for server in status.servers:
            if server.id != status.node_id:
                ms = server.last_contact_ms
                seconds = math.inf if ms is None else ms / 1000
                self.peer_last_contact.labels(server.id).set(seconds)

    def raft_hooks(self) -> RaftHooks:
        """The RaftActor's callbacks that keep this node's Raft metrics."""
        return RaftHooks(
            leader_elected=self.leader_changes.inc,
            applied=self.raft_applied_index.set,
            disk_full=lambda full: self.disk_full.set(1 if full else 0),
            refused_for_space=self.disk_full_refusals.inc,
        )

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)

    def http_families(self) -> list[Metric]:
        """The families the REST API's handlers write (requests, admission, refused
        creations, skipped runs): what an API worker process counts for its node."""
        owned = (
            self.http_requests,
            self.http_latency,
            self.requests_shed,
            self.requests_in_flight,
            self.admission_limit,
            self.job_rejections,
            self.occurrences_skipped,
        )
        return [family for metric in owned for family in metric.collect()]

    def render_with(self, families: Iterable[Metric]) -> bytes:
        """:meth:`render`, with ``families`` (:meth:`http_families` of API workers)
        summed into this registry's families of the same names."""
        return generate_latest(_Summed(self.registry, families))

    content_type = CONTENT_TYPE_LATEST


class _Summed:
    """A registry's families with others' samples added: values of the same sample
    name and labels are summed (a ``_created`` time is the earliest)."""

    def __init__(self, registry: CollectorRegistry, extra: Iterable[Metric]) -> None:
        self._registry = registry
        self._extra: dict[str, list[Metric]] = {}
        for family in extra:
            self._extra.setdefault(family.name, []).append(family)

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            more = self._extra.get(family.name)
            yield family if not more else _sum(family, more)


def _sum(family: Metric, more: list[Metric]) -> Metric:
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for sample in (s for f in (family, *more) for s in f.samples):
        key = (sample.name, tuple(sorted(sample.labels.items())))
        seen = values.get(key)
        if seen is None:
            values[key] = sample.value
        elif sample.name.endswith("_created"):
            values[key] = min(seen, sample.value)
        else:
            values[key] = seen + sample.value
    out = Metric(family.name, family.documentation, family.type, family.unit)
    for (name, labels), value in values.items():
        out.add_sample(name, dict(labels), value)
    return out
