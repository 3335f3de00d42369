"""docs/openapi.yaml is valid, describes exactly the routes the server registers,
agrees with the code on roles, enums and limits, and is what GET /openapi.json serves.

Replies checked against it: tests/actors/api/test_openapi_conformance.py (in process) and
tests/integration/test_openapi_fuzz.py (schemathesis against a live node).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from openapi_spec_validator import validate

from actors.api import auth as http_auth
from actors.api import errors as http_errors
from actors.api import jobs as http_jobs
from actors.api.app import build_app, build_metrics_app
from actors.api.openapi import openapi_document
from actors.runtime.metrics import ApiMetrics
from scheduled_db import errors
from scheduled_db.config import kinds as config_kinds
from scheduled_db.errors import ValidationError
from scheduled_db.jobs import validation
from scheduled_db.jobs.model import (
    JOB_STATUSES,
    ErrorType,
    JobStatus,
    JobType,
    MisfirePolicy,
    Overlap,
    SkipReason,
)
from scheduled_db.jobs.schedule import MAX_CRON_CHARS, parse_cron
from scheduled_db.policy.auth import token_digest
from tests.actors.http_harness import Api, FakeClock, api_test, make_config
from tests.actors.memory_backend import MemoryBackend
from tests.actors.openapi_spec import (
    DOCS_SPEC,
    ROOT,
    described_operations,
    load_spec,
    schema_errors,
)

SPEC = load_spec()
SCHEMAS = SPEC["components"]["schemas"]
TOKENS = {"api.tokens": f"r:{token_digest('read-tok')}:read"}


def registered_operations(app: web.Application) -> set[tuple[str, str]]:
    """``(METHOD, canonical path)`` of every route, less the HEAD aiohttp adds to a GET."""
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    gets = {path for method, path in routes if method == "GET"}
    return {(m, p) for m, p in routes if not (m == "HEAD" and p in gets)}


def test_the_description_is_valid_openapi_3_0() -> None:
    validate(SPEC)  # raises on the first violation of the OpenAPI 3.0 schema
    assert SPEC["openapi"] == "3.0.3"


def test_docs_and_the_package_hold_one_description() -> None:
    packaged = ROOT / "actors" / "api" / "openapi.yaml"
    assert DOCS_SPEC.read_bytes() == packaged.read_bytes()
    assert openapi_document() == SPEC


def test_every_route_is_described_and_every_described_route_exists() -> None:
    app = build_app(MemoryBackend(), make_config(), ApiMetrics(), FakeClock())
    registered = registered_operations(app)
    described = described_operations(SPEC)
    assert registered - described - not_the_api() == set(), "routes missing from openapi.yaml"
    assert described - registered == set(), "described operations the server lacks"


def not_the_api() -> set[tuple[str, str]]:
    """Routes the server registers that are not operations of the API, each with a reason."""
    listed = set()
    for entry in SPEC["x-not-part-of-the-api"]:
        assert entry["reason"].strip(), entry
        listed |= {tuple(op.split(" ", 1)) for op in entry["operations"]}
    return listed  # type: ignore[return-value]


def test_the_routes_outside_the_api_are_registered_and_not_described() -> None:
    app = build_app(MemoryBackend(), make_config(), ApiMetrics(), FakeClock())
    assert not_the_api() <= registered_operations(app)
    assert not_the_api() & described_operations(SPEC) == set()


def test_the_metrics_listener_is_the_extension_it_is_described_by() -> None:
    app = build_metrics_app(MemoryBackend(), make_config(), ApiMetrics())
    listener = SPEC["x-metrics-listener"]
    assert registered_operations(app) == {("GET", p) for p in listener["paths"]}
    assert {("GET", p) for p in listener["paths"]} <= described_operations(SPEC)


def _concrete(template: str) -> str:
    return template.replace("{id}", "x")


@pytest.mark.parametrize(("method", "path"), sorted(described_operations(SPEC)))
def test_each_operation_names_the_role_and_openness_auth_applies(method: str, path: str) -> None:
    operation = SPEC["paths"][path][method.lower()]
    request = make_mocked_request(method, _concrete(path))
    assert operation["x-role"] == http_auth.needed_role(request).label
    assert operation.get("x-open", False) == (path in http_auth.OPEN_PATHS)
    assert operation.get("security", SPEC["security"]) == [{}, {"bearerAuth": []}]
    statuses = set(operation["responses"])
    assert "401" in statuses  # every operation answers 401 once tokens are configured
    above_read = method != "GET" or operation["x-role"] == "admin"
    assert ("403" in statuses) == above_read, "403: a role below write/admin, or CORS refusal"
    needs_body = "requestBody" in operation
    assert {"413", "415"} <= statuses if needs_body else not {"413", "415"} & statuses


def _enum(name: str) -> list[Any]:
    return [v for v in SCHEMAS[name]["enum"] if v is not None]


def test_enums_match_the_code() -> None:
    assert _enum("JobType") == [t.value for t in JobType]
    assert _enum("JobStatus") == [s.value for s in JOB_STATUSES]
    assert _enum("AttemptStatus") == [s.value for s in JobStatus]
    assert _enum("Overlap") == [o.value for o in Overlap]
    reasons = SCHEMAS["Attempt"]["properties"]["skip_reason"]
    assert _enum_of(reasons) == [r.value for r in SkipReason]
    assert _enum("MisfirePolicy") == [p.value for p in MisfirePolicy]
    assert _enum("MisfirePolicy") == _enum("MisfirePolicyInput")
    error_type = SCHEMAS["Attempt"]["properties"]["error_type"]
    assert _enum_of(error_type) == [e.value for e in ErrorType]


def _enum_of(schema: dict[str, Any]) -> list[Any]:
    return [v for v in schema["enum"] if v is not None]


@pytest.mark.parametrize(
    "job_id",
    ["tarea-año", "job 1", "user@x.com", "%?#+", "\U0001f600" * 256, "x" * 256, "..x",
     "", "x" * 257, "a/b", "a\nb", "a\x00", "del\x7f", "nel\x85", "a\u2028", ".", ".."],
)  # fmt: skip
def test_the_id_schema_admits_exactly_the_ids_validation_accepts(job_id: str) -> None:
    accepted = validation.job_id_problem(job_id) is None
    for name in ("JobIdValue", "JobIdInput"):
        admitted = not schema_errors(SPEC, SCHEMAS[name], job_id)
        assert admitted == accepted, (name, job_id)


def test_limits_and_patterns_match_the_code() -> None:
    job_id = SCHEMAS["JobIdValue"]
    assert job_id["maxLength"] == validation.MAX_JOB_ID_CHARS
    refused = validation._ID_REFUSED.pattern
    assert refused.startswith("[") and job_id["pattern"] == f"^[^{refused[1:]}+$"
    assert SCHEMAS["NodeId"]["pattern"] == f"^{config_kinds._ID.pattern}$"
    address = SCHEMAS["Address"]["pattern"]
    assert address == "^" + config_kinds._ADDRESS.pattern.replace(r"(\d{1,5})", "[0-9]{1,5}") + "$"
    id_input = SCHEMAS["JobIdInput"]
    assert (id_input["pattern"], id_input["maxLength"]) == (job_id["pattern"], job_id["maxLength"])
    for variant in ("UnicoJobCreate", "RecurrenteJobCreate"):
        assert sorted(SCHEMAS[variant]["properties"]) == sorted(validation.JOB_FIELDS)
    assert SCHEMAS["WebhookUrlInput"]["maxLength"] == validation.MAX_URL_CHARS
    assert SCHEMAS["CronExpression"]["maxLength"] == MAX_CRON_CHARS
    assert SCHEMAS["MaxAttemptsInput"]["maximum"] == validation.MAX_ATTEMPTS
    number = SCHEMAS["TimeoutInput"]["anyOf"][1]
    assert (number["minimum"], number["maximum"]) == (
        validation.MIN_TIMEOUT_MS / 1000,
        validation.MAX_TIMEOUT_MS / 1000,
    )
    reason = SCHEMAS["CancelRequest"]["properties"]["reason"]
    assert reason["maxLength"] == http_jobs.MAX_REASON_CHARS
    params = {p["name"]: p for p in SPEC["paths"]["/jobs"]["get"]["parameters"] if "name" in p}
    assert params["limit"]["schema"]["anyOf"][0]["maximum"] == validation.MAX_LIMIT
    assert params["limit"]["schema"]["default"] == validation.DEFAULT_LIMIT
    cursor = f"{{0,{validation.MAX_CURSOR_CHARS}}}"  # empty: the first page
    assert params["cursor"]["schema"]["pattern"] == f"^[A-Za-z0-9_-]{cursor}$"


@pytest.mark.parametrize(
    "expression",
    ["* * * * *", "*/15 * * * *", "0 9-17/2 * * mon-fri", "0 0 1,L * *", "0 0 ? * 0",
     "0 0 * JAN,jul ?", "5/10 * * * *", "30 0 12 * * *", "@hourly", "@DAILY", "  0   0 * * *  "],
)  # fmt: skip
def test_the_cron_pattern_admits_what_validation_accepts(expression: str) -> None:
    assert parse_cron(expression)
    assert re.fullmatch(SCHEMAS["CronExpression"]["pattern"], expression)


@pytest.mark.parametrize(
    "expression", ["", "* * * *", "* * * * * * *", "-5 * * * *", "1,,2 * * * *", "* * * * 1#2"]
)
def test_the_cron_pattern_refuses_bad_syntax(expression: str) -> None:
    with pytest.raises(ValidationError):
        parse_cron(expression)
    assert re.fullmatch(SCHEMAS["CronExpression"]["pattern"], expression) is None


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(c) for c in found)) if found else found


def test_every_error_code_the_code_names_is_listed() -> None:
    listed = set(SCHEMAS["Error"]["properties"]["code"]["enum"])
    named = {cls.code for cls in _subclasses(errors.SchedulerError)}
    framework = {code for code, _ in http_errors._FRAMEWORK_MESSAGES.values()}
    others = {"invalid_body", "unsupported_media_type", "unauthorized", "forbidden"}
    others |= {"cors_refused", "http_error", "internal_error"}
    assert named | framework | others <= listed
    assert listed - (named | framework | others) == set(), "listed codes nothing emits"


def test_the_api_reference_error_table_lists_every_code() -> None:
    table = (ROOT / "docs" / "api-reference.md").read_text().split("**Errors.**")[1]
    table = table.split("**Authentication.**")[0]
    listed = set(re.findall(r"^\| [0-9x]{3} \| (.+?) \|", table, re.M))
    documented = {code for row in listed for code in re.findall(r"`(\w+)`", row)}
    missing = set(SCHEMAS["Error"]["properties"]["code"]["enum"]) - documented
    assert not missing, f"docs/api-reference.md's error table lacks {sorted(missing)}"


@api_test(TOKENS)
async def test_get_openapi_json_serves_the_description_without_a_token(api: Api) -> None:
    reply = await api.call("GET", "/openapi.json")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
    assert reply.body == SPEC
    async with api.client.head("/openapi.json") as head:
        assert head.status == 200 and await head.read() == b""
    async with api.client.get("/openapi.json") as first, api.client.get("/openapi.json") as again:
        assert await first.read() == await again.read()


@api_test({**TOKENS, "api.open_health": False})
async def test_the_description_closes_with_the_health_routes(api: Api) -> None:
    reply = await api.call("GET", "/openapi.json")
    assert reply.status == 401 and reply.body["code"] == "unauthorized"
    authorised = await api.call(
        "GET", "/openapi.json", headers={"Authorization": "Bearer read-tok"}
    )
    assert authorised.status == 200 and authorised.body == SPEC
