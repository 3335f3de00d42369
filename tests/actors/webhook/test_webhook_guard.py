"""The SSRF guard at job creation (actors/webhook/guard.py), through the real aiohttp
app: IP literals, localhost names, names that resolve inside (a resolver table,
never real DNS), the two config keys; and the guard's resolver use on its own."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from actors.webhook.guard import WebhookGuard
from scheduled_db.errors import ValidationError
from scheduled_db.policy.ssrf import DENY, AddressPolicy
from tests.actors.http_harness import START_MS, Api, api_test
from tests.actors.raw_http_server import bounded

pytestmark = pytest.mark.timeout(30)


def job(url: str) -> dict[str, Any]:
    return {"type": "unico", "timestamp": START_MS // 1000 + 3600, "webhook_url": url}


REFUSED_LITERALS = [
    ("http://127.0.0.1:8080/hook", "points to a loopback address"),
    ("http://127.9.9.9/hook", "points to a loopback address"),
    ("http://[::1]:8080/hook", "points to a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "points to a loopback address"),
    ("http://[0:0:0:0:0:ffff:7f00:1]/hook", "points to a loopback address"),
    ("http://[64:ff9b::7f00:1]/hook", "points to a loopback address"),
    ("http://[2002:a9fe:a9fe::1]/hook", "points to a link-local address"),
    ("http://169.254.169.254/latest/meta-data/", "points to a link-local address"),
    ("http://[::ffff:169.254.169.254]/latest/", "points to a link-local address"),
    ("http://[fe80::1%25eth0]/hook", "points to a link-local address"),
    ("http://10.0.0.1/hook", "points to a private address"),
    ("https://172.16.5.4/hook", "points to a private address"),
    ("https://192.168.0.10:8443/hook", "points to a private address"),
    ("http://100.64.1.1/hook", "points to a private address"),
    ("http://[fd00::1]/hook", "points to a private address"),
    ("http://0.0.0.0:8080/hook", "points to an unspecified address"),
    ("http://[::]/hook", "points to an unspecified address"),
    ("http://224.0.0.1/hook", "points to a multicast address"),
    ("http://[ff02::1]/hook", "points to a multicast address"),
    ("http://localhost:8080/hook", "points to a loopback address"),
    ("http://LocalHost./hook", "points to a loopback address"),
    ("http://api.localhost/hook", "points to a loopback address"),
]
KEYS_HINT = "; webhooks there are refused unless webhooks.allow_networks or "


@api_test()
async def test_literals_and_localhost_names_inside_are_refused_with_400(api: Api) -> None:
    for url, why in REFUSED_LITERALS:
        reply = await api.call("POST", "/jobs", job(url))
        assert reply.status == 400, (url, reply)
        assert reply.body["code"] == "validation_error" and reply.body["field"] == "webhook_url"
        assert reply.body["error"].startswith(f"webhook_url: {why}{KEYS_HINT}"), url
        assert str(urlsplit(url).hostname) not in json.dumps(reply.body), url
    listed = await api.call("GET", "/jobs")
    assert listed.body["total"] == 0


@api_test()
async def test_callback_urls_are_guarded_on_create_patch_and_batch(api: Api) -> None:
    """on_failure.url and on_success.url go where deliveries go: the same guard, the
    error naming the field."""
    inside = "http://169.254.169.254/latest/meta-data/"
    public = "https://hooks.example.com/done"
    for name in ("on_failure", "on_success"):
        reply = await api.call("POST", "/jobs", {**job(public), name: {"url": inside}})
        assert reply.status == 400 and reply.body["field"] == f"{name}.url", reply
        batch = await api.call(
            "POST", "/jobs/batch", {"jobs": [{**job(public), name: {"url": inside}}]}
        )
        (item,) = batch.body["results"]
        assert item["status"] == 400 and item["field"] == f"{name}.url", item
    made = await api.call(
        "POST", "/jobs", {**job(public), "id": "cb", "on_success": {"url": public}}
    )
    assert made.status == 200, made
    patched = await api.call("PATCH", "/jobs/cb", {"on_failure": {"url": inside}})
    assert patched.status == 400 and patched.body["field"] == "on_failure.url", patched


@api_test()
async def test_numeric_host_forms_are_invalid_urls(api: Api) -> None:
    for url in ("http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/"):
        reply = await api.call("POST", "/jobs", job(url))
        assert reply.status == 400, url
        assert reply.body["field"] == "webhook_url"
        assert "a.b.c.d" in reply.body["error"]


DNS = {
    "inside.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.215.14", "127.0.0.1"],  # one bad answer is enough
    "v6.test": ["2606:4700:4700::1111", "fd00::5"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "zone.test": ["fe80::1%eth0"],
    "public.test": ["93.184.215.14", "2606:4700:4700::1111"],
}


@api_test(dns=DNS)
async def test_a_name_resolving_inside_is_refused_without_naming_the_address(api: Api) -> None:
    for host, word in [
        ("inside.test", "a private"),
        ("metadata.test", "a link-local"),
        ("mixed.test", "a loopback"),
        ("v6.test", "a private"),
        ("mapped.test", "a private"),
        ("zone.test", "a link-local"),
    ]:
        reply = await api.call("POST", "/jobs", job(f"https://{host}/hook"))
        assert reply.status == 400, (host, reply)
        assert reply.body["error"].startswith(f"webhook_url: resolves to {word} address")
        for address in DNS[host]:
            assert address not in json.dumps(reply.body), (host, address)


@api_test(dns=DNS)
async def test_public_names_literals_and_names_that_do_not_resolve_yet_are_accepted(
    api: Api,
) -> None:
    for url in (
        "https://public.test/hook",
        "https://not-deployed-yet.test/hook",  # delivery checks it once it resolves
        "http://93.184.215.14:8080/hook",
        "https://[2606:4700:4700::1111]/hook",
        "http://[::ffff:93.184.215.14]/hook",
    ):
        reply = await api.call("POST", "/jobs", job(url))
        assert reply.status == 200, (url, reply)
        assert reply.body["webhook_url"] == url


@api_test(config={"webhooks.allow_networks": "10.1.0.0/16,127.0.0.1/32"}, dns=DNS)
async def test_allow_networks_opens_its_networks_and_nothing_else(api: Api) -> None:
    accepted = [
        "https://inside.test/hook",  # 10.1.2.3
        "http://127.0.0.1:8080/hook",
        "http://[::ffff:127.0.0.1]:8080/hook",  # the same IPv4 address
    ]
    for url in accepted:
        assert (await api.call("POST", "/jobs", job(url))).status == 200, url
    refused = [
        "http://127.0.0.2/hook",
        "http://10.2.0.1/hook",
        "http://localhost/hook",  # ::1 as well as 127.0.0.1, and ::1 is not allowed
        "https://metadata.test/hook",
    ]
    for url in refused:
        assert (await api.call("POST", "/jobs", job(url))).status == 400, url


@api_test(config={"webhooks.allow_private": True})
async def test_allow_private_admits_every_address(api: Api) -> None:
    for url, _ in REFUSED_LITERALS:
        assert (await api.call("POST", "/jobs", job(url))).status == 200, url


class CountingResolver:
    """Answers ``answers`` (or fails, or never answers) and counts the questions."""

    def __init__(self, answers: list[str] | None = None, hang: bool = False) -> None:
        self.answers = answers
        self.hang = hang
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers


@bounded
async def test_the_guard_asks_the_resolver_once_per_host_and_not_at_all_when_open() -> None:
    resolver = CountingResolver(["10.0.0.1"])
    guard = WebhookGuard(DENY, resolver)
    for _ in range(3):
        with pytest.raises(ValidationError, match="resolves to a private address"):
            await guard.check("https://hooks.test/a")
    assert resolver.calls == 1  # a burst of creates asks once
    await guard.check(None)
    await guard.check("http://8.8.8.8/")  # a literal needs no resolver
    assert resolver.calls == 1
    open_guard = WebhookGuard(AddressPolicy(allow_private=True), resolver)
    await open_guard.check("https://other.test/")
    await open_guard.check("http://127.0.0.1/")
    assert resolver.calls == 1


@bounded
async def test_a_resolver_that_fails_or_hangs_does_not_hold_a_create() -> None:
    failing = CountingResolver(None)
    await WebhookGuard(DENY, failing).check("https://gone.test/")
    hanging = CountingResolver(hang=True)
    started = time.monotonic()
    await WebhookGuard(DENY, hanging, timeout_s=0.05).check("https://slow.test/")
    assert time.monotonic() - started < 2.0
    assert (failing.calls, hanging.calls) == (1, 1)
