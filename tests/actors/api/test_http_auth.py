"""Bearer tokens on a live API: 401 without a valid one, 403 when its role is too low."""

from __future__ import annotations

import pytest

from scheduled_db.policy.auth import token_digest
from tests.actors.http_harness import START_MS, Api, api_test

SECRET = "a-cluster-secret-of-some-length"
TOKENS = {
    "api.tokens": (
        f"r:{token_digest('read-tok')}:read,w:{token_digest('write-tok')}:write,"
        f"a:{token_digest('admin-tok')}:admin"
    ),
    "cluster.secret": SECRET,
}
JOB = {"id": "one", "type": "unico", "timestamp": START_MS // 1000 + 60}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@api_test(TOKENS)
async def test_each_role_gets_what_it_may(api: Api) -> None:
    assert (await api.call("POST", "/jobs", JOB, headers=bearer("write-tok"))).status == 200
    for token in ("read-tok", "write-tok", "admin-tok"):
        reply = await api.call("GET", "/jobs/one", headers=bearer(token))
        assert reply.status == 200, token
    reply = await api.call("POST", "/jobs/one/cancel", headers=bearer("read-tok"))
    assert reply.status == 403 and reply.body["code"] == "forbidden"
    assert "role read" in reply.body["error"] and "needs write" in reply.body["error"]
    assert (await api.call("POST", "/jobs/one/cancel", headers=bearer("admin-tok"))).status == 200
    join = {"node_id": "node-4", "address": "10.0.0.4:7000"}
    reply = await api.call("POST", "/join", join, headers=bearer("write-tok"))
    assert reply.status == 403 and "needs admin" in reply.body["error"]
    assert (await api.call("POST", "/join", join, headers=bearer("admin-tok"))).status == 200
    # The cluster secret still works for membership changes, and only for them.
    assert (
        await api.call("POST", "/join", join | {"node_id": "n5"}, headers=bearer(SECRET))
    ).status == 200
    assert (await api.call("GET", "/jobs/one", headers=bearer(SECRET))).status == 401
    assert [n for n, _, _ in api.backend.learners] == ["node-4", "n5"]


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), {"Authorization": "read-tok"}, {"Authorization": "Basic cmVhZA=="}],
    ids=["none", "wrong", "no-scheme", "basic"],
)
def test_without_a_valid_token_everything_but_health_is_401(headers: dict[str, str]) -> None:
    @api_test(TOKENS)
    async def scenario(api: Api) -> None:
        for method, path in (("GET", "/jobs"), ("POST", "/jobs"), ("DELETE", "/jobs/x")):
            reply = await api.call(method, path, JOB if method == "POST" else None, headers=headers)
            assert reply.status == 401 and reply.body["code"] == "unauthorized", (method, reply)
            assert reply.headers["WWW-Authenticate"] == "Bearer"
            assert "read-tok" not in str(reply.body) and "wrong" not in str(reply.body)
        assert api.backend.proposed == []
        for path in ("/health", "/ready", "/metrics"):  # probes and scrapers stay open
            assert (await api.call("GET", path, headers=headers)).status == 200, path

    scenario()


@api_test({**TOKENS, "api.open_health": False})
async def test_health_can_be_closed_too(api: Api) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert (await api.call("GET", path)).status == 401, path
        assert (await api.call("GET", path, headers=bearer("read-tok"))).status == 200, path


@api_test()
async def test_without_tokens_the_api_is_open(api: Api) -> None:
    assert (await api.call("POST", "/jobs", JOB)).status == 200
    assert (await api.call("GET", "/jobs/one", headers=bearer("anything"))).status == 200


JOIN_TOKEN = "the-original-auth-token-0123"


@api_test({"cluster.join_token": JOIN_TOKEN})
async def test_the_original_s_auth_token_may_join_and_nothing_else_may(api: Api) -> None:
    join = {"node_id": "node-4", "address": "10.0.0.4:7000"}
    for headers in ({}, bearer("wrong"), {"Authorization": JOIN_TOKEN}):
        reply = await api.call("POST", "/join", join, headers=headers)
        assert reply.status == 401 and reply.body["code"] == "unauthorized", headers
        assert JOIN_TOKEN not in str(reply.body)
    assert (await api.call("POST", "/join", join, headers=bearer(JOIN_TOKEN))).status == 200
    reply = await api.call("POST", "/leave", {"node_id": "node-4"}, headers=bearer(JOIN_TOKEN))
    assert reply.status not in (401, 403), reply  # past the check (the stand-in backend's answer)
    assert [n for n, _, _ in api.backend.learners] == ["node-4"]


@api_test({**TOKENS, "cluster.join_token": JOIN_TOKEN})
async def test_with_api_tokens_the_join_token_counts_as_admin_for_membership_only(
    api: Api,
) -> None:
    join = {"node_id": "node-4", "address": "10.0.0.4:7000"}
    assert (await api.call("POST", "/join", join, headers=bearer(JOIN_TOKEN))).status == 200
    assert (await api.call("GET", "/jobs", headers=bearer(JOIN_TOKEN))).status == 401


@api_test()
async def test_with_neither_secret_nor_join_token_membership_is_closed(api: Api) -> None:
    reply = await api.call("POST", "/join", {"node_id": "n", "address": "h:1"})
    assert reply.status == 403 and "cluster.join_token" in reply.body["error"]
    assert api.backend.learners == []
