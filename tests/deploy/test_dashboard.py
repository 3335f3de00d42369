"""The Grafana dashboard queries metrics the nodes really serve, in valid PromQL.

Names are checked against a live node's /metrics; each query is then evaluated by a
real Prometheus scraping the compose topology with the repository's own config.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from scheduled_db.testing.harness import wait_until
from tests.deploy.manifests import DASHBOARD
from tests.deploy.topology import ComposeNode, Prometheus

METRIC = re.compile(r"\bscheduled_db_[A-Za-z0-9_]+")
# Sample names each metric type exposes besides the family's own name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def queries() -> list[str]:
    """Every query of every panel, with Grafana's rate interval filled in."""
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    return [e.replace("$__rate_interval", "1m") for e in exprs]


def served_names(exposition: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def test_the_dashboard_is_provisionable_json() -> None:
    data = dashboard()
    assert data["uid"] and data["title"]
    panels = [p for p in data["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in data["panels"]}) == len(data["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    titles = " ".join(p["title"] for p in panels).lower()
    for topic in ("creations", "deliveries", "failures", "lateness", "status", "capacity"):
        assert topic in titles, topic
    for topic in ("term", "leader", "commit"):
        assert topic in titles, topic


def test_every_metric_the_dashboard_queries_is_served(compose_nodes: list[ComposeNode]) -> None:
    node = compose_nodes[0]
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        served = served_names(resp.read().decode())
    assert "scheduled_db_raft_term" in served  # the exposition was read at all
    for expr in queries():
        used = METRIC.findall(expr)
        assert used, f"no scheduled_db metric in {expr}"
        missing = sorted(set(used) - served)
        assert not missing, f"{expr}: not served: {missing}"


def test_every_dashboard_query_evaluates_in_prometheus(prometheus: Prometheus) -> None:
    def scraped() -> bool:
        return len(prometheus.query("scheduled_db_raft_term")["data"]["result"]) == 3

    wait_until(scraped, 20, "Prometheus to scrape the three nodes")
    for expr in queries():
        answer = prometheus.query(expr)
        assert answer["status"] == "success", (expr, answer)
