"""One HTTP exchange with a node, over the standard library's ``urllib.request``.

The only HTTP client in the project's Python side (the command line goes through
:class:`scheduled_db.client.Client`, which goes through here): only the standard
library, so the client works wherever the package is installed, with no
dependency beyond the server's own.  An HTTP error status is not a failure here
but a :class:`Response` for the caller to judge; every failure to get an HTTP
answer is an :class:`~scheduled_db.client.errors.Unreachable` whose ``str()`` is
one line, and ``refused`` says whether the request certainly never left (the
connection was refused), which makes a retry of any request safe.

An ``https://`` node's certificate is checked against the system's CAs, or only
against the CA file given (a cluster's own CA, see ``api.tls_cert`` in
docs/deployment.md).  No proxy is used: a client talks to a node of the cluster,
usually on this host or its network, and a desktop's ``HTTP_PROXY`` would
otherwise swallow requests to localhost.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from scheduled_db.client.errors import BadCaFile, Unreachable

Query = Sequence[tuple[str, str]]
Progress = Callable[[int, Mapping[str, str]], None]  # bytes so far, the answer's headers
COPY_BYTES = 1 << 16
# The connection broke after the request went out: the server may have acted on it.
_DROPPED = (ConnectionResetError, BrokenPipeError, http.client.HTTPException)


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer, 2xx or not.  ``body`` is the decoded JSON, or ``None`` when
    the answer is empty or not JSON (``text`` has it as it came)."""

    status: int
    reason: str
    text: str
    body: object | None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash; ``ValueError`` unless it is an absolute
    http(s) URL."""
    url = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the URL must be an http:// or https:// URL (got {url!r})")
    return url


def opener(ca: str | None) -> urllib.request.OpenerDirector:
    """An opener with no proxy whose https:// connections trust ``ca`` only, if given;
    :class:`BadCaFile` if it cannot be read as PEM certificates."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ca is not None:
        try:
            context = ssl.create_default_context(cafile=ca)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            problem = getattr(exc, "strerror", None) or "no PEM certificate in it"
            raise BadCaFile(ca, problem) from None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def exchange(
    use: urllib.request.OpenerDirector,
    base: str,
    method: str,
    path: str,
    *,
    timeout: float,
    headers: Mapping[str, str],
    query: Query = (),
    data: bytes | None = None,
    sink: BinaryIO | None = None,
    progress: Progress | None = None,
) -> Response:
    """Send one request to ``base + path`` and return the answer, whatever its status.

    With a ``sink``, a 2xx answer's body is copied into it as it arrives (calling
    ``progress`` after each piece) instead of being kept.  Raises
    :class:`Unreachable` when no whole HTTP answer arrives: refused, unknown host,
    timed out, connection dropped (midway through a body, too), a certificate
    that does not verify.
    """
    url = base + path + ("?" + urllib.parse.urlencode(list(query)) if query else "")
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    try:
        with use.open(req, timeout=timeout) as answer:
            if sink is not None:
                got = {k.lower(): v for k, v in answer.headers.items()}
                done = 0
                while piece := answer.read(COPY_BYTES):
                    sink.write(piece)
                    done += len(piece)
                    if progress is not None:
                        progress(done, got)
                return _response(answer.status, answer.reason, b"", answer.headers)
            return _response(answer.status, answer.reason, answer.read(), answer.headers)
    except urllib.error.HTTPError as error:
        with error:
            return _response(error.code, str(error.reason), error.read(), error.headers)
    except urllib.error.URLError as error:
        raise _unreachable(base, error.reason, timeout) from None
    except (OSError, http.client.HTTPException) as error:
        # Failures after the connection is made (a timeout reading the answer, a
        # dropped connection, garbage instead of HTTP) are not wrapped in URLError.
        raise _unreachable(base, error, timeout) from None


def _response(status: int, reason: str, raw: bytes, headers: object) -> Response:
    text = raw.decode("utf-8", errors="replace")
    try:
        body: object | None = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    items = headers.items() if isinstance(headers, http.client.HTTPMessage) else ()
    return Response(status, reason, text, body, {k.lower(): v for k, v in items})


def _unreachable(base: str, reason: object, timeout: float) -> Unreachable:
    refused = isinstance(reason, ConnectionRefusedError)
    dropped = isinstance(reason, _DROPPED)
    return Unreachable(base, _problem(reason, timeout), refused=refused, dropped=dropped)


def _problem(reason: object, timeout: float) -> str:
    """A connection failure in a few words, as a person at a terminal wants it."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ssl.SSLCertVerificationError):
        why = reason.verify_message or "not trusted"
        hint = "pass its CA (ca=, --ca or $SCHEDULED_DB_CA)"
        return f"its TLS certificate did not verify ({why}); {hint}"
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
