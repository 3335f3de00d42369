"""The alert rules (deploy/prometheus/alerts.yml): valid, unit-tested, on metrics the
nodes serve, loaded by the compose Prometheus, shipped to Kubernetes unchanged, and
each with its runbook in docs/operations.md.

promtool (Debian's prometheus package) checks and unit-tests the rules; the unit
tests (alerts.test.yml) give every alert a time it must fire and one it must not.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request
from typing import Any

import yaml

from scheduled_db.testing.harness import wait_until
from scripts.prometheus_rule import TARGET, render
from tests.deploy.manifests import ALERT_TESTS, ALERTS, OPERATIONS_DOC, ROOT
from tests.deploy.test_dashboard import METRIC, served_names
from tests.deploy.topology import ComposeNode, Prometheus, require

RUNBOOK = re.compile(r"^docs/operations\.md#([a-z0-9-]+)$")


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules()]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [require("promtool", "prometheus"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_every_rule_is_an_alert_with_a_unique_camel_case_name_and_a_severity() -> None:
    names = alert_names()
    assert len(names) == len(rules()) == len(set(names)) >= 8
    for rule in rules():
        assert re.fullmatch(r"Scheduler[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}


def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = promtool("test", "rules", str(ALERT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_must_not() -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    for name in alert_names():
        mine = [case for case in cases if case["alertname"] == name]
        fires = [c for c in mine if c.get("exp_alerts")]
        quiet = [c for c in mine if not c.get("exp_alerts")]
        assert fires and quiet, f"{name}: {len(fires)} firing cases, {len(quiet)} quiet ones"
    unknown = {case["alertname"] for case in cases} - set(alert_names())
    assert not unknown, f"cases of alerts alerts.yml does not define: {unknown}"


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown``."""
    out = set()
    for line in markdown.splitlines():
        if heading := re.match(r"#{1,6}\s+(.*)", line):
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def test_every_alert_links_a_runbook_section_named_after_it() -> None:
    found = anchors(OPERATIONS_DOC.read_text())
    for rule in rules():
        link = RUNBOOK.match(rule["annotations"]["runbook_url"])
        assert link is not None, rule["annotations"]["runbook_url"]
        assert link.group(1) == rule["alert"].lower(), rule["alert"]
        assert link.group(1) in found, f"docs/operations.md has no section {rule['alert']}"


def test_the_prometheus_rule_of_the_monitoring_overlay_is_generated_from_the_rules() -> None:
    assert TARGET.read_text() == render(ALERTS.read_text()), (
        "k8s/overlays/monitoring/prometheusrule.yaml is stale: python3 scripts/prometheus_rule.py"
    )
    shipped = yaml.safe_load(TARGET.read_text())
    assert shipped["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def test_every_metric_the_rules_read_is_served(compose_nodes: list[ComposeNode]) -> None:
    node = compose_nodes[0]
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        served = served_names(resp.read().decode())
    for rule in rules():
        missing = sorted(set(METRIC.findall(rule["expr"])) - served)
        assert not missing, f"{rule['alert']}: not served: {missing}"


def test_the_compose_prometheus_loads_and_evaluates_every_rule(prometheus: Prometheus) -> None:
    def groups() -> list[dict[str, Any]]:
        answer = prometheus.http.call("GET", "/api/v1/rules")[2]
        assert answer["status"] == "success", answer
        found: list[dict[str, Any]] = answer["data"]["groups"]
        return found

    def evaluated() -> bool:
        loaded = [r for g in groups() for r in g["rules"]]
        return bool(loaded) and all(r["health"] != "unknown" for r in loaded)

    wait_until(evaluated, 20, "Prometheus to evaluate the alert rules")
    loaded = [r for g in groups() for r in g["rules"]]
    assert [r["name"] for r in loaded] == alert_names()
    for rule in loaded:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
