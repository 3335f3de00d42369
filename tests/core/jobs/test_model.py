"""The job model's helpers: the webhook idempotency key of an occurrence."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from scheduled_db.jobs.model import idempotency_key

ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True), st.integers(0, 2**63))
def test_an_id_of_the_old_characters_reads_as_itself(job_id: str, ms: int) -> None:
    assert idempotency_key(job_id, ms) == f"{job_id}:{ms}"


@given(ids, ids, st.integers(0, 2**63))
def test_the_key_is_visible_ascii_and_tells_ids_apart(a: str, b: str, ms: int) -> None:
    key = idempotency_key(a, ms)
    assert key.isascii() and key.isprintable() and " " not in key  # fit for a header
    head, _, tail = key.rpartition(":")
    assert (unquote(head), tail) == (a, str(ms))
    assert (idempotency_key(b, ms) == key) == (a == b)


def test_examples_from_the_webhook_docs() -> None:
    assert idempotency_key("invoice-42", 1_800_000_000_000) == "invoice-42:1800000000000"
    assert idempotency_key("tarea año", 1_800_000_000_000) == "tarea%20a%C3%B1o:1800000000000"
