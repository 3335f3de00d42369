"""The pure core stays pure: everything in scheduled_db/ but the command line (cli/), the
API client (client/) and the simulator (testing/) imports no clock, thread, socket, event
loop, process environment, network client or global randomness.  Time and randomness are
inputs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "scheduled_db"
NOT_PURE = {"cli", "client", "testing"}  # they talk HTTP, start processes, run simulations
FORBIDDEN = {"time", "threading", "socket", "asyncio", "random", "os", "subprocess", "http"}
# urllib.parse splits strings and does no I/O; urllib.request would.
ALLOWED_FROM = {"urllib.parse"}
FORBIDDEN_FROM = {"urllib"}


def _pure_modules() -> list[Path]:
    return sorted(
        p
        for p in CORE.rglob("*.py")
        if p.relative_to(CORE).parts[0] not in NOT_PURE and p.name != "__main__.py"
    )


def _impure_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = {node.module}
        else:
            continue
        for name in names - ALLOWED_FROM:
            if name.split(".")[0] in FORBIDDEN | FORBIDDEN_FROM:
                found.add(name)
    return found


def test_the_walk_covers_the_whole_core() -> None:
    parts = {p.relative_to(CORE).parts[0] for p in _pure_modules()}
    assert {"raft", "jobs", "state", "firing", "policy", "config"} <= parts


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_a_core_module_imports_nothing_impure(path: Path) -> None:
    assert _impure_imports(path) == set()


def test_the_check_catches_an_impure_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import os\nfrom time import monotonic\nfrom urllib.request import urlopen\n")
    assert _impure_imports(sneaky) == {"os", "time", "urllib.request"}
