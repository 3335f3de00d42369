"""A lean HTTP/1.1 client for webhook POSTs: pooled keep-alive connections, llhttp parsing.

Why not aiohttp's ``ClientSession`` (which the node still uses to *serve*): a
webhook delivery is one small POST whose response we barely read, and the firing
benchmark showed aiohttp's client spending 85–110 µs of the node's one GIL on
each, which caps a node near 10,000 requests/s with nothing else to do.  This
client does only what a delivery needs and costs a fraction of that (see
docs/architecture.md, "Delivery", and docs/benchmarks-history.md).

What it does:

- ``http`` and ``https`` (certificates verified by the system's default context),
  no proxies, no redirects (the caller treats a 3xx as an error), no cookies;
- at most ``per_origin`` requests at a time to one origin (scheme, host, port):
  a burst opens that many connections to a receiver, not one per delivery slot
  (opening hundreds at once costs both sides more than it gains); a post past it
  waits, inside its caller's timeout.  The WebhookActor shares out requests per
  origin itself, before their timeouts start (:mod:`scheduled_db.firing.fair_queue`), and
  sets this to its own largest share, so there it is only a backstop;
  :meth:`WebhookClient.destination` names the origin a URL counts against;
- one pool of idle keep-alive connections per origin, reused
  most-recently-used first; a connection is reused only after a complete response
  the server did not ask to close; at most :data:`MAX_IDLE` idle in all;
- DNS answers cached for ``dns_ttl_s``; every address of a host is tried in turn,
  except those the SSRF policy refuses (:mod:`scheduled_db.policy.ssrf`): the check is made
  on the address about to be dialled, each time one is, so neither the cache nor a
  resolver that answers "public" first and "private" later (DNS rebinding) gets a
  refused address dialled;
- responses parsed by ``httptools`` (Node.js's llhttp): a malformed response is a
  :class:`ProtocolError`, never a crash; only the first ``read_limit`` bytes of a
  body are kept, and a connection whose body was cut short is closed, not reused;
- a request on a reused connection that the server had closed meanwhile (the
  keep-alive race) is sent again once on a fresh connection, before any byte of a
  response arrived: receivers dedupe on the idempotency key anyway.

Redirects are never followed, to any address: a 3xx is the answer, and the caller
reports it (so the redirect cap is 0).

Timeouts are the caller's (``asyncio.timeout`` around :meth:`WebhookClient.post`);
cancelling a post closes its connection.  Errors: :class:`InvalidURLError`,
:class:`DNSError`, :class:`AddressNotAllowedError`, :class:`TLSError`,
:class:`ProtocolError`, ``OSError`` (refused, reset, unreachable).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from actors.webhook.dns import CachedResolver, Resolver, system_resolve
from scheduled_db.jobs.validation import BODILESS_METHODS
from scheduled_db.policy.ssrf import DENY, AddressPolicy, dial_refusal_message

MAX_IDLE = 1024  # idle connections kept, over all origins
PER_ORIGIN = 128  # concurrent requests to one origin
IDLE_TTL_S = 15.0  # an idle connection older than this is closed, not reused
_UNSAFE_URL = re.compile(r"[^\x21-\x7e]")  # anything but printable ASCII without space


class InvalidURLError(ValueError):
    """The URL cannot be requested (scheme, host, or characters)."""


class DNSError(OSError):
    """The host name did not resolve."""


class AddressNotAllowedError(OSError):
    """Every address of the host is one the SSRF policy refuses; none was dialled."""


class TLSError(OSError):
    """The TLS handshake or the certificate check failed."""


class FencedError(Exception):
    """Not sent: the sender's check just before writing said no (its lease ended)."""


class ProtocolError(OSError):
    """The server closed early or answered something that is not HTTP/1.x."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    retry_after: str | None  # the only header a delivery looks at
    body: bytes  # at most read_limit bytes of it


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def parse_url(url: str) -> tuple[_Origin, str]:
    """``(origin, request target)``; raises InvalidURLError."""
    if _UNSAFE_URL.search(url):  # before urlsplit, which silently deletes tab, CR and LF
        raise InvalidURLError("the URL has spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidURLError("the URL must be http:// or https:// with a host")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return _Origin(parts.scheme, parts.hostname, port or default), target


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, carrying one request at a time."""

    def __init__(self, read_limit: int) -> None:
        self.read_limit = read_limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._reply: asyncio.Future[Response] | None = None
        self._got_bytes = False
        self._retry_after: str | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._keep_alive = False
        self._delimited = False
        self._complete = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self._reply is None or self._reply.done():
            self.close()  # bytes nobody asked for: the connection is not in a known state
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._reply is not None and not self._reply.done():
            if self._headers_done and not self._delimited and not self._keep_alive:
                self._finish()  # a body delimited by the end of the connection
            else:
                self._fail(ProtocolError("the server closed the connection before a response"))

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"retry-after":
            self._retry_after = value.decode("latin-1")
        elif lower in (b"content-length", b"transfer-encoding"):
            self._delimited = True  # the body ends by its length, not by the close

    def on_headers_complete(self) -> None:
        self._headers_done = True
        # Asked now: once a message completes the parser resets for the next one.
        self._keep_alive = bool(self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        room = self.read_limit - self._size
        if room > 0:
            self._body.append(body[:room])
        self._size += len(body)
        if self._size > self.read_limit:
            self._finish()  # enough read; the rest is not worth the time (or memory)
            self.close()

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._new_message()  # an interim response (103 Early Hints, ...): wait on
            return
        self._complete = True
        self._finish()

    # -- one exchange --

    async def exchange(self, request: bytes) -> Response:
        assert self.transport is not None
        self._reply = asyncio.get_running_loop().create_future()
        self._got_bytes = self._complete = False
        self._new_message()
        self.transport.write(request)
        try:
            return await self._reply
        finally:
            self._reply = None

    def _new_message(self) -> None:
        self._headers_done = self._keep_alive = self._delimited = False
        self._retry_after, self._body, self._size = None, [], 0

    @property
    def reusable(self) -> bool:
        return self._complete and not self.closed and self._keep_alive

    @property
    def stale(self) -> bool:
        """Closed before any byte of the response came: the keep-alive race."""
        return self.closed and not self._got_bytes

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _finish(self) -> None:
        if self._reply is not None and not self._reply.done():
            status = self._parser.get_status_code()
            self._reply.set_result(Response(status, self._retry_after, b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(exc)
        self.close()


class WebhookClient:
    """POSTs over pooled connections; create and use it on one event loop.

    ``policy`` says which addresses may be dialled (the default: public ones only);
    ``resolve`` is the resolver behind the DNS cache (tests pass their own)."""

    def __init__(
        self,
        read_limit: int = 64 * 1024,
        dns_ttl_s: float = 30.0,
        per_origin: int = PER_ORIGIN,
        *,
        policy: AddressPolicy = DENY,
        resolve: Resolver = system_resolve,
    ) -> None:
        self.read_limit = read_limit
        self.per_origin = per_origin
        self.policy = policy
        self._slots: dict[_Origin, asyncio.Semaphore] = {}
        self._users: dict[_Origin, int] = {}  # posts holding or awaiting each slot
        self._urls: dict[str, tuple[_Origin, str]] = {}  # parse_url's answers
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._warming: set[_Origin] = set()  # origins a warm() is opening connections to
        self._dns = CachedResolver(resolve, dns_ttl_s)
        self._tls: ssl.SSLContext | None = None

    def destination(self, url: str) -> str:
        """The origin a post to ``url`` goes to, as ``scheme://host:port``; ``url``
        itself if it cannot be posted to (such a post fails at once)."""
        try:
            origin = self._parse(url)[0]
        except InvalidURLError:
            return url
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        return f"{origin.scheme}://{host}:{origin.port}"

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        may_send: Callable[[], bool] | None = None,
        method: str = "POST",
    ) -> Response:
        """Send ``body`` with ``method`` (POST unless told); ``may_send`` is asked just
        before the request's bytes are written (after any connecting), and
        FencedError raised if it says no.  A GET or DELETE with no body goes without
        a Content-Length."""
        origin, target = self._parse(url)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        for name, value in headers.items():
            if not _header_safe(name) or not _header_safe(value):
                raise InvalidURLError(f"header {name!r} has a line break or control character")
            lines.append(f"{name}: {value}")
        if body or method not in BODILESS_METHODS:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        request = "\r\n".join(lines).encode("latin-1") + body
        slot = self._slot(origin)
        self._users[origin] = self._users.get(origin, 0) + 1
        try:
            async with slot:
                return await self._send(origin, request, may_send)
        finally:
            left = self._users[origin] - 1
            if left:
                self._users[origin] = left
            else:
                del self._users[origin]

    async def warm(self, url: str, n: int) -> int:
        """Open connections to ``url``'s origin until ``n`` are there, idle or in use
        (posts to it are due soon: their first requests then need no handshake), within
        :data:`MAX_IDLE`; how many were opened.  Dialled like any connection (the SSRF
        policy decides).  Raises nothing: whatever failed here fails the posts too, and
        they report it."""
        try:
            origin = self._parse(url)[0]
        except InvalidURLError:
            return 0
        have = len(self._idle.get(origin, ())) + self._users.get(origin, 0)
        want = min(n - have, MAX_IDLE - self._idle_count)
        if want <= 0 or origin in self._warming:
            return 0
        self._warming.add(origin)
        try:
            opened = await asyncio.gather(
                *(self._connect(origin) for _ in range(want)), return_exceptions=True
            )
        finally:
            self._warming.discard(origin)
        conns = [conn for conn in opened if isinstance(conn, _Connection)]
        for conn in conns:
            self._park(origin, conn)
        return len(conns)

    def _parse(self, url: str) -> tuple[_Origin, str]:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= 4096:  # bounded: a stream of one-off URLs cannot grow it
                self._urls.clear()
            parsed = self._urls[url] = parse_url(url)
        return parsed

    def _slot(self, origin: _Origin) -> asyncio.Semaphore:
        slot = self._slots.get(origin)
        if slot is None:
            if len(self._slots) >= 4096:  # bounded: forget the origins nobody is using
                self._slots = {o: s for o, s in self._slots.items() if o in self._users}
            slot = self._slots[origin] = asyncio.Semaphore(self.per_origin)
        return slot

    async def _send(
        self, origin: _Origin, request: bytes, may_send: Callable[[], bool] | None
    ) -> Response:
        conn = self._take_idle(origin)
        if conn is not None:
            try:
                return await self._use(origin, conn, request, may_send)
            except ProtocolError:
                if not conn.stale:
                    raise
        return await self._use(origin, await self._connect(origin), request, may_send)

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    async def _use(
        self,
        origin: _Origin,
        conn: _Connection,
        request: bytes,
        may_send: Callable[[], bool] | None,
    ) -> Response:
        if may_send is not None and not may_send():
            self._keep_idle(origin, conn)
            raise FencedError("not sent: this node's leader lease has ended")
        try:
            response = await conn.exchange(request)
        except BaseException:
            conn.close()  # cancelled, timed out or failed mid-exchange: never reuse it
            raise
        self._keep_idle(origin, conn)
        return response

    def _keep_idle(self, origin: _Origin, conn: _Connection) -> None:
        if conn.reusable:
            self._park(origin, conn)
        else:
            conn.close()

    def _park(self, origin: _Origin, conn: _Connection) -> None:
        """Keep ``conn`` in ``origin``'s idle pool, or close it if the pool is full."""
        if self._idle_count < MAX_IDLE:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
            self._idle_count += 1
        else:
            conn.close()

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        oldest_ok = time.monotonic() - IDLE_TTL_S
        while conns:
            conn = conns.pop()
            self._idle_count -= 1
            if not conn.closed and conn.idle_since >= oldest_ok:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.scheme == "https" else None
        last: OSError | None = None
        refused: str | None = None
        for host in await self._resolve(origin):
            # Checked here, on the address about to be dialled, not on the name.
            category = self.policy.refusal_of(host)
            if category is not None:
                refused = refused or category
                continue
            conn = _Connection(self.read_limit)
            try:
                await loop.create_connection(
                    _factory(conn),
                    host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
                return conn
            except ssl.SSLError as exc:  # includes certificate verification failures
                raise TLSError(f"TLS with {origin.host} failed: {exc}") from None
            except OSError as exc:
                last = exc
        if last is not None:
            raise last
        raise AddressNotAllowedError(dial_refusal_message(origin.host, refused))

    async def _resolve(self, origin: _Origin) -> list[str]:
        try:
            addresses = await self._dns(origin.host, origin.port)
        except socket.gaierror as exc:
            raise DNSError(f"cannot resolve {origin.host}: {exc.strerror}") from None
        if not addresses:
            raise DNSError(f"cannot resolve {origin.host}: no addresses")
        return addresses

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


def _factory(conn: _Connection) -> Callable[[], _Connection]:
    return lambda: conn


_UNSAFE_HEADER = re.compile(r"[^\t\x20-\x7e]")  # anything but printable ASCII and tab


def _header_safe(text: str) -> bool:
    return _UNSAFE_HEADER.search(text) is None
