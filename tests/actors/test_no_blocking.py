"""No actor blocks on another actor (docs/architecture.md, "One way to reply").

The rule is checked on the source, so a blocking call cannot hide on a code path
the other tests never take.  In every module under ``actors/`` it forbids:

* ``x.ask(...)``: an ask's future is only ever waited on, and waiting inside a
  handler stalls the actor's mailbox on another actor's (the Raft thread waiting
  on a RocksDB apply is what this rule was written after);
* ``x.proxy(...)``: every attribute of a Pykka proxy is a future, waited on the same
  way (``ref.proxy().port.get()``);
* ``pykka.get_all(...)``: waits on many futures at once;
* ``wait_reply(...)`` (actors/runtime/replies.py): tells a request and waits for
  its answer, the supervisor's and the tests' way to ask;
* ``.get(...)`` called on anything built from the three above (``ref.ask(q,
  block=False).get()``), should one of them ever be allowed again.

A plain ``.get`` (``dict.get``) is not touched: only its receiver decides.

Exceptions, each with its reason:

* ``actors/node.py``: the supervisor.  It runs on the caller's thread while it
  starts and stops the actors (waiting for ports, asking who leads before a
  handover); it is no actor and has no handler.  The check below fails if an
  actor class ever moves into it.
* tests (outside ``actors/``): they wait on futures as barriers.

Not covered, on purpose: an actor waiting on its own event-loop thread for the
bounded start and stop handshakes (actors/runtime/loop_thread.py), which is not
another actor.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTORS = ROOT / "actors"

# Path (relative to the repository) -> why blocking is allowed there.
EXEMPT = {
    "actors/node.py": "the supervisor: runs outside any actor, starting and stopping them",
}

BLOCKING_METHODS = frozenset({"ask", "proxy", "get_all", "wait_reply"})


def _blocking_call(node: ast.AST) -> str | None:
    """The name of the blocking call ``node`` is, or is built from (None: not one)."""
    while True:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in BLOCKING_METHODS:
                return func.attr
            if isinstance(func, ast.Name) and func.id in BLOCKING_METHODS:
                return func.id
            node = func
        elif isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        else:
            return None


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Each forbidden call in ``source``, as ``file:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in BLOCKING_METHODS:
            found.append(f"{filename}:{node.lineno}: {name}() waits on another actor")
        elif name == "get" and isinstance(func, ast.Attribute):
            inner = _blocking_call(func.value)
            if inner is not None:
                found.append(f"{filename}:{node.lineno}: .get() on the future of {inner}()")
    return found


def _actor_modules() -> list[Path]:
    return sorted(p for p in ACTORS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_actor_module_blocks_on_another_actor() -> None:
    found = []
    for path in _actor_modules():
        rel = path.relative_to(ROOT).as_posix()
        if rel not in EXEMPT:
            found += violations(path.read_text(encoding="utf-8"), rel)
    assert found == [], "an actor blocks on another actor:\n" + "\n".join(found)


def test_the_exempt_modules_hold_no_actor() -> None:
    for rel in EXEMPT:
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"), rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                assert not any("Actor" in b for b in bases), f"{rel}: {node.name}({bases})"


def test_the_rule_walks_the_actor_modules() -> None:
    rels = {p.relative_to(ROOT).as_posix() for p in _actor_modules()}
    assert {"actors/raft/actor.py", "actors/raft/snapshot_stream.py"} <= rels
    assert set(EXEMPT) <= rels  # an exemption for a file that moved is a stale one


def test_the_rule_catches_planted_violations() -> None:
    planted = """
class Planted(pykka.ThreadingActor):
    def on_receive(self, message):
        members = self.storage.ask(Read(0, GetMembers()))
        port = self.transport.proxy().port.get()
        later = self.storage.ask(GetApplied(), block=False)
        both = pykka.get_all([later])
        status = wait_reply(self.raft, GetRaftStatus, 5)
        return members, port, both, status
"""
    assert sorted(violations(planted)) == [
        "<source>:4: ask() waits on another actor",
        "<source>:5: .get() on the future of proxy()",
        "<source>:5: proxy() waits on another actor",
        "<source>:6: ask() waits on another actor",
        "<source>:7: get_all() waits on another actor",
        "<source>:8: wait_reply() waits on another actor",
    ]


def test_the_rule_flags_get_on_a_future_but_not_on_a_dict() -> None:
    assert violations("x = ref.ask(q, block=False).get()")  # ask, and .get() on it
    assert len(violations("x = ref.ask(q, block=False).get()")) == 2
    assert violations("x = ref.proxy().port.get(timeout=1)")
    assert violations("x = self._handlers.get(type(message))") == []
    assert violations("self._ask()") == []  # a method of one's own, not Pykka's ask
    assert violations("self.storage.tell(Read(1, GetMembers(), self.actor_ref.tell))") == []
