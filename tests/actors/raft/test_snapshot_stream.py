"""The snapshot stream's frames: only the three shapes decode; anything else is refused.

The stream itself (pulling a snapshot from a leader into a wiped node) is exercised
end to end by tests/integration/test_cluster_snapshot.py with real node processes.
"""

from __future__ import annotations

import msgpack
import pytest

from actors.raft.snapshot_stream import FrameDecodeError, _chunk, _gone, _want, decode_frame


def test_the_three_frames_round_trip() -> None:
    assert decode_frame(_want(7, 0, None)) == ["want", 7, 0, None]
    assert decode_frame(_want(7, 3, b"k")) == ["want", 7, 3, b"k"]
    assert decode_frame(_chunk(7, 3, b"data", b"last-key", False)) == [
        "chunk", 7, 3, b"data", b"last-key", False,
    ]  # fmt: skip
    assert decode_frame(_chunk(7, 4, b"", None, True)) == ["chunk", 7, 4, b"", None, True]
    assert decode_frame(_gone(7, 9)) == ["gone", 7, 9]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        msgpack.packb("want"),
        msgpack.packb([]),
        msgpack.packb(["push", 1, 2]),
        msgpack.packb(["want", 1, 2]),  # too short
        msgpack.packb(["want", 1, 2, None, 5]),  # too long
        msgpack.packb(["want", "1", 2, None]),  # index not an int
        msgpack.packb(["chunk", 1, 2, "text", None, True]),  # data not bytes
        msgpack.packb(["chunk", 1, 2, b"d", None, 1]),  # last not a bool
        msgpack.packb(["gone", 1, None]),
    ],
)
def test_malformed_frames_are_refused(data: bytes) -> None:
    with pytest.raises(FrameDecodeError):
        decode_frame(data)
