"""The codec: packets to record bytes and back, without pickle."""

from __future__ import annotations

import pickle

import numpy
import pytest

from fbp.codec import HEADER_BYTES, ArrayLayout, decode, encode
from fbp.errors import PortTypeError
from fbp.packet import Packet, PacketKind


@pytest.mark.parametrize(
    "value",
    [
        0,
        -5,
        2**62,
        1.5,
        "text",
        "",
        None,
        True,
        [1, "a", None],
        {"k": [1, 2], "n": {"x": 1.0}},
        b"\x00raw bytes",
    ],
)
def test_values_round_trip_with_metadata(value):
    packet = decode(encode(Packet(value, seq=7, timestamp=12.5, meta={"run": 3})))
    assert packet.value == value
    assert (packet.seq, packet.timestamp, packet.meta) == (7, 12.5, {"run": 3})


def test_packet_without_metadata_has_none():
    packet = decode(encode(Packet(1)))
    assert (packet.seq, packet.timestamp, packet.meta) == (None, None, None)


@pytest.mark.parametrize("dtype", ["uint16", "float32", ">f8", "complex64", "bool"])
def test_arrays_are_zero_copy_views_with_aligned_data(dtype):
    array = (numpy.arange(24) % 2).astype(dtype).reshape(2, 3, 4)
    record = encode(Packet(array, seq=1))
    decoded = decode(record)
    assert decoded.value.dtype == array.dtype and decoded.value.shape == (2, 3, 4)
    numpy.testing.assert_array_equal(decoded.value, array)
    assert not decoded.value.flags.writeable
    offset = (
        decoded.value.__array_interface__["data"][0]
        - numpy.frombuffer(record, numpy.uint8).__array_interface__["data"][0]
    )
    assert offset % 64 == 0 and offset >= HEADER_BYTES


def test_non_contiguous_arrays_are_written_in_c_order():
    array = numpy.arange(20, dtype=numpy.int64).reshape(4, 5)[:, ::2]
    numpy.testing.assert_array_equal(decode(encode(Packet(array))).value, array)


def test_array_layout_fills_a_slot_in_place():
    layout = ArrayLayout((3, 4), "uint16", seq=9, meta={"a": 1})
    slot = bytearray(layout.nbytes)
    layout.write_head(memoryview(slot))[...] = 7
    packet = decode(slot)
    assert packet.seq == 9 and packet.meta == {"a": 1}
    assert packet.value.sum() == 7 * 12


def test_arrays_nested_in_records_travel_as_an_extension():
    value = {"peaks": numpy.array([[1.0, 2.0]], numpy.float32), "n": numpy.int64(1)}
    decoded = decode(encode(Packet(value))).value
    numpy.testing.assert_array_equal(decoded["peaks"], value["peaks"])
    assert decoded["n"] == 1 and type(decoded["n"]) is int


def test_brackets_keep_their_kind():
    packet = decode(encode(Packet("run-1", kind=PacketKind.OPEN)), PacketKind.OPEN)
    assert packet.kind == PacketKind.OPEN and packet.is_bracket and packet.value == "run-1"


def test_objects_that_would_need_pickle_are_refused():
    class Thing:
        pass

    with pytest.raises(PortTypeError, match="cannot send a Thing"):
        encode(Packet(Thing()))
    with pytest.raises(PortTypeError, match="object references"):
        encode(Packet(numpy.array([Thing()], dtype=object)))


def test_no_pickle_on_the_wire():
    record = encode(Packet({"a": [1, 2]}, seq=1))
    assert pickle.PROTO not in record[:2]


def test_garbage_is_not_a_packet():
    with pytest.raises(ValueError, match="too short"):
        decode(b"abc")
    with pytest.raises(ValueError, match="unknown value kind 9"):
        decode(bytes([9]) + bytes(23))
