"""The receiver code in docs/webhooks.md verifies what the node really sends."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from scheduled_db.policy import signing

DOC = Path(__file__).parents[1] / "docs" / "webhooks.md"


def receiver_check() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (code,) = [b for b in blocks if "def verified(" in b]  # the scheduled-db scheme's
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the documented code, as written
    return namespace["verified"]


def test_the_documented_receiver_accepts_signed_deliveries_and_refuses_the_rest() -> None:
    verified = receiver_check()
    secret, body = b"shared-signing-secret", b'{"job_id":"j","attempt":1}'
    now = int(time.time())
    header = signing.sign(secret, now, body)
    assert verified(secret, header, body)
    assert not verified(b"other-signing-secret!", header, body)
    assert not verified(secret, header, body.replace(b"1", b"2"))
    assert not verified(secret, signing.sign(secret, now - 3600, body), body)  # replayed
    assert not verified(secret, "v1=" + header.split("v1=")[1], body)  # no timestamp
    assert not verified(secret, "t=abc,v1=00", body)
