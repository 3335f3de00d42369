"""The documentation's examples, run against a real node process.

- docs/api-reference.md: every ```http request block, in document order, is sent
  to one fresh node; the status written after it (``→ `200` ``) must be the status
  it gets, and the ```json block that follows, if any, must have exactly the keys of
  the answer, at every level (a list's first item against the answer's first item):
  an example shows the whole answer, not a part that reads as all of it.
- README.md, docs/README.md and docs/webhooks.md: every ``curl`` command is run
  (parsed, not shelled out: -X, -H, -d and the URL), against a fresh node per file,
  and must get a 2xx.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from scheduled_db.testing.harness import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
SECRET = "example-cluster-secret-0123"  # the one docs/api-reference.md shows
NODE_ENV = {
    "CLUSTER_SECRET": SECRET,
    "WEBHOOK_SIGNING_SECRETS": "billing:billing-secret-0123456789",  # docs/webhooks.md
    "WEBHOOK_HEADER_SECRETS": "billing-token:Bearer billing-token-0123456789",  # api-reference
}
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
_STATUS = re.compile(r"\A\s*→ `(\d{3})`")


@dataclass
class Example:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    status: int
    documented: Any  # the ```json block after it, decoded (None if there is none)
    line: int


def api_examples(text: str) -> list[Example]:
    examples = []
    blocks = list(_BLOCK.finditer(text))
    for i, block in enumerate(blocks):
        if block.group(1) != "http":
            continue
        after = text[block.end() :]
        status = _STATUS.match(after)
        assert status, f"line {text[: block.start()].count(chr(10)) + 1}: no → `status` after it"
        head, _, body = block.group(2).partition("\n\n")
        request_line, *header_lines = head.strip().splitlines()
        method, path = request_line.split()
        headers = dict(h.split(": ", 1) for h in header_lines)
        documented = None
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        between = text[block.end() : following.start()] if following else ""
        if following and following.group(1) == "json" and "```http" not in between:
            documented = json.loads(following.group(2))
        examples.append(
            Example(
                method,
                path,
                headers,
                body.strip().encode() or None,
                int(status.group(1)),
                documented,
                text[: block.start()].count("\n") + 1,
            )
        )
    return examples


def key_differences(documented: Any, answer: Any, where: str = "") -> list[str]:
    """Keys the example shows and the answer lacks (``-path``) or the other way round
    (``+path``), as paths like ``jobs[0].job_id``; payloads are the client's own."""
    if isinstance(documented, dict):
        if not isinstance(answer, dict):
            return [f"-{where or '.'}"]
        out = [f"-{where}.{k}".replace("-.", "-") for k in documented if k not in answer]
        out += [f"+{where}.{k}".replace("+.", "+") for k in answer if k not in documented]
        for key in documented.keys() & answer.keys() - {"payload", "data"}:
            out += key_differences(documented[key], answer[key], f"{where}.{key}")
        return out
    if isinstance(documented, list) and documented and isinstance(answer, list) and answer:
        return key_differences(documented[0], answer[0], f"{where}[0]")
    return []


def curl_commands(text: str) -> list[list[str]]:
    """Each ``curl`` command of the code blocks, its continuation lines and quoted
    multi-line bodies included, as shell words."""
    commands = []
    for block in _BLOCK.finditer(re.sub(r"\\\n\s*", " ", text)):
        lines = iter(block.group(2).splitlines())
        for line in lines:
            if not line.strip().startswith("curl "):
                continue
            command = line
            while True:
                try:
                    commands.append(shlex.split(command, comments=True))
                    break
                except ValueError:  # a quote still open: the body goes on
                    command += "\n" + next(lines)
    return commands


def run_curl(node: NodeProcess, argv: list[str]) -> tuple[int, Any]:
    method, headers, data, url = "GET", {}, None, None
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-X", "--request"):
            method = next(args)
        elif arg.startswith("-X") and len(arg) > 2:
            method = arg[2:]
        elif arg in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data"):
            data = next(args).encode()
            method = "POST" if method == "GET" else method
        elif arg.startswith("-"):
            continue  # -s and friends change nothing we check
        else:
            url = arg
    assert url is not None, argv
    parts = urlsplit(url if "://" in url else "http://" + url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    status, _, body = node.http.call(method, path, raw=data, headers=headers)
    return status, body


@pytest.fixture
def node(tmp_path: Path) -> Any:
    proc = NodeProcess(tmp_path / "data", **NODE_ENV)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop_if_running()


def test_every_api_reference_example_gets_its_documented_status(node: NodeProcess) -> None:
    examples = api_examples((ROOT / "docs" / "api-reference.md").read_text())
    assert len(examples) >= 15
    for ex in examples:
        status, _, body = node.http.call(ex.method, ex.path, raw=ex.body, headers=ex.headers)
        where = f"docs/api-reference.md:{ex.line} {ex.method} {ex.path}"
        assert status == ex.status, (where, status, body)
        differences = key_differences(ex.documented, body)
        assert not differences, (where, differences)


@pytest.mark.parametrize("doc", ["README.md", "docs/README.md", "docs/webhooks.md"])
def test_every_curl_command_in_the_docs_works(node: NodeProcess, doc: str) -> None:
    commands = curl_commands((ROOT / doc).read_text())
    assert commands, f"{doc} has no curl commands"
    for argv in commands:
        status, body = run_curl(node, argv)
        assert 200 <= status < 300, (doc, " ".join(argv), status, body)
