"""Fresh job ids (random UUIDs) drawn from a pool of random bytes.

``uuid.uuid4()`` reads 16 bytes from ``os.urandom``, and CPython releases the
GIL around that ``getrandom`` call.  On a node whose storage, Raft and
transport threads are busy, the HTTP thread then waits to take the GIL back
before it can go on with the request: beside one busy thread a ``uuid4()``
took about 200 µs of wall time (1.3 µs alone), and under an open loop of
creates it was a sixth of the HTTP thread's samples (docs/benchmarks-history.md,
*The GIL given up for a job id*).  An :class:`IdSource` reads random bytes for
many ids at once, so the hand-off is paid once per ``per_read`` ids.  The ids
are as unpredictable as ``uuid4()``'s: the same source, the same 122 random
bits, the version and variant bits set by :class:`uuid.UUID`.

A source belongs to one thread (the HTTP loop's): its position in the pool is
not guarded.
"""

from __future__ import annotations

import os
import uuid

ID_BYTES = 16


class IdSource:
    """Calls return fresh random (version 4) UUIDs as strings."""

    def __init__(self, per_read: int = 256) -> None:
        if per_read < 1:
            raise ValueError("per_read must be at least 1")
        self._size = per_read * ID_BYTES
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        if self._at >= len(self._pool):
            self._pool = os.urandom(self._size)
            self._at = 0
        raw = self._pool[self._at : self._at + ID_BYTES]
        self._at += ID_BYTES
        return str(uuid.UUID(bytes=raw, version=4))
