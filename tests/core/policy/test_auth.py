"""API tokens in the config: parsing, errors naming the key, and constant-time lookup."""

from __future__ import annotations

import pytest

from scheduled_db.config.loading import ConfigError, load_config
from scheduled_db.policy.auth import ApiToken, Role, find_token, token_digest

READER, WRITER = token_digest("reader-token"), token_digest("writer-token")


def test_tokens_from_yaml_and_from_the_environment() -> None:
    text = f"api:\n  tokens:\n    - {{name: ci, token_sha256: {WRITER}, role: write}}\n"
    c = load_config({}, {}, text, "t.yaml")
    assert c.api.tokens == (ApiToken("ci", WRITER, Role.WRITE),) and c.api.open_health
    env = {"API_TOKENS": f"dash:{READER}:read, ops:{WRITER}:admin"}
    c = load_config({}, env, None, "t.yaml")
    assert [(t.name, t.role) for t in c.api.tokens] == [("dash", Role.READ), ("ops", Role.ADMIN)]
    assert WRITER not in repr(c)  # digests stay out of reprs and logs


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (f"a:{READER}", "name:sha256:role"),
        (f"a:{READER}:root", "role must be one of read, write, admin"),
        ("a:abc:read", "64 lowercase hex"),
        (f"a:{READER.upper()}:read", "64 lowercase hex"),
        (f"-a:{READER}:read", "name must be"),
        (f"a:{READER}:read,a:{WRITER}:write", 'duplicate token name "a"'),
    ],
)
def test_bad_tokens_stop_start_up_naming_the_key(value: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({}, {"API_TOKENS": value}, None, "t.yaml")
    assert err.value.key == "api.tokens" and words in str(err.value)
    assert "reader-token" not in str(err.value)


def test_find_token_matches_the_digest_only() -> None:
    tokens = (ApiToken("r", READER, Role.READ), ApiToken("w", WRITER, Role.WRITE))
    assert find_token(tokens, "writer-token") == tokens[1]
    assert find_token(tokens, "reader-token") == tokens[0]
    assert find_token(tokens, READER) is None  # the digest itself is no token
    assert find_token(tokens, "") is None and find_token((), "reader-token") is None
    assert Role.ADMIN > Role.WRITE > Role.READ
