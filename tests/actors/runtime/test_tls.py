"""TLS configuration: the keys' pairing rules (scheduled_db.config.loading) and reading the
files at start-up (actors.runtime.tls).  Every problem is one ConfigError line naming its key."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from actors.runtime.tls import load_node_tls
from scheduled_db.config.loading import ConfigError, NodeConfig, load_config
from tests.tls_certs import Authority, CertFiles


@dataclass(frozen=True)
class Files:
    ca: Authority
    node: CertFiles
    other: CertFiles  # another key pair of the same CA
    root: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("tls")
    ca = Authority(root)
    return Files(ca, ca.issue("node-1"), ca.issue("node-2"), root)


def config(**values: object) -> NodeConfig:
    return load_config({k.replace("__", "."): v for k, v in values.items()}, {}, None, "test")


def api(f: Files, **over: object) -> dict[str, object]:
    base = {"api__tls_cert": str(f.node.cert), "api__tls_key": str(f.node.key)}
    return {**base, **over}


def raft(f: Files, **over: object) -> dict[str, object]:
    base = {
        "raft__tls_cert": str(f.node.cert),
        "raft__tls_key": str(f.node.key),
        "raft__tls_ca": str(f.ca.ca_file),
    }
    return {**base, **over}


def tls_error(values: Mapping[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_node_tls(config(**values))
    assert "\n" not in str(caught.value)
    return caught.value


# --- the configuration ------------------------------------------------------------------


def test_no_tls_by_default() -> None:
    c = config()
    assert c.api.tls_cert is c.api.tls_key is c.api.tls_ca is None
    assert c.raft.tls_cert is c.raft.tls_key is c.raft.tls_ca is None
    tls = load_node_tls(c)
    assert tls.api is None and tls.raft is None


def test_env_vars_set_the_tls_keys() -> None:
    env = {"API_TLS_CERT": "/a.crt", "API_TLS_KEY": "/a.key", "API_TLS_CA": "/ca.pem"}
    env |= {"RAFT_TLS_CERT": "/r.crt", "RAFT_TLS_KEY": "/r.key", "RAFT_TLS_CA": "/rca.pem"}
    c = load_config({}, env, None, "test")
    assert (c.api.tls_cert, c.api.tls_key, c.api.tls_ca) == ("/a.crt", "/a.key", "/ca.pem")
    assert (c.raft.tls_cert, c.raft.tls_key, c.raft.tls_ca) == ("/r.crt", "/r.key", "/rca.pem")


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"api.tls_cert": "/c"}, "api.tls_key"),
        ({"api.tls_key": "/k"}, "api.tls_cert"),
        ({"api.tls_ca": "/ca"}, "api.tls_ca"),
        ({"raft.tls_cert": "/c", "raft.tls_key": "/k"}, "raft.tls_ca"),
        ({"raft.tls_ca": "/ca"}, "raft.tls_cert"),
        ({"raft.tls_key": "/k", "raft.tls_ca": "/ca"}, "raft.tls_cert"),
    ],
)
def test_tls_keys_come_in_sets(given: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(given, {}, None, "test")
    assert caught.value.key == named
    assert str(caught.value).startswith(f"config: {named}: ")


def test_a_path_with_a_nul_byte_is_refused_where_it_is_given() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({}, {"RAFT_TLS_KEY": "a\0b"}, None, "test")
    assert caught.value.key == "raft.tls_key" and "from env RAFT_TLS_KEY" in str(caught.value)


# --- reading the files ------------------------------------------------------------------


def test_good_files_give_contexts_of_the_intended_strictness(files: Files) -> None:
    tls = load_node_tls(config(**api(files, api__tls_ca=str(files.ca.ca_file)), **raft(files)))
    assert tls.api is not None and tls.raft is not None
    assert tls.api.server.verify_mode is ssl.CERT_NONE  # clients show no certificate
    assert tls.api.client.check_hostname and tls.api.client.verify_mode is ssl.CERT_REQUIRED
    assert tls.raft.server.verify_mode is ssl.CERT_REQUIRED  # mutual
    assert tls.raft.client.check_hostname and tls.raft.client.verify_mode is ssl.CERT_REQUIRED
    for context in (tls.raft.server, tls.raft.client):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3


def test_api_tls_without_a_ca_trusts_the_system_store(files: Files) -> None:
    tls = load_node_tls(config(**api(files)))
    assert tls.api is not None and tls.raft is None
    assert tls.api.client.verify_mode is ssl.CERT_REQUIRED


def test_a_missing_file_names_its_key(files: Files) -> None:
    missing = str(files.root / "nope.crt")
    err = tls_error(api(files, api__tls_cert=missing))
    assert err.key == "api.tls_cert" and "cannot read" in str(err) and "No such file" in str(err)
    err = tls_error(raft(files, raft__tls_ca=missing))
    assert err.key == "raft.tls_ca" and "cannot read" in str(err)


def test_a_directory_is_not_a_file(files: Files) -> None:
    err = tls_error(raft(files, raft__tls_key=str(files.root)))
    assert err.key == "raft.tls_key" and "cannot read" in str(err)


def test_files_swapped_or_not_pem_name_the_key_at_fault(files: Files) -> None:
    err = tls_error(api(files, api__tls_cert=str(files.node.key)))
    assert err.key == "api.tls_cert" and "no PEM certificate" in str(err)
    err = tls_error(api(files, api__tls_key=str(files.node.cert)))
    assert err.key == "api.tls_key" and "no PEM private key" in str(err)
    err = tls_error(raft(files, raft__tls_ca=str(files.node.key)))
    assert err.key == "raft.tls_ca" and "no PEM certificate" in str(err)


def test_a_key_of_another_certificate_is_refused(files: Files) -> None:
    err = tls_error(raft(files, raft__tls_key=str(files.other.key)))
    assert err.key == "raft.tls_key" and "is not the key of raft.tls_cert" in str(err)


def test_a_corrupt_certificate_or_ca_is_refused(files: Files, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    err = tls_error(api(files, api__tls_cert=str(bad)))
    assert err.key == "api.tls_cert" and "cannot load" in str(err)
    err = tls_error(api(files, api__tls_ca=str(bad)))
    assert err.key == "api.tls_ca" and "cannot load the CA certificates" in str(err)


def test_an_encrypted_key_is_refused_without_a_prompt(files: Files, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(files.node.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass phrase"),
        )
    )
    err = tls_error(api(files, api__tls_key=str(encrypted)))
    assert err.key == "api.tls_key" and "encrypted" in str(err)
