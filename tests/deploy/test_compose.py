"""docker-compose.yml and the LB, Prometheus and Grafana configs agree with the nodes.

Every node's configuration is the one the node would run with: its compose command
and environment (over the image's ENV) through the project's own config parser,
reading the YAML file compose mounts.  The other services' configs must then name
exactly those nodes, ports and paths.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from scheduled_db.config.loading import KEYS_BY_ENV, NodeConfig
from scheduled_db.testing.harness import free_port
from tests.deploy.manifests import (
    COMPOSE_FILE,
    DASHBOARD,
    GRAFANA_DIR,
    NGINX_CONF,
    PROMETHEUS_CONF,
    ROOT,
    ComposeService,
    NginxConf,
    compose_services,
    dockerfile_stages,
    image_env,
    load_compose,
    metrics_routes,
    node_config,
    node_services,
)
from tests.deploy.topology import LOOPBACK, nginx_argv, render_nginx, require

COMPOSE = load_compose()
SERVICES = compose_services(COMPOSE)
NODES = node_services(COMPOSE)
IMAGE_ENV = image_env(dockerfile_stages()[-1])


def configs() -> dict[str, NodeConfig]:
    return {s.name: node_config(s, IMAGE_ENV) for s in NODES}


def exposed_ports() -> set[int]:
    stage = dockerfile_stages()[-1]
    return {int(p) for ins in stage if ins.keyword == "EXPOSE" for p in ins.args.split()}


def test_compose_runs_three_nodes_and_every_mounted_file_exists() -> None:
    assert [s.name for s in NODES] == ["node-1", "node-2", "node-3"]
    for service in SERVICES.values():
        for mount in service.mounts:
            if mount.is_bind:
                assert mount.host_path().exists(), f"{service.name}: {mount.source}"
                assert mount.read_only, f"{service.name}: mount {mount.source} read-only"


def test_nodes_keep_the_images_liveness_check_on_livez() -> None:
    """The nodes inherit the image's HEALTHCHECK (``scheduled-db livez``): a check on
    /health would mark every node unhealthy while the cluster has no quorum."""
    for node in NODES:
        assert "healthcheck" not in node.spec, node.name
    (check,) = [i.args for i in dockerfile_stages()[-1] if i.keyword == "HEALTHCHECK"]
    assert "scheduled-db livez " in check and "/health" not in check


def test_each_node_runs_its_own_file_in_config_cluster() -> None:
    for service in NODES:
        mount = service.config_mount()
        assert mount.host_path() == ROOT / "config" / "cluster" / f"{service.name}.yaml"
        config = node_config(service, IMAGE_ENV)  # raises ConfigError if anything is wrong
        assert config.node.id == service.name  # the service name is what peers dial


def test_node_environment_names_are_configuration_keys() -> None:
    for service in NODES:
        unknown = sorted(set(service.environment) - set(KEYS_BY_ENV))
        assert not unknown, f"{service.name}: not configuration env vars: {unknown}"


def test_nodes_listen_on_all_interfaces_and_reach_each_other_by_service_name() -> None:
    by_name = configs()
    for name, config in by_name.items():
        assert (config.http.host, config.raft.host) == ("0.0.0.0", "0.0.0.0"), name
        assert config.raft.advertise_host == name
        assert {m.id for m in config.cluster.members} == set(by_name)
        for member in config.cluster.members:
            peer = by_name[member.id]
            assert member.raft_address.host == member.http_address.host == member.id
            assert member.raft_address.port == peer.raft.port, (name, member)
            assert member.http_address.port == peer.http.port, (name, member)
    secrets = {config.cluster.secret for config in by_name.values()}
    assert len(secrets) == 1 and None not in secrets, "one cluster secret for all nodes"


def test_node_ports_are_the_images_and_the_api_is_published() -> None:
    host_ports = []
    for service in NODES:
        config = node_config(service, IMAGE_ENV)
        ports = {config.http.port, config.raft.port, config.metrics.port}
        assert ports == exposed_ports(), service.name
        published = service.published()
        assert set(published) == {config.http.port}, service.name
        host_ports.append(published[config.http.port])
    assert len(set(host_ports)) == len(host_ports)


def test_each_node_keeps_its_data_in_a_named_volume_of_its_own() -> None:
    volumes = []
    for service in NODES:
        config = node_config(service, IMAGE_ENV)
        mount = service.mount_at(config.node.data_dir)
        assert not mount.is_bind and not mount.read_only, service.name
        volumes.append(mount.source)
    assert len(set(volumes)) == len(NODES)
    assert set(volumes) <= set(COMPOSE["volumes"])


# --- the load balancer ------------------------------------------------------------------------


def lb_service() -> ComposeService:
    (lb,) = [s for s in SERVICES.values() if s.spec.get("image", "").startswith("nginx")]
    return lb


def test_the_lb_balances_over_every_nodes_api_port() -> None:
    lb = lb_service()
    assert lb.mount_at("/etc/nginx/nginx.conf").host_path() == NGINX_CONF
    conf = NginxConf.read(NGINX_CONF.read_text())
    ((upstream, servers),) = conf.upstreams.items()
    expected = {(s.name, node_config(s, IMAGE_ENV).http.port) for s in NODES}
    assert set(servers) == expected and len(servers) == len(expected)
    assert conf.proxy_passes == [f"http://{upstream}"]
    assert [int(p) for p in conf.listens] == list(lb.published()) == [80]
    assert set(lb.spec["depends_on"]) == {s.name for s in NODES}


def test_the_lb_refuses_bodies_the_nodes_would_refuse() -> None:
    (size,) = re.findall(r"client_max_body_size\s+(\d+)m;", NGINX_CONF.read_text())
    for config in configs().values():
        assert int(size) * 1024 * 1024 == config.http.max_body_bytes


def test_nginx_accepts_the_lb_config(tmp_path: Path) -> None:
    require("nginx", "nginx")
    addresses = {f"{s.name}:{node_config(s, IMAGE_ENV).http.port}": f"{LOOPBACK}:1" for s in NODES}
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx(addresses, free_port()))
    argv = nginx_argv(conf)
    done = subprocess.run([argv[0], "-t", *argv[1:]], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


# --- Prometheus and Grafana ---------------------------------------------------------------------


def test_prometheus_scrapes_every_nodes_metrics_port() -> None:
    prometheus = SERVICES["prometheus"]
    assert prometheus.mount_at("/etc/prometheus/prometheus.yml").host_path() == PROMETHEUS_CONF
    config = yaml.safe_load(PROMETHEUS_CONF.read_text())
    (job,) = config["scrape_configs"]
    assert ("GET", job.get("metrics_path", "/metrics")) in metrics_routes()
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    expected = {f"{s.name}:{node_config(s, IMAGE_ENV).metrics.port}" for s in NODES}
    assert set(targets) == expected and len(targets) == len(expected)


def test_prometheus_finds_each_rule_file_where_compose_mounts_it() -> None:
    prometheus = SERVICES["prometheus"]
    config = yaml.safe_load(PROMETHEUS_CONF.read_text())
    assert config["rule_files"], "no alert rules loaded"
    for name in config["rule_files"]:  # relative to the config file's directory
        mount = prometheus.mount_at(f"/etc/prometheus/{name}")
        assert mount.host_path() == PROMETHEUS_CONF.parent / name


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = require("promtool", "prometheus")
    argv = [promtool, "check", "config", str(PROMETHEUS_CONF)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_provisions_the_prometheus_service_and_the_dashboard() -> None:
    grafana = SERVICES["grafana"]
    provisioning = grafana.mount_at("/etc/grafana/provisioning")
    assert provisioning.host_path() == GRAFANA_DIR / "provisioning"
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{list(SERVICES['prometheus'].published())[0]}"
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/dashboards/scheduled-db.yml").read_text()
    )
    (provider,) = providers["providers"]
    dashboards = grafana.mount_at(provider["options"]["path"])
    assert DASHBOARD.parent == dashboards.host_path()
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    (datasource,) = [v for v in variables if v["type"] == "datasource"]
    assert datasource["current"]["value"] == source["uid"]


def test_docker_compose_accepts_the_file() -> None:
    """The compose implementation's own schema check, where one is installed
    (Debian's docker-compose 1.29 validates without a Docker engine)."""
    compose = require("docker-compose", "docker-compose")
    argv = [compose, "-f", str(COMPOSE_FILE), "config", "-q"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
