"""The Dockerfile and its build context agree with the package and the node.

No Docker engine here: the file is read, and its HEALTHCHECK command is run
against a real node process.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import subprocess
import sys

from scheduled_db.config.loading import KEYS_BY_ENV, KEYS_BY_PATH
from scheduled_db.testing.harness import free_port
from tests.deploy.manifests import ROOT, Instruction, api_routes, dockerfile_stages, image_env
from tests.deploy.topology import ComposeNode

FINAL = dockerfile_stages()[-1]


def instructions(keyword: str, stage: list[Instruction] = FINAL) -> list[str]:
    return [ins.args for ins in stage if ins.keyword == keyword]


def exec_form(keyword: str) -> list[str]:
    (args,) = instructions(keyword)
    argv = json.loads(args)  # the exec (JSON) form: no shell between Docker and the node
    assert isinstance(argv, list)
    return [str(a) for a in argv]


def test_the_image_exposes_the_ports_a_node_listens_on_by_default() -> None:
    exposed = {int(p) for args in instructions("EXPOSE") for p in args.split()}
    defaults = {KEYS_BY_PATH[k].default for k in ("http.port", "raft.port", "metrics.port")}
    assert exposed == defaults == {8080, 7000, 9090}


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    (user,) = instructions("USER")
    uid, _, gid = user.partition(":")
    # Kubernetes can only enforce runAsNonRoot for a numeric user.
    assert uid.isdigit() and int(uid) != 0, user
    assert gid == "" or (gid.isdigit() and int(gid) != 0), user


def test_the_data_directory_is_the_volume_and_belongs_to_the_user() -> None:
    env = image_env(FINAL)
    assert KEYS_BY_ENV["DATA_DIR"].path == "node.data_dir"
    (volume,) = instructions("VOLUME")
    assert env["DATA_DIR"] == volume == "/data"
    (user,) = instructions("USER")
    (setup,) = [run for run in instructions("RUN") if f"mkdir {volume}" in run]
    assert f"chown {user} {volume}" in setup, setup


def test_the_node_gets_sigterm_directly() -> None:
    assert exec_form("ENTRYPOINT") == ["scheduled-db"]
    assert exec_form("CMD")[0] == "run"
    assert instructions("STOPSIGNAL") in ([], ["SIGTERM"])
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"]
    assert "scheduled-db = scheduled_db.cli.main:main" in scripts


def healthcheck(http_port: int) -> int:
    """Run the image's HEALTHCHECK command (this checkout's CLI for `scheduled-db`)."""
    (args,) = instructions("HEALTHCHECK")
    argv = json.loads(args.partition(" CMD ")[2])
    assert argv[:2] == ["sh", "-c"] and "${HTTP_PORT:-8080}" in argv[2], argv
    assert KEYS_BY_ENV["HTTP_PORT"].default == 8080
    script = argv[2].replace("scheduled-db", f"{sys.executable} -m scheduled_db", 1)
    env = {**os.environ, "HTTP_PORT": str(http_port), "PYTHONPATH": str(ROOT)}
    return subprocess.run(["sh", "-c", script], env=env, timeout=30, cwd=ROOT).returncode


def test_the_healthcheck_passes_on_a_live_node_and_fails_without_one(
    compose_nodes: list[ComposeNode],
) -> None:
    assert ("GET", "/livez") in api_routes()
    assert healthcheck(compose_nodes[0].http_port) == 0
    assert healthcheck(free_port()) != 0


def dockerignore_allows(path: str) -> bool:
    """Whether the build context keeps ``path`` (last matching rule wins)."""
    allowed = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negated, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            allowed = negated
    return allowed


def test_the_build_context_holds_the_package_and_only_what_is_copied() -> None:
    build = dockerfile_stages()[0]
    sources = [
        src for args in instructions("COPY", build) for src in args.split()[:-1] if "--" not in src
    ]
    for src in sources:
        assert (ROOT / src).exists() and dockerignore_allows(src), src
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    included = setup["options.packages.find"]["include"].split()
    packages = {p for p in included if "." not in p}
    assert packages | {"setup.cfg", "pyproject.toml", "README.md"} == set(sources)
    assert setup["metadata"]["long_description"] == "file: README.md"
    for unwanted in (".git", "tests", "build", "bench/results", "data/node-1"):
        assert not dockerignore_allows(unwanted), unwanted
