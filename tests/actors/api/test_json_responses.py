"""Every JSON answer is compact, written by the one encoder (actors/api/responses.py).

The original's scripts read answers with ``grep -o '"role":"[^"]*"'`` and the like,
which a space after a colon defeats; so no answer may be spaced, errors included.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from actors.api.responses import json_bytes
from scheduled_db.jobs.model import JobStatus
from tests.actors.http_harness import START_MS, Api, api_test

ROOT = Path(__file__).resolve().parents[3]
NOW_S = START_MS // 1000
# Where json.dumps may appear in actors/, and why it is not an answer's encoder.
DUMPS_ALLOWED = {
    "actors/api/responses.py": "the encoder itself",
    "actors/webhook/attempt.py": "the webhook's body, compact too (a request, not an answer)",
    "actors/runtime/logs.py": "JSON log lines",
    "actors/raft/identify.py": "a node's REST address in its probe answer (Raft port, not HTTP)",
}


def test_no_code_in_actors_writes_json_answers_but_the_one_encoder() -> None:
    users = {}
    for path in sorted((ROOT / "actors").rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        assert re.search(r"\bweb\.json_response\(", text) is None, name
        if re.search(r"\bjson\.dumps\(", text):
            users[name] = text
    assert set(users) == set(DUMPS_ALLOWED)
    assert 'separators=(",", ":")' in users["actors/webhook/attempt.py"]


def test_the_encoder_writes_compact_utf8_json_with_a_newline() -> None:
    assert json_bytes({"a": [1, 2], "b": "x: y, z", "ñ": None}) == (
        '{"a":[1,2],"b":"x: y, z","ñ":null}\n'.encode()
    )


def test_the_encoder_writes_what_the_standard_library_would_and_falls_back_to_it() -> None:
    def stdlib(value: object) -> bytes:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return (text + "\n").encode()

    answer = {"id": "ñ-1", "n": [0, -1, 2**63 - 1, 0.5, True, None], "s": '\u2028\x00"\\/'}
    assert json_bytes(answer) == stdlib(answer)
    # What orjson refuses, the standard library writes: a payload's integer of more
    # than 64 bits.
    assert json_bytes({"big": 2**70}) == stdlib({"big": 2**70})
    # A float's exponent is written without "+" or a leading zero: the same number.
    assert json_bytes([1e16, 1e-7]) == b"[1e16,1e-7]\n"
    assert json.loads(json_bytes([1e16, 1e-7])) == [1e16, 1e-7]


def _compact(raw: bytes) -> bool:
    return raw == json_bytes(json.loads(raw))


@api_test({"http.max_body": "2KiB"})
async def test_every_kind_of_answer_is_compact(api: Api) -> None:
    await api.create(id="a", payload={"k": "v: w"})
    api.backend.run_attempt("a", JobStatus.FAILED, START_MS + 1_000, final=False)
    requests: list[tuple[str, str, object, bytes | None, dict[str, str]]] = [
        ("GET", "/jobs/a", None, None, {}),
        ("GET", "/jobs/a/status", None, None, {}),
        ("GET", "/jobs/a/executions", None, None, {}),
        ("GET", "/jobs?status=failed", None, None, {}),
        ("POST", "/jobs", {"type": "unico", "timestamp": NOW_S + 60}, None, {}),
        ("POST", "/jobs/a/cancel", {"reason": "done"}, None, {}),
        ("GET", "/health", None, None, {}),
        ("GET", "/livez", None, None, {}),
        ("GET", "/ready", None, None, {}),
        ("GET", "/debug/cluster", None, None, {}),
        ("GET", "/debug/digest", None, None, {}),
        ("GET", "/openapi.json", None, None, {}),
        # errors: a named error, a validation error, the framework's 404 and 405, 413
        ("GET", "/jobs/none", None, None, {}),
        ("POST", "/jobs", {"type": "unico"}, None, {}),
        ("GET", "/nowhere", None, None, {}),
        ("PUT", "/health", None, None, {}),
        ("POST", "/jobs", None, b"x" * 4096, {"Content-Type": "application/json"}),
    ]
    for method, path, body, data, headers in requests:
        reply = await api.call(method, path, body, data=data, headers=headers)
        assert reply.headers["Content-Type"].startswith("application/json"), (method, path)
        assert _compact(reply.raw), (method, path, reply.status, reply.raw[:200])
    api.backend.follow()
    unhealthy = await api.call("GET", "/health")
    assert unhealthy.status == 503 and _compact(unhealthy.raw)
