"""The snapshot stream's frames: only the three shapes decode; anything else is refused.

The stream itself (pulling a snapshot from a leader into a wiped node) is exercised
end to end by tests/integration/test_cluster_snapshot.py with real node processes;
here, its exchange with storage, played by a probe that answers by the reply the
stream sent (the stream never waits on storage).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from actors.raft.messages import (
    InstallSnapshot,
    SendSnapshotFrame,
    SnapshotFrame,
    SnapshotOffer,
    Tick,
)
from actors.raft.snapshot_stream import (
    FrameDecodeError,
    SnapshotStreamActor,
    _chunk,
    _gone,
    _want,
    decode_frame,
)
from actors.storage.messages import (
    ReadSnapshotChunk,
    SnapshotChunkRead,
    SnapshotChunkStaged,
    SnapshotUnavailable,
    StageSnapshotChunk,
)
from scheduled_db.raft.messages import Message, MessageType, Snapshot, SnapshotMeta
from scheduled_db.state.snapshot_codec import SnapshotCursor
from tests.actors.probe import Inbox, start_probe

T = 10.0


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


# -- the stream's messages with storage: told, and answered by its reply --------------


@pytest.fixture
def stream() -> Iterator[tuple[Any, Inbox, Inbox, Any, Inbox]]:
    storage, stored = start_probe()
    transport, sent = start_probe()
    raft, told = start_probe()
    ref = SnapshotStreamActor.start("n2", storage, transport)
    try:
        yield ref, stored, sent, raft, told
    finally:
        for r in (ref, storage, transport, raft):
            r.stop(timeout=T)


def _frames(sent: Inbox, kind: str, count: int) -> list[list[Any]]:
    """The first ``count`` frames of ``kind`` the stream sent (waits for them)."""
    sent.wait_for(
        SendSnapshotFrame,
        lambda _: len([f for f in _decoded(sent) if f[0] == kind]) >= count,
        timeout=T,
    )
    return [f for f in _decoded(sent) if f[0] == kind][:count]


def _decoded(sent: Inbox) -> list[list[Any]]:
    return [decode_frame(f.data) for f in sent.of_type(SendSnapshotFrame)]


def test_a_follower_stages_each_chunk_once_and_goes_on_when_storage_answers(
    stream: tuple[Any, Inbox, Inbox, Any, Inbox],
) -> None:
    ref, stored, sent, raft, told = stream
    meta = SnapshotMeta(index=40, term=2)
    offer = Message(MessageType.SNAP, "n2", "n1", term=2, snapshot=Snapshot(meta))
    ref.tell(SnapshotOffer(offer, raft))
    assert _frames(sent, "want", 1) == [["want", 40, 0, None]]

    ref.tell(SnapshotFrame("n1", _chunk(40, 0, b"zero", b"k0", False)))
    ref.tell(SnapshotFrame("n1", _chunk(40, 0, b"zero", b"k0", False)))  # a retry's answer
    first = stored.wait_for(StageSnapshotChunk, timeout=T)
    ref.ask(Tick(), timeout=T)  # a barrier: both frames are handled
    assert len(stored.of_type(StageSnapshotChunk)) == 1  # staged once
    assert len(_decoded(sent)) == 1  # nothing asked before storage answers

    assert first.reply is not None
    first.reply(SnapshotChunkStaged(meta, 0, complete=False))
    assert _frames(sent, "want", 2)[1] == ["want", 40, 1, b"k0"]

    ref.tell(SnapshotFrame("n1", _chunk(40, 1, b"one", None, True)))
    stored.wait_for(StageSnapshotChunk, lambda s: s.data == b"one", timeout=T)
    second = stored.of_type(StageSnapshotChunk)[1]
    assert second.reply is not None
    second.reply(SnapshotChunkStaged(meta, 1, complete=True))
    assert told.wait_for(InstallSnapshot, timeout=T) == InstallSnapshot(offer)


def test_a_leader_sends_each_chunk_storage_reads_to_whoever_asked(
    stream: tuple[Any, Inbox, Inbox, Any, Inbox],
) -> None:
    ref, stored, sent, _, _ = stream
    ref.tell(SnapshotFrame("n3", _want(40, 0, None)))
    ref.tell(SnapshotFrame("n4", _want(40, 2, b"k1")))
    stored.wait_for(ReadSnapshotChunk, lambda _: len(stored.of_type(ReadSnapshotChunk)) == 2)
    a, b = stored.of_type(ReadSnapshotChunk)
    assert (a.cursor, b.cursor) == (None, SnapshotCursor(1, b"k1"))
    assert a.reply is not None and b.reply is not None
    # Storage answers in the order it was asked.
    a.reply(SnapshotChunkRead(40, b"first", SnapshotCursor(0, b"k0")))
    b.reply(SnapshotUnavailable(40, 55))
    sent.wait_for(SendSnapshotFrame, lambda _: len(sent.of_type(SendSnapshotFrame)) == 2)
    frames = sent.of_type(SendSnapshotFrame)
    assert [(f.to, decode_frame(f.data)) for f in frames] == [
        ("n3", ["chunk", 40, 0, b"first", b"k0", False]),
        ("n4", ["gone", 40, 55]),
    ]
