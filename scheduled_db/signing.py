"""Signed webhooks: how a receiver knows a delivery came from this cluster.

With a signing secret configured, every delivery carries::

    X-Scheduled-DB-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">

The timestamp is inside the MAC, so a receiver that also rejects stale timestamps
(:func:`verify`, five minutes by default) cannot be fed a recorded delivery later.
Every attempt is signed afresh (a new ``t``); the body is the exact bytes sent.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Scheduled-DB-Signature"
TOLERANCE_S = 300


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
