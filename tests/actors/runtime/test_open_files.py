"""The open-file limit and the share of it webhook requests may use."""

from __future__ import annotations

import logging
import resource

import pytest

from actors.runtime.open_files import raise_soft_limit, webhook_slots


@pytest.mark.parametrize(
    ("configured", "soft", "slots"),
    [
        (4096, 20_000, 4096),
        (4096, 8192, 4096),
        (4096, 1024, 512),  # a bare system's default soft limit
        (100, 1024, 100),
        (4096, 1, 1),
        (4096, resource.RLIM_INFINITY, 4096),
    ],
)
def test_webhooks_get_at_most_half_the_open_file_limit(
    configured: int, soft: int, slots: int
) -> None:
    assert webhook_slots(configured, soft) == slots


def test_a_cut_is_logged_with_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "actors.runtime.open_files"):
        webhook_slots(4096, 1024)
    assert "using 512; raise the limit (ulimit -n)" in caplog.text


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = raise_soft_limit()
    assert soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= before
    if hard != resource.RLIM_INFINITY:
        assert soft == hard
