"""The SSRF guard at delivery, against real servers on loopback: the WebhookClient
never dials a refused address, DNS rebinding (public first, private second)
included; the WebhookActor reports a refusal as a non-retryable outcome; and
redirects are never followed.  (At creation: tests/actors/webhook/test_webhook_guard.py.)"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pykka
import pytest

from actors.webhook.actor import WebhookActor
from actors.webhook.attempt import classify_error
from actors.webhook.client import AddressNotAllowedError, WebhookClient
from actors.webhook.dns import Resolver, system_resolve
from actors.webhook.messages import Deliver, DeliveryOutcome
from scheduled_db.policy.ssrf import DENY, AddressPolicy
from tests.actors.http_harness import START_MS, table_resolver
from tests.actors.probe import Inbox
from tests.actors.raw_http_server import Peer, RawServer, answer_ok, bounded, response
from tests.actors.webhook_receiver import LOOPBACK_ALLOWED, Receiver

pytestmark = pytest.mark.timeout(30)

Ref = pykka.ActorRef[Any]
TIMEOUT_S = 10.0


def policy_allowing(*cidrs: str) -> AddressPolicy:
    return AddressPolicy(allow_networks=tuple(ipaddress.ip_network(c) for c in cidrs))


# --- at delivery: the client -----------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_client(
    policy: AddressPolicy, resolve: Resolver = system_resolve, dns_ttl_s: float = 30.0
) -> AsyncIterator[WebhookClient]:
    client = WebhookClient(dns_ttl_s=dns_ttl_s, policy=policy, resolve=resolve)
    try:
        yield client
    finally:
        await client.close()


async def post(client: WebhookClient, url: str) -> tuple[int, bytes]:
    reply = await client.post(url, b"{}", {"Content-Type": "application/json"})
    return reply.status, reply.body


def closed_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@bounded
async def test_a_refused_literal_is_never_dialled() -> None:
    async with RawServer(answer_ok) as server, webhook_client(DENY) as client:
        with pytest.raises(AddressNotAllowedError) as caught:
            await post(client, server.url())
        with pytest.raises(AddressNotAllowedError, match="::ffff:127.0.0.1 is a loopback"):
            await post(client, server.url(host="::ffff:127.0.0.1"))
        # Nothing listens here: a dial would fail otherwise (connection refused).
        with pytest.raises(AddressNotAllowedError, match="::1 is a loopback address"):
            await post(client, f"http://[::1]:{closed_port('127.0.0.1')}/hook")
    assert server.peers == []
    assert str(caught.value) == (
        "address not allowed: 127.0.0.1 is a loopback address (see webhooks.allow_networks)"
    )
    error_type, retryable, message = classify_error(caught.value, 1000)
    assert (error_type, retryable) == ("connection_error", False)
    assert message.startswith("AddressNotAllowedError: address not allowed")


async def answer_and_close(peer: Peer) -> None:
    """200 with ``Connection: close``: every post needs a new connection, hence a dial."""
    if await peer.read_request() is not None:
        await peer.send(response(headers=b"Connection: close\r\n"))


@contextlib.asynccontextmanager
async def twin_servers() -> AsyncIterator[tuple[RawServer, RawServer]]:
    """Servers on 127.0.0.2 and 127.0.0.1 at one port: a name whose answer moves from
    one to the other keeps the URL's port.  127.0.0.2 plays the public receiver."""
    for _ in range(20):
        async with contextlib.AsyncExitStack() as stack:
            public = await stack.enter_async_context(RawServer(answer_and_close, "127.0.0.2"))
            try:
                private = RawServer(answer_and_close, "127.0.0.1", port=public.port)
                await stack.enter_async_context(private)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue  # that port is taken on 127.0.0.1: another pair
            yield public, private
            return
    raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")


class Rebinding:
    """A resolver whose first answer is ``first`` and every later one ``later``."""

    def __init__(self, first: list[str], later: list[str]) -> None:
        self.first, self.later = first, later
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.first if self.calls == 1 else self.later


PUBLIC_STANDS_IN = policy_allowing("127.0.0.2/32")  # 127.0.0.1 stays refused


@bounded
async def test_dns_rebinding_public_then_private_is_refused_at_the_dial() -> None:
    resolver = Rebinding(["127.0.0.2"], ["127.0.0.1"])
    async with (
        twin_servers() as (public, private),
        webhook_client(PUBLIC_STANDS_IN, resolver, dns_ttl_s=0) as client,
    ):
        url = f"http://rebind.test:{public.port}/hook"
        assert await post(client, url) == (200, b"ok")
        with pytest.raises(AddressNotAllowedError) as caught:
            await post(client, url)
    assert resolver.calls == 2  # the second post did resolve again, and got 127.0.0.1
    assert len(public.requests) == 1
    assert private.peers == []  # never dialled
    assert str(caught.value) == (
        "address not allowed: rebind.test resolves only to loopback addresses "
        "(see webhooks.allow_networks)"
    )


@bounded
async def test_a_cached_answer_is_checked_again_at_every_dial() -> None:
    resolver = Rebinding(["127.0.0.1"], ["127.0.0.2"])
    async with RawServer(answer_and_close) as server, webhook_client(DENY, resolver) as client:
        for _ in range(2):
            with pytest.raises(AddressNotAllowedError):
                await post(client, f"http://cached.test:{server.port}/hook")
    assert resolver.calls == 1 and server.peers == []


@bounded
async def test_only_the_allowed_answers_of_a_mixed_name_are_dialled() -> None:
    resolver = Rebinding(["127.0.0.1", "127.0.0.2"], ["127.0.0.1", "127.0.0.2"])
    async with (
        twin_servers() as (public, private),
        webhook_client(PUBLIC_STANDS_IN, resolver, dns_ttl_s=0) as client,
    ):
        for _ in range(3):
            assert await post(client, f"http://mixed.test:{public.port}/hook") == (200, b"ok")
    assert len(public.requests) == 3 and private.peers == []


# --- at delivery: the actor --------------------------------------------------------------


@contextlib.contextmanager
def webhook_actor(**kwargs: Any) -> Iterator[Ref]:
    ref = WebhookActor.start("n1", **kwargs)
    try:
        yield ref
    finally:
        ref.stop(timeout=TIMEOUT_S)


def deliver(url: str, receiver: Ref, job_id: str = "job-1") -> Deliver:
    return Deliver(
        job_id=job_id,
        job_type="unico",
        scheduled_at_ms=START_MS,
        attempt=1,
        term=3,
        url=url,
        payload=None,
        timeout_ms=5_000,
        reply=receiver.tell,
    )


def outcome_of(inbox: Inbox, job_id: str) -> DeliveryOutcome:
    return inbox.wait_for(DeliveryOutcome, lambda o: o.job_id == job_id, timeout=TIMEOUT_S)


def test_by_default_the_actor_refuses_a_loopback_receiver_and_does_not_retry(
    receiver: Receiver, probe: tuple[Ref, Inbox]
) -> None:
    ref, inbox = probe
    with webhook_actor() as webhook:  # the shipped default policy
        webhook.tell(deliver(receiver.url("/ok"), ref))
        outcome = outcome_of(inbox, "job-1")
    assert (outcome.ok, outcome.error_type, outcome.retryable) == (
        False,
        "connection_error",
        False,
    )
    assert outcome.http_status is None
    assert outcome.error_message == (
        "AddressNotAllowedError: address not allowed: 127.0.0.1 is a loopback address "
        "(see webhooks.allow_networks)"
    )
    assert receiver.requests == []


def test_a_name_the_actor_resolves_inside_is_refused_without_naming_the_address(
    receiver: Receiver, probe: tuple[Ref, Inbox]
) -> None:
    ref, inbox = probe
    resolve = table_resolver({"hooks.test": ["127.0.0.1"]})
    with webhook_actor(resolve=resolve) as webhook:
        webhook.tell(deliver(f"http://hooks.test:{receiver.port}/ok", ref))
        outcome = outcome_of(inbox, "job-1")
    assert outcome.error_type == "connection_error" and not outcome.retryable
    assert outcome.error_message is not None
    assert outcome.error_message.endswith("hooks.test resolves only to loopback addresses "
                                          "(see webhooks.allow_networks)")  # fmt: skip
    assert "127.0.0.1" not in outcome.error_message
    assert receiver.requests == []


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_no_redirect_is_followed_to_any_address(
    code: int, receiver: Receiver, probe: tuple[Ref, Inbox]
) -> None:
    """The redirect cap is 0: a 3xx is the outcome, whether its Location is allowed
    (this receiver's /ok) or not (the cloud metadata address)."""
    ref, inbox = probe
    targets = {
        "to-allowed": receiver.url("/ok"),
        "to-metadata": "http://169.254.169.254/latest/meta-data/",
    }
    with webhook_actor(policy=LOOPBACK_ALLOWED) as webhook:
        for job_id, target in targets.items():
            webhook.tell(deliver(receiver.url(f"/status/{code}?location={target}"), ref, job_id))
            outcome = outcome_of(inbox, job_id)
            assert (outcome.error_type, outcome.http_status, outcome.retryable) == (
                "http_error",
                code,
                False,
            )
            assert outcome.error_message == f"HTTP {code} (redirects are not followed)"
    assert len(receiver.received(f"/status/{code}")) == 2
    assert receiver.received("/ok") == []
    assert len(receiver.requests) == 2
