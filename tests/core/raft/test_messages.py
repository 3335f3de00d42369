"""The versioned msgpack wire format: round trips, and garbage never crashes."""

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduled_db.raft.messages import (
    WIRE_VERSION,
    ConfChange,
    ConfChangeType,
    ConfState,
    DecodeError,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
    decode_message,
    encode_message,
)

ids = st.text(min_size=0, max_size=12)
uints = st.integers(min_value=0, max_value=2**63 - 1)
entries = st.builds(Entry, uints, uints, st.sampled_from(list(EntryType)), st.binary(max_size=64))
snapshots = st.builds(
    Snapshot,
    st.builds(
        SnapshotMeta,
        uints,
        uints,
        st.builds(ConfState, st.tuples(ids, ids), st.tuples(ids)),
    ),
    st.binary(max_size=64),
)
messages = st.builds(
    Message,
    type=st.sampled_from(list(MessageType)),
    to=ids,
    frm=ids,
    term=uints,
    log_term=uints,
    index=uints,
    entries=st.lists(entries, max_size=4).map(tuple),
    commit=uints,
    reject=st.booleans(),
    reject_hint=uints,
    snapshot=st.none() | snapshots,
    context=st.binary(max_size=16),
    stamp=uints,
)


@given(messages)
def test_every_message_round_trips(m: Message) -> None:
    assert decode_message(encode_message(m)) == m


def test_a_body_without_a_stamp_decodes_with_none() -> None:
    """Nodes from before leader leases send 12 fields: their messages decode, with
    stamp 0, which acknowledges nothing (such a cluster's leader holds no lease)."""
    old = [int(MessageType.HEARTBEAT), "b", "a", 3, 0, 0, [], 7, False, 0, None, b""]
    frame = bytes([WIRE_VERSION]) + msgpack.packb(old, use_bin_type=True)
    m = decode_message(frame)
    assert (m.type, m.commit, m.stamp) == (MessageType.HEARTBEAT, 7, 0)


def test_frames_start_with_the_version_byte() -> None:
    frame = encode_message(Message(MessageType.HEARTBEAT, "b", "a", term=3))
    assert frame[0] == WIRE_VERSION


@given(st.binary(max_size=200))
def test_garbage_raises_decode_error_only(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


@given(messages, st.data())
def test_truncated_frames_raise_decode_error(m: Message, data: st.DataObject) -> None:
    frame = encode_message(m)
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    with pytest.raises(DecodeError):
        decode_message(frame[:cut])


@pytest.mark.parametrize(
    "body",
    [
        [99, "a", "b", 0, 0, 0, [], 0, False, 0, None, b""],  # unknown type
        [1, 5, "b", 0, 0, 0, [], 0, False, 0, None, b""],  # id not a string
        [1, "a", "b", -1, 0, 0, [], 0, False, 0, None, b""],  # negative term
        [1, "a", "b", 0, 0, 0, [[1, 1, 0, "txt"]], 0, False, 0, None, b""],  # str data
        [1, "a", "b", 0, 0, 0, [], 0, 1, 0, None, b""],  # reject not a bool
        [1, "a", "b", 0, 0, 0, [], 0, False, 0, None],  # a field missing
        {"type": 1},  # not an array
    ],
)
def test_wrong_shapes_raise_decode_error(body: object) -> None:
    frame = bytes([WIRE_VERSION]) + msgpack.packb(body, use_bin_type=True)
    with pytest.raises(DecodeError):
        decode_message(frame)


def test_other_versions_are_refused() -> None:
    frame = encode_message(Message(MessageType.APP, "b", "a"))
    with pytest.raises(DecodeError, match="version"):
        decode_message(bytes([WIRE_VERSION + 1]) + frame[1:])


def test_conf_change_round_trip_and_garbage() -> None:
    cc = ConfChange(ConfChangeType.ADD_LEARNER, "n4", b"ctx")
    assert ConfChange.decode(cc.encode()) == cc
    with pytest.raises(DecodeError):
        ConfChange.decode(b"\x93\x01\x02")
