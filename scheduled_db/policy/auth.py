"""API tokens: who may read, write, or change the membership.

The config holds only each token's SHA-256 (hex), never the token: a leaked
config file or a ``--help`` listing gives nobody access.  A request presents
``Authorization: Bearer <token>``; the node hashes it and compares the digest
with *every* configured one in constant time (:func:`hmac.compare_digest`, no
early exit), so the answer time says nothing about which digest came close.

Roles are ordered: ``admin`` may do what ``write`` may, which may do what
``read`` may.  YAML::

    api:
      tokens:
        - {name: ci, token_sha256: "<64 hex digits>", role: write}

As an env var (``API_TOKENS``) or a flag: ``name:sha256:role,name:sha256:role``.
Make a digest with ``printf %s "$TOKEN" | sha256sum``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TOKENS_FORMAT = "name:sha256:role"


class Role(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class ApiToken:
    name: str
    sha256: str = ""  # hex digest of the token; kept out of reprs by the caller
    role: Role = Role.READ

    def __repr__(self) -> str:  # the digest is no secret, but there is no need to show it
        return f"ApiToken({self.name!r}, role={self.role.label})"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find_token(tokens: Sequence[ApiToken], presented: str) -> ApiToken | None:
    """The configured token ``presented`` is, in time independent of which (if any)."""
    digest = token_digest(presented).encode()
    found = None
    for token in tokens:
        if hmac.compare_digest(digest, token.sha256.encode()):
            found = token
    return found


def parse_tokens(value: object) -> tuple[ApiToken, ...]:
    """A YAML list of {name, token_sha256, role}, or the ``API_TOKENS`` string."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = [i.strip() for i in value.split(",") if i.strip()]
        tokens = [_from_string(n, item) for n, item in enumerate(items, 1)]
    elif isinstance(value, Sequence):
        tokens = [_from_mapping(n, entry) for n, entry in enumerate(value, 1)]
    else:
        raise ValueError(f'must be a list of tokens or a "{TOKENS_FORMAT},..." string')
    names = [t.name for t in tokens]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f'duplicate token name "{name}"')
    return tuple(tokens)


def _from_mapping(index: int, entry: object) -> ApiToken:
    if not isinstance(entry, Mapping):
        raise ValueError(f"token {index}: must be a mapping with name, token_sha256, role")
    fields = ("name", "token_sha256", "role")
    for name in entry:
        if name not in fields:
            raise ValueError(f'token {index}: unknown key "{name}"')
    for name in fields:
        if name not in entry:
            raise ValueError(f"token {index}: missing {name}")
    return _token(index, entry["name"], entry["token_sha256"], entry["role"])


def _from_string(index: int, item: str) -> ApiToken:
    parts = item.split(":")
    if len(parts) != 3:
        raise ValueError(f'token {index}: must be written "{TOKENS_FORMAT}"')
    return _token(index, *(p.strip() for p in parts))


def _token(index: int, name: object, digest: object, role: object) -> ApiToken:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"token {index}: name must be 1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ValueError(f"token {index}: token_sha256 must be 64 lowercase hex digits")
    roles = {r.label: r for r in Role}
    if role not in roles:
        raise ValueError(f"token {index}: role must be one of {', '.join(roles)}")
    return ApiToken(name, digest, roles[str(role)])
