"""The Raft core stays pure: no clocks, threads, sockets, event loops or global RNG."""

import ast
from pathlib import Path

import pytest

RAFT = Path(__file__).resolve().parents[2] / "scheduled_db" / "raft"
FORBIDDEN = {"time", "threading", "socket", "asyncio", "random"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted(RAFT.glob("*.py")), ids=lambda p: p.name)
def test_core_modules_import_nothing_impure(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN
    if path.name == "sim.py":
        # The simulator builds seeded Random instances (never the global generator).
        assert "from random import Random" in path.read_text()
        bad -= {"random"}
    assert not bad, f"{path.name} imports {bad}"
