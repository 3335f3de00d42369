"""The documentation names every setting the code reads, and nothing it does not.

- docs/configuration.md is exactly what scheduled_db/config/docs.py generates from
  the key table (every key, env var, flag and default);
- every environment variable named in the code's string literals is documented;
- every environment-variable-like name the docs and README show in backticks is
  one the code reads, one of the original's (scheduled_db/config/original.py),
  one of OpenTelemetry's the configuration page lists for tracing (``TRACING_ENV``),
  a Makefile or compose variable, or a well-known one of another program;
- every dotted config key the docs show in backticks exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from scheduled_db.config.docs import CLIENT_ENV, markdown
from scheduled_db.config.keys import KEYS, TRACING_ENV
from scheduled_db.config.original import ORIGINAL

ROOT = Path(__file__).resolve().parents[3]
CODE_DIRS = ("scheduled_db", "actors")
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
_QUOTED_UPPER = re.compile(r"[\"']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)[\"']")
_BACKTICKED_UPPER = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`")
_ASSIGNED = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*[:=]", re.MULTILINE)
# Names of other programs' settings the docs may show.
FOREIGN = {"PYTHONPATH", "POD_NAME", "POD_IP", "KUBECONFIG", "HTTP_PROXY", "HTTPS_PROXY"}
NOT_ENV = {"SC_PAGE_SIZE", "SC_PHYS_PAGES", "KEY_VALUES_MISMATCH"}  # sysconf, OpenSSL names
_FILE_SUFFIXES = (".py", ".md", ".yaml", ".json")  # `log.py` is a file, not a key


def _code_files() -> list[Path]:
    return [p for d in CODE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]


def known_env() -> set[str]:
    return {key.env for key in KEYS if key.env} | set(CLIENT_ENV) | original_env() | tracing_env()


def tracing_env() -> set[str]:
    """OpenTelemetry's variables for tracing: the SDK reads them, the page lists them."""
    return set(TRACING_ENV)


def original_env() -> set[str]:
    """The original's variables: each has a row of its own on the configuration page."""
    return {setting.env for setting in ORIGINAL}


def env_names_in_code() -> set[str]:
    texts = [p.read_text() for p in _code_files()]
    constants = {name for text in texts for name in _ASSIGNED.findall(text)}
    quoted = {name for text in texts for name in _QUOTED_UPPER.findall(text)}
    return quoted - constants - NOT_ENV


def test_configuration_page_is_generated_from_the_key_table() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == markdown(), (
        "docs/configuration.md is stale: "
        "python3 -m scheduled_db.config.docs > docs/configuration.md"
    )


def test_every_key_and_env_var_appears_in_the_configuration_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    for key in KEYS:
        assert f"`{key.path}`" in page
        if key.env:
            assert f"`{key.env}`" in page
    for name in CLIENT_ENV:
        assert f"`{name}`" in page
    for name in tracing_env():
        assert f"| `{name}` |" in page
    for name in original_env():
        assert f"| `{name}` |" in page


def test_every_env_var_the_code_names_is_documented() -> None:
    found = env_names_in_code()
    assert "CLUSTER_SECRET" in found and "SCHEDULED_DB_TOKEN" in found  # the scan works
    undocumented = found - known_env()
    assert not undocumented, (
        f"read by the code but not in the key table or CLIENT_ENV: {undocumented}"
    )


def make_and_compose_variables() -> set[str]:
    """Variables of the Makefile (``NAME ?=``) and of docker-compose.yml (``${NAME}``)."""
    make = (ROOT / "Makefile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", make, re.MULTILINE)) | set(
        re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose)
    )


def test_every_env_var_the_docs_name_exists() -> None:
    variables = make_and_compose_variables()
    assert "KUSTOMIZE_DIR" in variables and "GRAFANA_ADMIN_PASSWORD" in variables
    known = known_env() | FOREIGN | variables
    for doc in DOCS:
        named = set(_BACKTICKED_UPPER.findall(doc.read_text()))
        unknown = named - known
        assert not unknown, f"{doc.relative_to(ROOT)} names unknown env vars {unknown}"


def test_every_config_key_the_docs_name_exists() -> None:
    paths = {key.path for key in KEYS}
    sections = {key.section for key in KEYS}
    dotted = re.compile(r"`((?:" + "|".join(sorted(sections)) + r")\.[a-z_]+)(?:[:=][^`]*)?`")
    for doc in DOCS:
        named = {n for n in dotted.findall(doc.read_text()) if not n.endswith(_FILE_SUFFIXES)}
        unknown = named - paths
        assert not unknown, f"{doc.relative_to(ROOT)} names unknown config keys {unknown}"
