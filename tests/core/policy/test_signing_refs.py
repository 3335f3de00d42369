"""Per-job signing secrets: the named-secret config, the job field, its wire form and
the API's view (the name shown, a secret never)."""

from __future__ import annotations

import pytest

from scheduled_db.config.loading import ConfigError, load_config
from scheduled_db.errors import ValidationError
from scheduled_db.jobs.model import JobSpec, JobType
from scheduled_db.jobs.validation import parse_job_spec
from scheduled_db.policy.signing import parse_named_secrets
from scheduled_db.state.commands import CreateJob, decode_command, encode_command
from scheduled_db.state.records import spec_to_wire
from tests.actors.http_harness import START_MS, Api, api_test

NOW_MS = START_MS
TEAM_A = "team-a-secret-0123456789"
SECRETS = {"webhooks.signing_secrets": {"team-a": TEAM_A}}


def body(**fields: object) -> dict[str, object]:
    return {"type": "unico", "timestamp": NOW_MS // 1000 + 60, **fields}


# --- config -----------------------------------------------------------------------------


def test_named_secrets_from_yaml_and_from_the_env_form() -> None:
    assert dict(parse_named_secrets({"a": "x" * 16})) == {"a": "x" * 16}
    parsed = parse_named_secrets("a:" + "x" * 16 + ", b.2:" + "y:z" * 6)
    assert dict(parsed) == {"a": "x" * 16, "b.2": "y:z" * 6}  # split at the first colon
    assert dict(parse_named_secrets(None)) == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a" + "x" * 20, 'must be written "name:secret"'),
        ({"a": "short"}, 'secret "a": must be at least 16 characters'),
        ({"bad name": "x" * 16}, "name must be"),
        ("a:" + "x" * 16 + ",a:" + "y" * 16, 'duplicate secret name "a"'),
        (["a"], "must be a mapping"),
    ],
)
def test_bad_named_secrets_are_refused(value: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_named_secrets(value)


def test_a_bad_secret_stops_start_up_without_showing_it() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({}, {"WEBHOOK_SIGNING_SECRETS": "a:tooshort-secret"}, None, "env")
    message = str(err.value)
    assert "webhooks.signing_secrets" in message and "tooshort" not in message
    assert "\n" not in message


# --- the job field ------------------------------------------------------------------------


def test_a_job_may_name_a_configured_secret() -> None:
    spec = parse_job_spec(
        body(signing_secret_ref="team-a"), NOW_MS, generated_id="j", secret_names={"team-a"}
    )
    assert spec.signing_secret_ref == "team-a"
    assert parse_job_spec(body(), NOW_MS, generated_id="j").signing_secret_ref is None


@pytest.mark.parametrize("ref", ["team-b", "", 7, "has space", "x" * 65])
def test_an_unknown_or_malformed_name_is_a_400_on_the_field(ref: object) -> None:
    with pytest.raises(ValidationError) as err:
        parse_job_spec(
            body(signing_secret_ref=ref), NOW_MS, generated_id="j", secret_names={"team-a"}
        )
    assert err.value.field == "signing_secret_ref"


def test_the_wire_form_omits_an_absent_ref_so_older_entries_decode() -> None:
    plain = JobSpec("j", JobType.UNICO, timestamp_ms=NOW_MS + 60_000)
    assert "signing_secret_ref" not in plain.to_wire()
    assert spec_to_wire(plain) == plain.to_wire()
    named = JobSpec("j", JobType.UNICO, timestamp_ms=NOW_MS + 60_000, signing_secret_ref="a")
    assert spec_to_wire(named) == named.to_wire()
    for spec in (plain, named):
        command = CreateJob(spec, NOW_MS, NOW_MS + 60_000)
        assert decode_command(encode_command(command)) == command


def test_a_spec_with_an_unknown_field_is_still_refused() -> None:
    command = CreateJob(JobSpec("j", JobType.UNICO, timestamp_ms=1), NOW_MS, NOW_MS)
    encoded = encode_command(command)
    assert encoded.count(b"\xa7payload") == 1  # the msgpack key this test renames
    tampered = encoded.replace(b"\xa7payload", b"\xa7paylOad")
    with pytest.raises(ValueError):
        decode_command(tampered)


# --- the API ------------------------------------------------------------------------------


@api_test(SECRETS)
async def test_the_api_shows_the_name_and_never_the_secret(api: Api) -> None:
    job = await api.create(id="signed", signing_secret_ref="team-a")
    assert job["signing_secret_ref"] == "team-a"
    for path in ("/jobs/signed", "/jobs", "/jobs/signed/status"):
        reply = await api.call("GET", path)
        assert reply.status == 200 and TEAM_A not in str(reply.body)
    plain = await api.create(id="plain")
    assert plain["signing_secret_ref"] is None


@api_test(SECRETS)
async def test_naming_a_secret_the_cluster_lacks_is_a_400(api: Api) -> None:
    reply = await api.call("POST", "/jobs", body(id="x", signing_secret_ref="team-b"))
    assert reply.status == 400
    assert reply.body["field"] == "signing_secret_ref"
    assert (await api.call("GET", "/jobs/x")).status == 404  # nothing was made
