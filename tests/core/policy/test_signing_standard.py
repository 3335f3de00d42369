"""The Standard Webhooks scheme, checked by the specification's own Python library
(standardwebhooks from PyPI), not by our reading of it."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from scheduled_db.policy.signing import (
    HEADER,
    Scheme,
    parse_scheme,
    signature_headers,
    standard_key,
)

BODY = b'{"job_id":"invoice-42","attempt":1}'
KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


@pytest.mark.parametrize("configured", [WHSEC.encode(), b"a plain secret of some length"])
def test_the_reference_library_verifies_our_signature(configured: bytes) -> None:
    now = int(time.time())
    headers = signature_headers(Scheme.STANDARD, configured, "invoice-42:1800000000000", now, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "invoice-42:1800000000000"
    # The receiver's secret: the same whsec_ string, or a plain one in the library's form.
    receiver_secret = (
        configured.decode()
        if configured.startswith(b"whsec_")
        else "whsec_" + base64.b64encode(configured).decode()
    )
    assert Webhook(receiver_secret).verify(BODY, headers) == {"job_id": "invoice-42", "attempt": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver_secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another key of 16+ bytes").decode()).verify(
            BODY, headers
        )


def test_the_library_signs_what_we_sign() -> None:
    at = datetime.fromtimestamp(1_800_000_000, UTC)
    theirs = Webhook(WHSEC).sign("m1", at, BODY)
    ours = signature_headers(Scheme.STANDARD, WHSEC.encode(), "m1", 1_800_000_000, BODY)
    assert ours["webhook-signature"] == theirs


def test_the_default_scheme_is_unchanged() -> None:
    headers = signature_headers(Scheme.SCHEDULED_DB, KEY, "k", 1_800_000_000, BODY)
    assert list(headers) == [HEADER] and headers[HEADER].startswith("t=1800000000,v1=")


def test_scheme_names_and_bad_whsec_secrets() -> None:
    assert parse_scheme(" Standard ") is Scheme.STANDARD
    with pytest.raises(ValueError, match="scheduled-db, standard"):
        parse_scheme("svix")
    with pytest.raises(ValueError, match="base64"):
        standard_key(b"whsec_not base64!")
    with pytest.raises(ValueError, match="16 bytes"):
        standard_key(b"whsec_" + base64.b64encode(b"short"))
    assert standard_key(b"plain secret") == b"plain secret"


def test_the_documented_receiver_code_verifies_what_a_node_sends() -> None:
    """docs/webhooks.md's Standard Webhooks example, run as written against headers
    made with the secret it shows."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "webhooks.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "standardwebhooks" in b]
    (secret,) = re.findall(r'Webhook\("(whsec_[^"]+)"\)', code)
    body = b'{"job_id":"acct-7","attempt":1}'
    headers = signature_headers(
        Scheme.STANDARD, secret.encode(), "acct-7:1", int(time.time()), body
    )
    namespace = {"raw_body": body, "request_headers": headers}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # the documented code
    assert namespace["payload"] == {"job_id": "acct-7", "attempt": 1}
