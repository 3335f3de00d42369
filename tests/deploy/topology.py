"""docker-compose.yml's topology as local processes: the nodes, nginx and Prometheus.

Every piece is started from the repository's own files.  Each node service runs its
compose ``command`` with its mounted YAML file and its compose environment; only
what a container has to itself is remapped: hosts to 127.0.0.1, ports to free
ones, the data volume to a temporary directory.  The same map from compose
addresses (``node-1:8080``) to local ones rewrites ``PEERS`` and renders the nginx
and Prometheus configs, so an address the configs disagree on fails to map.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduled_db.testing.harness import Http, NodeProcess, free_port, wait_until
from tests.deploy.manifests import (
    NGINX_CONF,
    PROMETHEUS_CONF,
    ComposeService,
    dockerfile_stages,
    image_env,
    load_compose,
    node_config,
    node_services,
)

LOOPBACK = "127.0.0.1"
_ADDRESS = re.compile(r"[A-Za-z0-9][\w.-]*:\d+")


class ComposeNode(NodeProcess):
    """One node service of docker-compose.yml, run as a local process."""

    def __init__(self, service: ComposeService, root: Path) -> None:
        config = node_config(service, image_env(dockerfile_stages()[-1]))
        super().__init__(root / service.name / "data", node_id=config.node.id)
        self.data_dir.parent.mkdir(parents=True)
        self.service = service
        self.config = config

    def args(self) -> list[str]:
        return [sys.executable, "-m", "scheduled_db", "run", *self.service.host_argv()]

    def local_addresses(self) -> dict[str, str]:
        """Its compose addresses (service name and container port) -> local ones."""
        name = self.service.name
        return {
            f"{name}:{self.config.http.port}": f"{LOOPBACK}:{self.http_port}",
            f"{name}:{self.config.raft.port}": f"{LOOPBACK}:{self.raft_port}",
            f"{name}:{self.config.metrics.port}": f"{LOOPBACK}:{self.metrics_port}",
        }

    def remap(self, addresses: dict[str, str]) -> None:
        """Set the environment: the service's, with hosts, ports and paths made local."""
        env = dict(self.service.environment)
        env.update(
            HTTP_HOST=LOOPBACK,
            HTTP_PORT=str(self.http_port),
            RAFT_HOST=LOOPBACK,
            RAFT_ADVERTISE_HOST=LOOPBACK,
            RAFT_PORT=str(self.raft_port),
            METRICS_PORT=str(self.metrics_port),
            DATA_DIR=str(self.data_dir),
            PEERS=map_addresses(env["PEERS"], addresses),
        )
        self.env = env

    def ready(self) -> bool:
        try:
            return self.http.call("GET", "/ready")[0] == 200
        except OSError:
            return False


def map_addresses(text: str, addresses: dict[str, str]) -> str:
    """``text`` with every ``host:port`` replaced by its local address; KeyError names
    an address no compose node serves."""
    return _ADDRESS.sub(lambda m: addresses[m.group(0)], text)


def start_nodes(root: Path) -> list[ComposeNode]:
    """Every node service of docker-compose.yml, started at once and ready."""
    nodes = [ComposeNode(s, root) for s in node_services(load_compose())]
    addresses = all_addresses(nodes)
    for n in nodes:
        n.remap(addresses)
        n.start(wait=False)
    try:
        for n in nodes:
            wait_until(n.answers, 30, f"{n.node_id} to serve HTTP")
            wait_until(n.ready, 30, f"{n.node_id} to be ready")
    except BaseException:
        stop_all(nodes)
        raise
    return nodes


def stop_all(nodes: list[ComposeNode]) -> None:
    for n in nodes:
        n.stop_if_running()


def all_addresses(nodes: list[ComposeNode]) -> dict[str, str]:
    return {k: v for n in nodes for k, v in n.local_addresses().items()}


def require(binary: str, package: str) -> str:
    """The path of ``binary``; when it is missing, skip naming the Debian package, or
    fail under ``CI=true`` (docs/deployment.md, Checks, lists the packages the tests use)."""
    path = shutil.which(binary)
    if path is None:
        if os.environ.get("CI") == "true":  # CI installs them all (.ci/run): never skip there
            pytest.fail(f"{binary} not installed: CI installs {package} (.ci/run)")
        pytest.skip(f"{binary} not installed (apt-get install -y {package})")
    return path


# --- nginx ------------------------------------------------------------------------------------


def render_nginx(addresses: dict[str, str], listen_port: int) -> str:
    """deploy/nginx/nginx.conf with compose addresses made local and the LB's port moved
    off 80 (a non-root user cannot bind it)."""
    text = NGINX_CONF.read_text()
    text = re.sub(r"(\bserver\s+)([\w.-]+:\d+)", lambda m: m.group(1) + addresses[m.group(2)], text)
    listen = re.compile(r"\blisten\s+80;")
    assert len(listen.findall(text)) == 1, "the LB config must listen on port 80 once"
    return listen.sub(f"listen {LOOPBACK}:{listen_port};", text)


def nginx_argv(conf: Path) -> list[str]:
    """nginx on ``conf`` with the pid and error log in its directory, in the foreground."""
    prefix = conf.parent
    return [
        shutil.which("nginx") or "nginx",
        "-p", f"{prefix}/",
        "-c", str(conf),
        "-e", str(prefix / "error.log"),
        "-g", f"daemon off; pid {prefix / 'nginx.pid'};",
    ]  # fmt: skip


class Nginx:
    """The LB process, with the repository's config rendered for loopback."""

    def __init__(self, root: Path, addresses: dict[str, str]) -> None:
        root.mkdir(parents=True)
        self.port = free_port()
        self.conf = root / "nginx.conf"
        self.conf.write_text(render_nginx(addresses, self.port))
        self.log_path = root / "nginx.out"
        self.http = Http(f"http://{LOOPBACK}:{self.port}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(nginx_argv(self.conf), stdout=log, stderr=log)
        wait_until(self._answers, 15, "nginx to proxy /health")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"nginx exited:\n{self.log_path.read_text()}")
        try:
            return self.http.call("GET", "/health")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# --- Prometheus ---------------------------------------------------------------------------------


def render_prometheus(addresses: dict[str, str], interval: str = "1s") -> str:
    """deploy/prometheus/prometheus.yml with local targets, a fast scrape interval, and
    its rule files named by absolute path (the rendered file lives elsewhere)."""
    config = yaml.safe_load(PROMETHEUS_CONF.read_text())
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(PROMETHEUS_CONF.parent / f) for f in config.get("rule_files", [])]
    for job in config["scrape_configs"]:
        for group in job.get("static_configs", []):
            group["targets"] = [addresses[t] for t in group["targets"]]
    text: str = yaml.safe_dump(config)
    return text


class Prometheus:
    """A Prometheus server on the rendered config, with its query API."""

    def __init__(self, root: Path, addresses: dict[str, str]) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.port = free_port()
        self.conf = root / "prometheus.yml"
        self.conf.write_text(render_prometheus(addresses))
        self.log_path = root / "prometheus.out"
        self.http = Http(f"http://{LOOPBACK}:{self.port}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={self.conf}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        wait_until(self._ready, 30, "Prometheus to be ready")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()}")
        try:
            return self.http.call("GET", "/-/ready")[0] == 200
        except OSError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (``status`` is "success" or "error")."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body: dict[str, Any] = self.http.call("GET", path)[2]
        return body

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
