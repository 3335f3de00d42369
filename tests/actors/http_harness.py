"""A real aiohttp server of the REST API on an ephemeral port, over a MemoryBackend.

``@api_test(config={...})`` turns ``async def test_x(api: Api)`` into a plain test
that runs it on a fresh event loop (``asyncio.run``) against a fresh server; no
pytest event-loop plugin is needed.  Every error response any test receives is
checked for the JSON error shape and for leaked internals.  No test reaches a real
DNS server: the SSRF guard resolves webhook hosts through a table the test gives
(``@api_test(dns={"hooks.test": ["10.0.0.7"]})``), where any other name does not resolve.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from actors.api.app import build_app
from actors.runtime.metrics import ApiMetrics
from actors.webhook.dns import Resolver
from actors.webhook.guard import WebhookGuard
from scheduled_db.config.loading import NodeConfig, load_config
from tests.actors.memory_backend import RAFT_ADDRESS, MemoryBackend

START_MS = 1_800_000_000_000  # 2027-01-15T08:00:00Z
FORBIDDEN_IN_ERRORS = (
    "Traceback",
    'File "',
    "/usr",
    "/root",
    "/work",
    "site-packages",
    ".py",
    "127.0.0.1",
    RAFT_ADDRESS.split(":")[0],
)

Scenario = Callable[["Api"], Awaitable[None]]


class FakeClock:
    """The injected clock: epoch milliseconds that only move when a test says so."""

    def __init__(self, now_ms: int = START_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def make_config(values: Mapping[str, object] | None = None) -> NodeConfig:
    """The defaults with ``values`` (dotted keys) applied, the API on an ephemeral port
    and the metrics listener off (``metrics_enabled=True`` then binds an ephemeral one)."""
    base = {"http.host": "127.0.0.1", "metrics.port": 0}
    config = load_config({**base, **(values or {})}, {}, None, "test")
    return replace(config, http=replace(config.http, port=0))


@dataclass(frozen=True)
class Reply:
    """One response, read whole."""

    status: int
    body: Any  # the decoded JSON, the bytes of a binary (vnd.) body, else the text
    headers: CIMultiDictProxy[str]
    raw: bytes = b""  # the body as it came

    @property
    def text(self) -> str:
        return self.raw.decode()


def check_error_body(status: int, raw: bytes, content_type: str) -> dict[str, Any]:
    """An error body is a JSON object with a one-line ``error`` and no internals."""
    assert content_type == "application/json", (status, content_type, raw[:200])
    body = json.loads(raw)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert body["error"] and "\n" not in body["error"]
    if body.get("code") == "unhealthy":
        # /health's 503 is the health document, as its 200 (the leader's public HTTP
        # address included), not an error about the request.
        return body
    text = raw.decode()
    for fragment in FORBIDDEN_IN_ERRORS:
        assert fragment not in text, (fragment, text)
    return body


@dataclass
class Api:
    """What a scenario drives: the client of a fresh server, and the node behind it."""

    client: TestClient[Any, Any]
    backend: MemoryBackend
    clock: FakeClock
    metrics: ApiMetrics

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request; ``body`` is sent as JSON, ``data`` as-is."""
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if body is not None:
            kwargs["json"] = body
        elif data is not None:
            kwargs["data"] = data
        async with self.client.request(method, path, **kwargs) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                decoded: Any = check_error_body(resp.status, raw, resp.content_type)
            elif resp.content_type == "application/json":
                decoded = json.loads(raw)
            elif resp.content_type.startswith("application/vnd."):
                decoded = raw  # a binary body (a backup): as it came
            else:
                decoded = raw.decode()
            return Reply(resp.status, decoded, resp.headers, raw)

    async def create(self, **fields: Any) -> dict[str, Any]:
        """POST a one-time job (defaults filled in) and return the stored job."""
        body = {"type": "unico", "timestamp": START_MS // 1000 + 3600, **fields}
        reply = await self.call("POST", "/jobs", body)
        assert reply.status == 200, reply
        result: dict[str, Any] = reply.body
        return result


def table_resolver(answers: Mapping[str, Sequence[str]]) -> Resolver:
    """A resolver answering from ``answers`` (host -> addresses); other names fail."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(answers[host])

    return resolve


async def _drive(
    scenario: Scenario, config_values: Mapping[str, object], dns: Mapping[str, Sequence[str]]
) -> None:
    backend, clock, metrics = MemoryBackend(), FakeClock(), ApiMetrics()
    config = make_config(config_values)
    guard = WebhookGuard(config.webhooks.address_policy, table_resolver(dns))
    app = build_app(backend, config, metrics, clock, guard=guard)
    async with TestClient(TestServer(app)) as client:
        await scenario(Api(client, backend, clock, metrics))


def api_test(
    config: Mapping[str, object] | None = None,
    dns: Mapping[str, Sequence[str]] | None = None,
) -> Callable[[Scenario], Callable[[], None]]:
    """Run an async scenario as a plain pytest test against a fresh server; ``dns``
    is what the SSRF guard's resolver knows (nothing by default)."""

    def wrap(scenario: Scenario) -> Callable[[], None]:
        def test() -> None:
            asyncio.run(_drive(scenario, config or {}, dns or {}))

        # Not functools.wraps: pytest would read the scenario's ``api`` parameter
        # through __wrapped__ and look for a fixture of that name.
        test.__name__ = getattr(scenario, "__name__", "test")
        test.__doc__ = scenario.__doc__
        return test

    return wrap
