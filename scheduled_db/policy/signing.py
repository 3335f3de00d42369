"""Signed webhooks: how a receiver knows a delivery came from this cluster.

With a signing secret configured, every delivery carries::

    X-Scheduled-DB-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">

The timestamp is inside the MAC, so a receiver that also rejects stale timestamps
(:func:`verify`, five minutes by default) cannot be fed a recorded delivery later.
Every attempt is signed afresh (a new ``t``); the body is the exact bytes sent.

A job may instead name one of the secrets in ``webhooks.signing_secrets``
(``signing_secret_ref``), so that receivers owned by different teams each hold
only their own secret.  The API shows the name, never a secret.

``webhooks.signature_scheme: standard`` signs as the Standard Webhooks
specification says instead, for receivers that verify with one of its libraries::

    webhook-id: <the idempotency key: the same for every attempt of an occurrence>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">

Its keys are bytes: a secret written ``whsec_<base64>`` (the specification's form) is
that base64 decoded; any other secret is its own UTF-8 bytes, which a receiver's
library takes as ``"whsec_" + base64(secret)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

HEADER = "X-Scheduled-DB-Signature"
TOLERANCE_S = 300


class Scheme(Enum):
    """How deliveries are signed (``webhooks.signature_scheme``)."""

    SCHEDULED_DB = "scheduled-db"
    STANDARD = "standard"


STANDARD_PREFIX = b"whsec_"


def parse_scheme(value: object) -> Scheme:
    word = value.strip().lower() if isinstance(value, str) else ""
    try:
        return Scheme(word)
    except ValueError:
        raise ValueError("must be one of: scheduled-db, standard") from None


def standard_key(secret: bytes) -> bytes:
    """The HMAC key a secret stands for under the Standard Webhooks scheme;
    ValueError for a ``whsec_`` secret that is not base64."""
    if not secret.startswith(STANDARD_PREFIX):
        return secret
    try:
        key = base64.b64decode(secret[len(STANDARD_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a whsec_ secret must be base64 after its prefix") from None
    if len(key) < 16:
        raise ValueError("a whsec_ secret must hold at least 16 bytes")
    return key


def signature_headers(
    scheme: Scheme, secret: bytes, message_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    """The headers that sign ``body`` sent at ``timestamp_s`` under ``scheme``;
    ``message_id`` is the delivery's idempotency key."""
    if scheme is Scheme.STANDARD:
        signed = f"{message_id}.{timestamp_s}.".encode() + body
        mac = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp_s),
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        }
    return {HEADER: sign(secret, timestamp_s, body)}


def sign(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp_s``."""
    mac = hmac.new(secret, str(timestamp_s).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp_s},v1={mac.hexdigest()}"


def verify(
    secret: bytes, header: str, body: bytes, now_s: int, tolerance_s: int = TOLERANCE_S
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp_s = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp_s) > tolerance_s:
        return False
    expected = sign(secret, timestamp_s, body).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


# --- named secrets: a job may name the secret its deliveries are signed with ----------

SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
NAMED_FORMAT = "name:secret"
MIN_SECRET_CHARS = 16


def parse_named_secrets(value: object) -> Mapping[str, str]:
    """``webhooks.signing_secrets``: a YAML mapping of name to secret, or the env
    form ``name:secret,name2:secret2``.  Errors never show a secret."""
    if value is None:
        pairs: list[tuple[object, object]] = []
    elif isinstance(value, str):
        items = [i.strip() for i in value.split(",") if i.strip()]
        pairs = []
        for n, item in enumerate(items, 1):
            head, sep, tail = item.partition(":")
            if not sep:
                raise ValueError(f'secret {n}: must be written "{NAMED_FORMAT}"')
            pairs.append((head.strip(), tail.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ValueError(f'must be a mapping of name to secret or a "{NAMED_FORMAT},..." string')
    secrets: dict[str, str] = {}
    for n, (name, secret) in enumerate(pairs, 1):
        if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
            raise ValueError(f"secret {n}: name must be 1-64 letters, digits, '.', '_' or '-'")
        if not isinstance(secret, str) or len(secret.strip()) < MIN_SECRET_CHARS:
            raise ValueError(f'secret "{name}": must be at least {MIN_SECRET_CHARS} characters')
        if name in secrets:
            raise ValueError(f'duplicate secret name "{name}"')
        secrets[name] = secret.strip()
    return MappingProxyType(secrets)
