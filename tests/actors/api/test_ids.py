"""Job ids drawn from a pool of random bytes (actors/api/ids.py)."""

from __future__ import annotations

import os
import uuid
from unittest import mock

import pytest

from actors.api.ids import IdSource


def test_ids_are_distinct_version_4_uuids_across_refills() -> None:
    reads = []
    real = os.urandom

    def counted(n: int) -> bytes:
        reads.append(n)
        return real(n)

    source = IdSource(per_read=4)
    with mock.patch.object(os, "urandom", counted):
        ids = [source() for _ in range(10)]
    assert reads == [64, 64, 64]  # 4 ids a read: ids 1, 5 and 9 read
    parsed = [uuid.UUID(i) for i in ids]
    assert len(set(ids)) == 10
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(str(u) == i for u, i in zip(parsed, ids, strict=True))


def test_a_pool_of_no_ids_is_refused() -> None:
    with pytest.raises(ValueError, match="per_read"):
        IdSource(per_read=0)
