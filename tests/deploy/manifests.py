"""Readers of the deployment files, and what the code says those files must match.

The deployment tests compare two sides: what the repository ships (Dockerfile,
docker-compose.yml, deploy/, k8s/) and what a node actually does (its config
parser, its routes, its ports).  This module reads the first side into plain data
and asks the code for the second; it asserts nothing itself.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from actors.api.app import build_app, build_metrics_app
from actors.runtime.metrics import ApiMetrics
from scheduled_db.cli.main import build_config
from scheduled_db.config.loading import NodeConfig, load_config
from tests.actors.memory_backend import MemoryBackend

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
PROMETHEUS_CONF = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "scheduled-db.json"
K8S = ROOT / "k8s"

# --- the code's side ----------------------------------------------------------------------


def served_paths(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route of an aiohttp application."""
    routes = app.router.routes()
    return {(r.method, r.resource.canonical) for r in routes if r.resource is not None}


def api_routes() -> set[tuple[str, str]]:
    """The routes of a node's REST API (port http.port), from the real application."""
    config = load_config({}, {}, None, "defaults")
    app = build_app(MemoryBackend(), config, ApiMetrics(), lambda: 0)
    return served_paths(app)


def metrics_routes() -> set[tuple[str, str]]:
    """The routes of a node's separate metrics listener (port metrics.port)."""
    config = load_config({}, {}, None, "defaults")
    return served_paths(build_metrics_app(MemoryBackend(), config, ApiMetrics()))


# --- docker-compose.yml -------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Compose's variable substitution: ``${X}``, ``$X``, ``${X:-default}``,
    ``${X-default}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group("braced") if match.group("bare") is None else match.group("bare")
        for sep in (":-", "-"):
            name, found, default = expr.partition(sep)
            if found:
                value = environ.get(name)
                missing = value is None or (sep == ":-" and value == "")
                return default if missing else str(value)
        return environ.get(expr, "")

    return _VARIABLE.sub(one, text)


def _interpolate_tree(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [_interpolate_tree(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, environ) for key, value in node.items()}
    return node


def load_compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as compose reads it with ``environ`` as the shell's
    environment (default: an empty one, so every ``${X:-default}`` takes its default)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    tree: dict[str, Any] = _interpolate_tree(data, environ or {})
    return tree


@dataclass(frozen=True)
class Mount:
    """One ``source:target[:mode]`` entry of a service's ``volumes``."""

    source: str
    target: str
    read_only: bool

    @classmethod
    def parse(cls, spec: str) -> Mount:
        source, target, *mode = spec.split(":")
        return cls(source, target, mode == ["ro"])

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))

    def host_path(self) -> Path:
        return (ROOT / self.source).resolve()


@dataclass(frozen=True)
class ComposeService:
    """One service of docker-compose.yml, with what the tests ask of it."""

    name: str
    spec: dict[str, Any]

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {str(key): str(value) for key, value in env.items()}

    @property
    def mounts(self) -> list[Mount]:
        return [Mount.parse(v) for v in self.spec.get("volumes", [])]

    def mount_at(self, target: str) -> Mount:
        (mount,) = [m for m in self.mounts if m.target == target]
        return mount

    def published(self) -> dict[int, int]:
        """Container port -> host port of every ``host:container`` in ``ports``."""
        pairs = (str(p).split(":") for p in self.spec.get("ports", []))
        return {int(container): int(host) for host, container in pairs}

    @property
    def command(self) -> list[str]:
        command = self.spec.get("command", [])
        return shlex.split(command) if isinstance(command, str) else list(command)

    def host_argv(self) -> list[str]:
        """The ``run`` arguments of a node service, with a mounted file's container
        path replaced by its path in this checkout."""
        assert self.command[:1] == ["run"], f"{self.name} must run `scheduled-db run`"
        by_target = {m.target: str(m.host_path()) for m in self.mounts if m.is_bind}
        return [by_target.get(arg, arg) for arg in self.command[1:]]

    def config_mount(self) -> Mount:
        argv = self.command
        return self.mount_at(argv[argv.index("--config") + 1])


def compose_services(compose: dict[str, Any]) -> dict[str, ComposeService]:
    return {name: ComposeService(name, spec) for name, spec in compose["services"].items()}


def node_services(compose: dict[str, Any]) -> list[ComposeService]:
    """The services that run the image built from this checkout."""
    services = compose_services(compose).values()
    return [s for s in services if s.spec.get("build") in (".", "./")]


def node_config(service: ComposeService, image_env: Mapping[str, str]) -> NodeConfig:
    """The configuration the node of ``service`` runs with: its command's flags, then
    the service's environment over the image's, then the mounted YAML file."""
    return build_config(service.host_argv(), {**image_env, **service.environment})


# --- Dockerfile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage (comments and line
    continuations resolved)."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[list[Instruction]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), " ".join(args.split())))
    return stages


def image_env(stage: list[Instruction]) -> dict[str, str]:
    """The ``ENV`` of a stage (``ENV A=1 B=2`` form)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for item in shlex.split(ins.args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


# --- nginx ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NginxConf:
    """What the LB config routes: its upstream servers and its listen ports."""

    upstreams: dict[str, list[tuple[str, int]]]
    listens: list[str]
    proxy_passes: list[str]

    @classmethod
    def read(cls, text: str) -> NginxConf:
        text = re.sub(r"#[^\n]*", "", text)
        upstreams = {
            name: [
                (host, int(port)) for host, port in re.findall(r"server\s+([\w.-]+):(\d+)", body)
            ]
            for name, body in re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", text)
        }
        listens = re.findall(r"\blisten\s+([^;]+);", text)
        return cls(upstreams, listens, re.findall(r"proxy_pass\s+([^;]+);", text))
