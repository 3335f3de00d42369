"""Throwaway certificate authorities for the TLS tests, written to PEM files.

``trustme`` makes the CA and leaf certificates in memory (ECDSA, valid for the
names and IP addresses given); this module only writes them where a node's
configuration can name them, and builds the contexts a test client needs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class CertFiles:
    """One leaf certificate (chain first) and its unencrypted private key."""

    cert: Path
    key: Path


class Authority:
    """A CA whose certificate is in ``ca_file``, issuing leaf certificates as files."""

    def __init__(self, directory: Path, name: str = "cluster-ca") -> None:
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name=name)
        self.ca_file = self.directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def issue(self, name: str, *hosts: str) -> CertFiles:
        """A certificate for ``hosts`` (default 127.0.0.1 and localhost), usable by a
        server and a client alike."""
        leaf = self._ca.issue_cert(*(hosts or ("127.0.0.1", "localhost")), common_name=name)
        files = CertFiles(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        files.cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        files.key.write_bytes(leaf.private_key_pem.bytes())
        return files

    def client_context(self, cert: CertFiles | None = None) -> ssl.SSLContext:
        """A client context trusting this CA only, showing ``cert`` if given."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        return context
