"""The SSRF guard at job creation: a webhook_url that points inside is refused (400).

The policy is :mod:`scheduled_db.policy.ssrf`'s.  An IP literal (``127.0.0.1``,
``[::ffff:10.0.0.1]``) and a ``localhost`` name are judged as written; any other
host name is resolved, with a bounded wait, and refused if *any* of its addresses
is: a name that mixes public and private answers is either a mistake or a trap.

A name that does not resolve (yet), or not within :data:`RESOLVE_TIMEOUT_S`, is
accepted: a receiver may be deployed after its jobs, and a resolver's bad minute
must not refuse valid jobs.  Nothing is lost by it, since this check only gives
early feedback; the guard that counts runs at delivery, on the address actually
dialled (:mod:`actors.webhook.client`), so neither a name that resolves later nor one
that resolves differently later (DNS rebinding) reaches a refused address.

Error messages name the class of address, never an address a name resolved to:
that is the cluster's view of its network, not the client's to learn.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from actors.webhook.dns import CachedResolver, Resolver, system_resolve
from scheduled_db.errors import ValidationError
from scheduled_db.jobs.model import Callback, JobSpec
from scheduled_db.policy import ssrf

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT_S = 2.0  # a create waits at most this long for the resolver
CACHE_TTL_S = 30.0  # a burst of creates to one host asks the resolver once


class WebhookGuard:
    """Checks new jobs' webhook URLs against ``policy``; use it on one event loop."""

    def __init__(
        self,
        policy: ssrf.AddressPolicy,
        resolve: Resolver = system_resolve,
        timeout_s: float = RESOLVE_TIMEOUT_S,
    ) -> None:
        self._policy = policy
        self._resolve = CachedResolver(resolve, CACHE_TTL_S)
        self._timeout_s = timeout_s

    async def check_spec(self, spec: JobSpec, old: JobSpec | None = None) -> None:
        """Check every URL of ``spec`` a delivery or a notice goes to (those that
        changed from ``old``, when given), as :meth:`check` does."""
        before = {} if old is None else dict(spec_urls(old))
        for field, url in spec_urls(spec):
            if old is None or url != before[field]:
                await self.check(url, field)

    async def check(self, url: str | None, field: str = "webhook_url") -> None:
        """Raise ValidationError (``field``) if ``url`` points where webhooks may
        not go.  ``url`` has passed validation: an http(s) URL with a valid host."""
        if url is None or self._policy.open:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        literal = ssrf.host_addresses(host)
        if literal is not None:
            category = ssrf.first_refusal(self._policy, literal)
        else:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            answers = await self._answers(host, port)
            category = next(filter(None, map(self._policy.refusal_of, answers)), None)
        if category is not None:
            message = ssrf.creation_refusal_message(category, resolved=literal is None)
            raise ValidationError(field, message)

    async def _answers(self, host: str, port: int) -> list[str]:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._resolve(host, port)
        except (OSError, TimeoutError) as exc:  # gaierror is an OSError
            log.debug("webhook guard: %s did not resolve (%s); delivery will check", host, exc)
            return []


def spec_urls(spec: JobSpec) -> tuple[tuple[str, str | None], ...]:
    """Where the guard looks: each URL a job's deliveries and notices go to (None:
    unset), named by its field."""
    return (
        ("webhook_url", spec.webhook_url),
        ("on_failure.url", _url(spec.on_failure)),
        ("on_success.url", _url(spec.on_success)),
    )


def _url(callback: Callback | None) -> str | None:
    return None if callback is None else callback.url
