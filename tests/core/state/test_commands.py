"""Command encoding: round trips, and malformed data only ever raises CommandDecodeError."""

from __future__ import annotations

import contextlib
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduled_db.state import commands as c
from tests.command_gen import GOLDEN_SPEC, TRACEPARENT, random_command


@settings(max_examples=200, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_every_command_round_trips(rng: random.Random) -> None:
    cmd = random_command(rng)
    data = c.encode_command(cmd)
    assert data[0] == c.COMMAND_VERSION
    assert c.decode_command(data) == cmd
    # Type for type too (1 == 1.0 == True, but their encodings differ): the leader
    # applies the command it built, the followers the one they decode (actors/storage/proposed.py).
    assert repr(c.decode_command(data)) == repr(cmd)


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 256, 1000])
def test_a_batch_assembled_from_encoded_commands_is_the_batch_s_encoding(n: int) -> None:
    rng = random.Random(n)
    cmds = tuple(_unbatched(rng) for _ in range(n))
    assembled = c.encode_batch([c.encode_command(cmd) for cmd in cmds])
    assert assembled == c.encode_command(c.Batch(cmds))


def test_a_batch_of_more_than_65535_commands_is_assembled_with_a_long_header() -> None:
    cmds = tuple(c.DeleteJob(f"j{i}") for i in range(65_537))
    assert c.encode_batch([c.encode_command(x) for x in cmds]) == c.encode_command(c.Batch(cmds))


def _unbatched(rng: random.Random) -> c.Command:
    while isinstance(cmd := random_command(rng), c.Batch):
        pass
    return cmd


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_garbage_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(c.CommandDecodeError):
        c.decode_command(data)


@settings(max_examples=200, deadline=None)
@given(
    body=st.recursive(
        st.none() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(), st.lists
    )
)
def test_wrong_shapes_raise_only_decode_error(body: object) -> None:
    data = bytes([c.COMMAND_VERSION]) + msgpack.packb(body, use_bin_type=True)
    for kind in c.CommandKind:
        for payload in (data, bytes([1]) + msgpack.packb([int(kind), body], use_bin_type=True)):
            with contextlib.suppress(c.CommandDecodeError):
                c.decode_command(payload)


def test_rejects_other_versions_and_nested_batches() -> None:
    good = c.encode_command(c.DeleteJob("x"))
    with pytest.raises(c.CommandDecodeError, match="version"):
        c.decode_command(bytes([2]) + good[1:])
    nested = [int(c.CommandKind.BATCH), [[int(c.CommandKind.BATCH), []]]]
    with pytest.raises(c.CommandDecodeError, match="nest"):
        c.decode_command(bytes([1]) + msgpack.packb(nested))
    negative = [int(c.CommandKind.CANCEL), "x", -1]
    with pytest.raises(c.CommandDecodeError):
        c.decode_command(bytes([1]) + msgpack.packb(negative))


# Exactly what the code before reasons existed wrote for CancelJob("job-1", 1_800_000_000_000).
OLD_CANCEL = bytes.fromhex("0193") + b"\x03\xa5job-1" + bytes.fromhex("cf000001a3185c5000")


def test_a_cancel_written_before_reasons_existed_still_decodes() -> None:
    assert c.decode_command(OLD_CANCEL) == c.CancelJob("job-1", 1_800_000_000_000)
    # A cancel without a reason is still encoded as it was: old nodes read it.
    assert c.encode_command(c.CancelJob("job-1", 1_800_000_000_000)) == OLD_CANCEL
    batch = c.decode_command(bytes([1]) + msgpack.packb([int(c.CommandKind.BATCH), [[3, "a", 5]]]))
    assert batch == c.Batch((c.CancelJob("a", 5),))


def test_a_cancel_reason_travels_in_the_entry() -> None:
    cmd = c.CancelJob("tarea-año", 7, "pagada ✓ \n por el cliente")
    assert c.decode_command(c.encode_command(cmd)) == cmd
    too_long = bytes([1]) + msgpack.packb([int(c.CommandKind.CANCEL), "a", 5, "r", 1])
    with pytest.raises(c.CommandDecodeError, match="number of fields"):
        c.decode_command(too_long)
    not_text = bytes([1]) + msgpack.packb([int(c.CommandKind.CANCEL), "a", 5, 7])
    with pytest.raises(c.CommandDecodeError):
        c.decode_command(not_text)


# What the code before traceparents existed wrote for the create of GOLDEN_SPEC (hex).
OLD_CREATE = bytes.fromhex(
    "0194018ca26964a8676f6c64656e2d31a474797065a5756e69636fac74696d657374616d705f6d73cf00"
    "0001ba60d33800af63726f6e5f65787072657373696f6ec0a874696d657a6f6e65a3555443ac6c617374"
    "5f646174655f6d73c0ab776562686f6f6b5f75726cb868747470733a2f2f6578616d706c652e636f6d2f"
    "686f6f6ba77061796c6f616481a16e01ae6d6973666972655f706f6c696379a9666972655f6f6e6365ac"
    "6d61785f617474656d707473c0aa74696d656f75745f6d73c0a66c6162656c739192a47465616da161cf"
    "000001a3185c5000cf000001ba60d33800"
)


def test_a_create_without_a_traceparent_is_encoded_as_before() -> None:
    untraced = c.CreateJob(GOLDEN_SPEC, 1_800_000_000_000, 1_900_000_000_000)
    assert c.encode_command(untraced) == OLD_CREATE  # tracing off: not one byte more
    assert c.decode_command(OLD_CREATE) == untraced


def test_a_traceparent_travels_in_the_create() -> None:
    traced = c.CreateJob(GOLDEN_SPEC, 1_800_000_000_000, 1_900_000_000_000, TRACEPARENT)
    data = c.encode_command(traced)
    assert c.decode_command(data) == traced
    assert data.startswith(bytes([1, 0x95])) and TRACEPARENT.encode() in data
    not_text = msgpack.unpackb(OLD_CREATE[1:]) + [7]
    with pytest.raises(c.CommandDecodeError):
        c.decode_command(bytes([1]) + msgpack.packb(not_text, use_bin_type=True))
