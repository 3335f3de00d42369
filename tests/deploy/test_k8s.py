"""The Kubernetes manifests, base and overlays, agree with the node and with DNS discovery.

Each layout is rendered by tests/deploy/kustomize.py (see there why), and that
renderer is compared with ``kubectl kustomize`` where a recent kubectl exists.
For every pod the StatefulSet makes, the node's configuration is built the way the
pod builds it (the ConfigMap's file, the pod's environment over the image's) and
its member list compared with the DNS names Kubernetes gives the pods.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduled_db.cli.main import build_config
from scheduled_db.config.discovery import dns_members
from scheduled_db.config.loading import KEYS_BY_ENV, NodeConfig
from tests.deploy.kustomize import Doc, render
from tests.deploy.manifests import (
    ALERTS,
    K8S,
    api_routes,
    dockerfile_stages,
    image_env,
    metrics_routes,
)

LAYOUTS = ["base", "overlays/dev", "overlays/production", "overlays/monitoring"]
NAMESPACES = {
    "overlays/dev": "scheduled-db-dev",
    "overlays/production": "scheduled-db",
    "overlays/monitoring": "scheduled-db",
}
# Layouts whose cluster secret is created outside the manifests.
OWN_SECRET = ("overlays/production", "overlays/monitoring")
PLACEHOLDER = "placeholder-dev-only-change-me"
STAND_IN_SECRET = "a-secret-created-outside-the-manifests"


def rendered(layout: str) -> list[Doc]:
    return render(K8S / layout)


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def pod_spec(docs: list[Doc]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc]) -> dict[str, Any]:
    (main,) = pod_spec(docs)["containers"]
    return dict(main)


def port_of(docs: list[Doc], name: str) -> int:
    (port,) = [p["containerPort"] for p in container(docs)["ports"] if p["name"] == name]
    return int(port)


# --- kubectl ------------------------------------------------------------------------------------


def kubectl_with_kustomize_v4() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl: the manifests are checked on tests/deploy/kustomize.py alone")
    done = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30
    )
    version = json.loads(done.stdout or "{}").get("kustomizeVersion", "")
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < 4:
        pytest.skip(f"kubectl's kustomize is {version or 'older than v4'}: too old to compare")
    return kubectl


@pytest.mark.parametrize("layout", LAYOUTS)
def test_kubectl_kustomize_renders_what_the_tests_check(layout: str) -> None:
    kubectl = kubectl_with_kustomize_v4()
    argv = [kubectl, "kustomize", str(K8S / layout)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # no deprecated kustomize fields

    def by_name(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    theirs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert by_name(theirs) == by_name(rendered(layout))


# --- the cluster's shape ------------------------------------------------------------------------


def selects_pods(selector: dict[str, str], docs: list[Doc]) -> bool:
    labels = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and selector.items() <= labels.items()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_statefulset_of_an_odd_number_of_pods_started_in_parallel(layout: str) -> None:
    docs = rendered(layout)
    sts = one(docs, "StatefulSet")["spec"]
    assert sts["replicas"] >= 3 and sts["replicas"] % 2 == 1
    assert sts["podManagementPolicy"] == "Parallel"
    assert sts["updateStrategy"]["type"] == "RollingUpdate"
    assert selects_pods(sts["selector"]["matchLabels"], docs)
    peers = one(docs, "Service", sts["serviceName"])["spec"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"] is True
    for service in (d for d in docs if d["kind"] == "Service"):
        assert selects_pods(service["spec"]["selector"], docs), service["metadata"]["name"]
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 and selects_pods(pdb["selector"]["matchLabels"], docs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_services_target_the_ports_the_node_serves(layout: str) -> None:
    docs = rendered(layout)
    names = {p["name"] for p in container(docs)["ports"]}
    peers_name = one(docs, "StatefulSet")["spec"]["serviceName"]
    for service in (d for d in docs if d["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names
            assert port["port"] == port_of(docs, port["targetPort"])
    client = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] != peers_name]
    assert [p["targetPort"] for c in client for p in c["spec"]["ports"]] == ["http"]


# --- every pod's configuration ------------------------------------------------------------------


def secret_value(docs: list[Doc], ref: dict[str, str]) -> str | None:
    """The value a secretKeyRef gives; None for an optional key that is absent (the
    kubelet then leaves the variable unset)."""
    found = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"]]
    if not found:  # production: the Secret is created outside the manifests
        return None if ref.get("optional") else STAND_IN_SECRET
    data = found[0]["stringData"]
    if ref["key"] not in data and ref.get("optional"):
        return None
    return str(data[ref["key"]])


def pod_env(docs: list[Doc], pod_name: str) -> dict[str, str]:
    """The environment of pod ``pod_name``: the image's, then the container's, with
    ``$(VAR)`` expanded from the variables listed before it, as the kubelet does."""
    env = image_env(dockerfile_stages()[-1])
    for item in container(docs)["env"]:
        source = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
        elif (value := secret_value(docs, source["secretKeyRef"])) is not None:
            env[item["name"]] = value
    return env


def pod_config(docs: list[Doc], pod_name: str, tmp_path: Path) -> NodeConfig:
    """The configuration pod ``pod_name`` starts with (files of mounted ConfigMaps
    written under ``tmp_path``)."""
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mapped: dict[str, str] = {}
    for mount in container(docs)["volumeMounts"]:
        config_map = volumes.get(mount["name"], {}).get("configMap")
        if config_map is None:
            continue
        data = one(docs, "ConfigMap", config_map["name"])["data"]
        for key, text in data.items():
            (tmp_path / key).write_text(text)
            mapped[f"{mount['mountPath']}/{key}"] = str(tmp_path / key)
    args = container(docs)["args"]
    assert args[0] == "run"
    return build_config([mapped.get(a, a) for a in args[1:]], pod_env(docs, pod_name))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_pod_derives_the_members_kubernetes_names(layout: str, tmp_path: Path) -> None:
    docs = rendered(layout)
    sts = one(docs, "StatefulSet")
    name, replicas = sts["metadata"]["name"], sts["spec"]["replicas"]
    service = sts["spec"]["serviceName"]
    namespace = sts["metadata"].get("namespace", "default")
    # What cluster DNS serves for pod i, and what a name resolves to through the
    # pod's search path (<namespace>.svc.cluster.local first).
    fqdns = [f"{name}-{i}.{service}.{namespace}.svc.cluster.local" for i in range(replicas)]
    suffix = f".{namespace}.svc.cluster.local"
    for i in range(replicas):
        config = pod_config(docs, f"{name}-{i}", tmp_path)
        assert config.node.id == f"{name}-{i}"
        assert config.cluster.replicas == replicas  # ConfigMap and StatefulSet agree
        members = config.cluster.members
        assert members == dns_members(
            config.node.id,
            str(config.cluster.dns_service),
            replicas,
            config.raft.port,
            config.http.port,
        )
        hosts = [m.raft_address.host for m in members]
        assert [h if h.endswith(suffix) else h + suffix for h in hosts] == fqdns
        assert config.raft.advertise_host == hosts[i]
        assert {m.raft_address.port for m in members} == {port_of(docs, "raft")}
        assert {m.http_address.port for m in members} == {port_of(docs, "http")}
        assert config.cluster.secret is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ports_probes_metrics_and_data_match_the_node(layout: str, tmp_path: Path) -> None:
    docs = rendered(layout)
    sts = one(docs, "StatefulSet")
    config = pod_config(docs, f"{sts['metadata']['name']}-0", tmp_path)
    main = container(docs)
    assert port_of(docs, "http") == config.http.port and config.http.host == "0.0.0.0"
    assert port_of(docs, "raft") == config.raft.port and config.raft.host == "0.0.0.0"
    assert port_of(docs, "metrics") == config.metrics.port
    served = api_routes()
    # Liveness on /livez: /health answers 503 while no leader is known, and restarting
    # pods that lost their quorum would only restart them in a loop.
    probes = (("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/ready"))
    for probe, path in probes:
        assert main[probe]["httpGet"] == {"path": path, "port": "http"}, probe
        assert ("GET", path) in served
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == config.metrics.port
    assert ("GET", annotations["prometheus.io/path"]) in served
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    (data,) = [m["mountPath"] for m in main["volumeMounts"] if m["name"] in claims]
    # Inside the volume, not its root (a fresh volume's root may hold lost+found).
    assert Path(config.node.data_dir).parent == Path(data)
    names = {item["name"] for item in main["env"]}
    assert names <= set(KEYS_BY_ENV), sorted(names - set(KEYS_BY_ENV))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pods_run_with_a_restricted_security_context(layout: str) -> None:
    docs = rendered(layout)
    pod, main = pod_spec(docs), container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    # Kubernetes would otherwise set <SERVICE>_PORT variables for every Service in the
    # namespace, and a Service named "raft" would set RAFT_PORT, a configuration key.
    assert pod["enableServiceLinks"] is False
    context = main["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    writable = {m["mountPath"] for m in main["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/data", "/tmp"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_stopping_pod_has_time_to_hand_leadership_over(layout: str) -> None:
    docs = rendered(layout)
    command = container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    # The pause, then SIGTERM: a leader transfers leadership and exits in ~2 s.
    assert pod_spec(docs)["terminationGracePeriodSeconds"] >= int(command[1]) + 10


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_placeholder_secret_never_reaches_production(layout: str) -> None:
    docs = rendered(layout)
    text = yaml.safe_dump_all(docs)
    (ref,) = [
        e["valueFrom"]["secretKeyRef"]
        for e in container(docs)["env"]
        if e["name"] == "CLUSTER_SECRET"
    ]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if layout in OWN_SECRET:
        assert not secrets and PLACEHOLDER not in text
    else:
        (secret,) = secrets
        assert secret["metadata"]["name"] == ref["name"]
        assert secret["stringData"][ref["key"]] == PLACEHOLDER


@pytest.mark.parametrize("layout", LAYOUTS[1:])
def test_overlays_keep_the_base_objects_in_their_namespace(layout: str) -> None:
    base, docs = rendered("base"), rendered(layout)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    expected = sorted((d["kind"], d["metadata"]["name"]) for d in base)
    if layout in OWN_SECRET:
        expected.remove(("Secret", "scheduled-db"))
    if layout == "overlays/monitoring":
        expected += [("PodMonitor", "scheduled-db"), ("PrometheusRule", "scheduled-db")]
        expected.sort()
    assert kinds == expected
    assert {d["metadata"].get("namespace") for d in docs} == {NAMESPACES[layout]}


# --- the monitoring overlay ---------------------------------------------------------------------


def test_the_monitoring_overlay_is_production_plus_a_pod_monitor_and_the_alert_rules(
    tmp_path: Path,
) -> None:
    docs, production = rendered("overlays/monitoring"), rendered("overlays/production")
    added = [d for d in docs if d["kind"] in ("PodMonitor", "PrometheusRule")]
    assert [d for d in docs if d not in added] == production
    for doc in added:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    monitor = one(docs, "PodMonitor")["spec"]
    assert selects_pods(monitor["selector"]["matchLabels"], docs)
    (endpoint,) = monitor["podMetricsEndpoints"]
    sts = one(docs, "StatefulSet")
    config = pod_config(docs, f"{sts['metadata']['name']}-0", tmp_path)
    assert port_of(docs, endpoint["port"]) == config.metrics.port
    assert ("GET", endpoint["path"]) in metrics_routes()
    # The job label comes from a pod label, and is the job the alert rules name.
    labels = sts["spec"]["template"]["metadata"]["labels"]
    job = labels[monitor["jobLabel"]]
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    assert groups == yaml.safe_load(ALERTS.read_text())["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    assert f'up{{job="{job}"}} == 0' in exprs
