"""Write k8s/overlays/monitoring/prometheusrule.yaml from deploy/prometheus/alerts.yml.

The compose Prometheus and the prometheus-operator read the same alert rules: the
PrometheusRule's ``spec.groups`` is alerts.yml's ``groups``, unchanged.  Run after
editing alerts.yml::

    python3 scripts/prometheus_rule.py

tests/deploy/test_alerts.py fails while the committed file differs from
:func:`render`'s output.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
TARGET = ROOT / "k8s" / "overlays" / "monitoring" / "prometheusrule.yaml"
HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `python3 scripts/prometheus_rule.py`:
# edit alerts.yml and run it again, never this file.
#
# Your Prometheus picks this up if its ruleSelector matches these labels (the
# kube-prometheus-stack chart selects release: <its release name> by default: add
# that label with a patch in your own overlay).
"""


def render(alerts_yaml: str) -> str:
    """The PrometheusRule holding the groups of ``alerts_yaml``."""
    groups = yaml.safe_load(alerts_yaml)["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "scheduled-db", "labels": {"app.kubernetes.io/name": "scheduled-db"}},
        "spec": {"groups": groups},
    }
    body: str = yaml.safe_dump(rule, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main() -> None:
    TARGET.write_text(render(ALERTS.read_text()))
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
