"""The command line's errors and its HTTP transport to a node's REST API.

Only the standard library (``urllib.request``): the client commands must work
wherever the package is installed, with no dependency beyond the server's own.
Every failure to talk to the server becomes an ``Unreachable`` whose ``str()`` is
one line; an HTTP error status is not a failure here but a ``Response`` for the
caller to report.

An ``https://`` node's certificate is checked against the system's CAs, or only
against the CA file given with ``--ca`` / ``$SCHEDULED_DB_CA`` (a cluster's own CA,
see ``api.tls_cert`` in docs/deployment.md).
"""

from __future__ import annotations

import functools
import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_URL = "http://localhost:8080"
URL_ENV = "SCHEDULED_DB_URL"
TOKEN_ENV = "SCHEDULED_DB_TOKEN"  # an API token (api.tokens), sent as a bearer token
CA_ENV = "SCHEDULED_DB_CA"  # a PEM CA file that an https:// node's certificate must chain to
_USER_AGENT = "scheduled-db-cli"

# No proxy: the CLI talks to a node of the cluster, usually on this host or its
# network, and a desktop's HTTP_PROXY would otherwise swallow localhost requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CliError(Exception):
    """A problem the command line reports as one line on stderr, with exit code 2."""


class UsageError(CliError):
    """The command was used wrongly: a bad argument, an unreadable request body."""


class Unreachable(CliError):
    """The server could not be reached, or did not answer with HTTP."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"cannot reach {url}: {problem}")


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer, 2xx or not.  ``body`` is the decoded JSON, or ``None``."""

    status: int
    reason: str
    text: str
    body: object | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def base_url(given: str | None, environ: Mapping[str, str]) -> str:
    """The server's URL: ``--url``, else ``$SCHEDULED_DB_URL``, else the default.

    Raises ``UsageError`` unless it is an absolute http(s) URL.
    """
    url = (given or environ.get(URL_ENV, "").strip() or DEFAULT_URL).rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url must be an http:// or https:// URL (got {url!r})")
    return url


def request(
    base: str,
    method: str,
    path: str,
    *,
    timeout: float,
    query: Mapping[str, str] | None = None,
    body: object = None,
    token: str | None = None,
    ca: str | None = None,
) -> Response:
    """Send one request to ``base + path`` and return the answer, whatever its status.

    ``body``, unless ``None``, is sent as JSON; ``token``, if set, as a bearer token;
    ``ca``, if set, is the CA file an https:// server's certificate must chain to.
    Raises ``Unreachable`` when no HTTP answer arrives (refused, unknown host, timed
    out, connection dropped, a certificate that does not verify), ``UsageError``
    for a ``ca`` that cannot be read.
    """
    url = base + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = _OPENER if ca is None else _opener_trusting(ca)
    try:
        with opener.open(req, timeout=timeout) as answer:
            return _response(answer.status, answer.reason, answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return _response(error.code, str(error.reason), error.read())
    except urllib.error.URLError as error:
        raise Unreachable(base, _problem(error.reason, timeout)) from None
    except (OSError, http.client.HTTPException) as error:
        # Failures after the connection is made (a timeout reading the answer, a
        # dropped connection, garbage instead of HTTP) are not wrapped in URLError.
        raise Unreachable(base, _problem(error, timeout)) from None


@functools.lru_cache(maxsize=4)
def _opener_trusting(ca: str) -> urllib.request.OpenerDirector:
    """An opener like ``_OPENER`` whose https:// connections trust only ``ca``."""
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        problem = getattr(exc, "strerror", None) or "no PEM certificate in it"
        raise UsageError(f"--ca: cannot use {ca}: {problem}") from None
    https = urllib.request.HTTPSHandler(context=context)
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), https)


def _response(status: int, reason: str, raw: bytes) -> Response:
    text = raw.decode("utf-8", errors="replace")
    try:
        body: object | None = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    return Response(status, reason, text, body)


def _problem(reason: object, timeout: float) -> str:
    """A connection failure in a few words, as a person at a terminal wants it."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ssl.SSLCertVerificationError):
        why = reason.verify_message or "not trusted"
        return f"its TLS certificate did not verify ({why}); give its CA with --ca or ${CA_ENV}"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason}); is it an https:// node?"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, http.client.RemoteDisconnected):  # before its base class
        return "the server closed the connection without answering"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, http.client.HTTPException):
        return f"not an HTTP answer ({type(reason).__name__})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason).replace("\n", " ") or type(reason).__name__
