"""TLS for the node's listeners: the REST API (``api.tls_*``) and the Raft transport
(``raft.tls_*``), loaded once at start-up into ``ssl`` contexts.

The configuration only checks that the keys come in pairs (the core reads no
files); :func:`load_node_tls` reads the files.  Anything wrong with one — missing,
unreadable, not PEM, an encrypted key, a key that does not match its certificate,
a CA file without a certificate — is a :class:`~scheduled_db.config.loading.ConfigError`
naming the key, so a node stops before it opens its data directory, with one line.

What each context does, and why:

- The API serves HTTPS only and asks clients for no certificate (API tokens say who
  a client is).  A follower forwarding a write checks the leader's certificate,
  host name included, against ``api.tls_ca`` or else the system's CAs.
- The transport is mutual TLS 1.3: a node shows ``raft.tls_cert``, and accepts a
  peer only with a certificate ``raft.tls_ca`` signed.  The dialer also checks the
  peer's host name against the member address it dialled, so a certificate stolen
  from one node cannot stand in for another node's address.  The server cannot do
  the same (it does not know who dials until the HMAC handshake that follows),
  which is why that handshake stays: TLS says "a node of this cluster's CA", the
  cluster secret says "a member, named so".
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scheduled_db.config.loading import ConfigError
from scheduled_db.config.model import NodeConfig

_CERT_MARK = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class ApiTls:
    """``server`` for the API (and metrics) listeners; ``client`` for forwarding."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@dataclass(frozen=True)
class RaftTls:
    """``server`` for accepted peer connections, ``client`` for dialled ones."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@dataclass(frozen=True)
class NodeTls:
    """The node's TLS; ``None`` where the configuration leaves a listener plain."""

    api: ApiTls | None = None
    raft: RaftTls | None = None


def load_node_tls(config: NodeConfig) -> NodeTls:
    """Read every TLS file the configuration names; raises ``ConfigError``."""
    api = raft = None
    if config.api.tls_cert is not None and config.api.tls_key is not None:
        api = api_tls(config.api.tls_cert, config.api.tls_key, config.api.tls_ca)
    cfg = config.raft
    if cfg.tls_cert is not None and cfg.tls_key is not None and cfg.tls_ca is not None:
        raft = raft_tls(cfg.tls_cert, cfg.tls_key, cfg.tls_ca)
    return NodeTls(api, raft)


def api_tls(cert: str, key: str, ca: str | None) -> ApiTls:
    """The API's contexts from its files (``ca`` None: the system's CAs)."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_pair(server, "api", cert, key)
    if ca is None:
        client = ssl.create_default_context()
    else:
        client = ssl.create_default_context(cadata=_read_ca("api.tls_ca", ca))
    return ApiTls(server, client)


def raft_tls(cert: str, key: str, ca: str) -> RaftTls:
    """The transport's mutual-TLS contexts from this node's files and the cluster CA."""
    ca_text = _read_ca("raft.tls_ca", ca)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=ca_text)
    server.verify_mode = ssl.CERT_REQUIRED  # mutual: no certificate, no connection
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_text)
    for context in (server, client):
        # Both ends are scheduled-db nodes: nothing older needs to be spoken.
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        _load_pair(context, "raft", cert, key)
    return RaftTls(server, client)


def _read(key: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None


def _read_ca(key: str, path: str) -> str:
    text = _read(key, path)
    if _CERT_MARK not in text:
        raise ConfigError(key, f"no PEM certificate in {path}")
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as exc:
        problem = f"cannot load the CA certificates in {path}: {_reason(exc)}"
        raise ConfigError(key, problem) from None
    return text


def _load_pair(context: ssl.SSLContext, section: str, cert: str, key: str) -> None:
    cert_key, key_key = f"{section}.tls_cert", f"{section}.tls_key"
    if _CERT_MARK not in _read(cert_key, cert):
        raise ConfigError(cert_key, f"no PEM certificate in {cert}")
    key_text = _read(key_key, key)
    if "PRIVATE KEY-----" not in key_text:
        raise ConfigError(key_key, f"no PEM private key in {key}")
    if "ENCRYPTED" in key_text:
        raise ConfigError(key_key, f"{key} is encrypted; the node needs it unencrypted")
    try:
        context.load_cert_chain(cert, key, password=_no_password(key_key))
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(key_key, f"{key} is not the key of {cert_key} {cert}") from None
        raise ConfigError(cert_key, f"cannot load {cert} with {key}: {_reason(exc)}") from None


def _no_password(key_key: str) -> Callable[[], str]:
    """Never let OpenSSL prompt on a terminal for a pass phrase."""

    def refuse() -> str:
        raise ConfigError(key_key, "the key is encrypted; the node needs it unencrypted")

    return refuse


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words: ``KEY_VALUES_MISMATCH`` -> "key values mismatch"."""
    if exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.strerror or exc))
