"""The API's OpenAPI description as tests read it, and a check that one reply is
what the description documents for its operation.

The description is read from ``docs/openapi.yaml`` (what people and schemathesis
read); tests/actors/api/test_openapi.py checks that the node serves the same document.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

ROOT = Path(__file__).resolve().parents[2]
DOCS_SPEC = ROOT / "docs" / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load_spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DOCS_SPEC.read_text(encoding="utf-8"))
    return document


def described_operations(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every operation the description has."""
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def resolve(spec: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow local ``$ref`` s until a node that is not one."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def schema_errors(spec: Mapping[str, Any], schema: Mapping[str, Any], value: Any) -> list[str]:
    """Why ``value`` does not match ``schema`` (a schema of ``spec``, refs and all)."""
    root = {**schema, "components": spec["components"]}
    validator = OAS30Validator(root, format_checker=oas30_format_checker)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]


def check_reply(
    spec: Mapping[str, Any],
    method: str,
    template: str,
    status: int,
    content_type: str,
    headers: Mapping[str, str],
    body: Any,
) -> None:
    """Assert the reply's status is documented for the operation, and that its media
    type, required headers and (decoded) body are what that response describes."""
    operation = spec["paths"][template][method.lower()]
    responses = operation["responses"]
    where = f"{method} {template} -> {status}"
    assert str(status) in responses, f"{where}: status not documented ({body!r:.300})"
    response = resolve(spec, responses[str(status)])
    for name, header in response.get("headers", {}).items():
        if resolve(spec, header).get("required"):
            assert name in headers, f"{where}: header {name} missing"
    content = response.get("content")
    if not content:
        assert body in ("", None), f"{where}: a body where none is documented: {body!r:.300}"
        return
    assert content_type in content, f"{where}: {content_type} is not one of {sorted(content)}"
    schema = content[content_type]["schema"]
    if schema.get("format") == "binary":
        assert isinstance(body, bytes) and body, f"{where}: no binary body"
        return
    errors = schema_errors(spec, schema, body)
    assert not errors, f"{where}: body does not match: {errors} in {body!r:.500}"
