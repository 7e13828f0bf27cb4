"""Packets to ring records and back: a fixed header, then msgpack, raw bytes or array data.

Record layout (little-endian):

    offset 0   u8  value kind (MSGPACK, BYTES, ARRAY, NONE)
           1   u8  ndim (arrays)
           2   u16 dtype string length (arrays)
           4   u32 metadata length (msgpack map of user keys; 0 = none)
           8   i64 seq (NO_SEQ = none)
          16   f64 timestamp (0.0 = none)
          24   metadata bytes
               then: msgpack value | raw bytes | dtype string, shape (ndim x i64),
               zero padding to a multiple of 64, array data (C order)

Arrays are never pickled or msgpacked: their bytes go straight into the ring slot, aligned to
64 bytes so SIMD readers get aligned data, and come out as a read-only numpy view on the
record (zero-copy; the slot is freed when the last view goes). A source can reserve the slot
and fill the array in place (`ArrayLayout` + `fbp.component.OutPort.reserve_array`), so a
frame is written once. Arrays nested inside records travel as a msgpack extension (copied).
Nothing is ever unpickled.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import numpy

from fbp.errors import PortTypeError
from fbp.packet import Packet

__all__ = ["HEADER", "ArrayLayout", "decode", "encode", "encode_value"]

HEADER = struct.Struct("<BBHIqd")
HEADER_BYTES = HEADER.size
NO_SEQ = -(2**63)
DATA_ALIGN = 64

MSGPACK, BYTES, ARRAY, NONE = 0, 1, 2, 3
_EXT_NDARRAY = 1


def _default(value: Any) -> Any:
    """msgpack fallback: numpy scalars become Python numbers, arrays an extension."""
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, numpy.ndarray):
        array = numpy.ascontiguousarray(value)
        head = msgpack.packb([array.dtype.str, list(array.shape)])
        return msgpack.ExtType(_EXT_NDARRAY, head + array.tobytes())
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(
        f"cannot send a {type(value).__name__} ({value!r:.60}): a packet value must be a numpy "
        "array, bytes, or a msgpack-able value (None, bool, int, float, str, list, dict)"
    )


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_NDARRAY:
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        dtype, shape = unpacker.unpack()
        start = unpacker.tell()
        return numpy.frombuffer(data, dtype=numpy.dtype(dtype), offset=start).reshape(shape)
    return msgpack.ExtType(code, data)


_packer = msgpack.Packer(default=_default, use_bin_type=True, autoreset=True)


def _pack(value: Any) -> bytes:
    try:
        return _packer.pack(value)
    except TypeError as exc:
        raise PortTypeError(str(exc)) from None
    except (OverflowError, ValueError) as exc:
        raise PortTypeError(f"cannot encode {value!r:.60} as msgpack: {exc}") from None


def _unpack(buffer: Any) -> Any:
    return msgpack.unpackb(buffer, raw=False, ext_hook=_ext_hook, strict_map_key=False)


def _header(kind: int, ndim: int, dtype_len: int, meta: bytes, seq: Any, ts: Any) -> bytes:
    return HEADER.pack(kind, ndim, dtype_len, len(meta), NO_SEQ if seq is None else seq, ts or 0.0)


class ArrayLayout:
    """Where an array's header and data go in one record.

    Attributes:
        head: the bytes before the data (header, metadata, dtype, shape, padding).
        nbytes: the whole record's size.
        data_offset: where the array data starts (a multiple of 64).
    """

    __slots__ = ("count", "data_offset", "dtype", "head", "nbytes", "shape")

    def __init__(
        self,
        shape: tuple,
        dtype: Any,
        seq: int | None = None,
        timestamp: float | None = None,
        meta: dict | None = None,
    ) -> None:
        self.dtype = numpy.dtype(dtype)
        if self.dtype.hasobject:
            raise PortTypeError(f"arrays of dtype {self.dtype} cannot be sent (object references)")
        self.shape = tuple(int(n) for n in shape)
        self.count = math.prod(self.shape)
        dtype_text = self.dtype.str.encode()
        meta_bytes = _pack(meta) if meta else b""
        head = (
            _header(ARRAY, len(self.shape), len(dtype_text), meta_bytes, seq, timestamp)
            + meta_bytes
            + dtype_text
            + struct.pack(f"<{len(self.shape)}q", *self.shape)
        )
        self.data_offset = -(-len(head) // DATA_ALIGN) * DATA_ALIGN
        self.head = head + bytes(self.data_offset - len(head))
        self.nbytes = self.data_offset + self.count * self.dtype.itemsize

    def write_head(self, slot: memoryview) -> numpy.ndarray:
        """Write the header into `slot` and return a writable array over its data area."""
        slot[: self.data_offset] = self.head
        return numpy.frombuffer(slot, self.dtype, self.count, self.data_offset).reshape(self.shape)


def encode_value(
    value: Any, seq: int | None = None, timestamp: float | None = None, meta: dict | None = None
) -> bytes | ArrayLayout:
    """Encode a non-array value as one record's bytes; for arrays return their ArrayLayout.

    Raises:
        PortTypeError: the value cannot be encoded (e.g. an arbitrary object).
    """
    if isinstance(value, numpy.ndarray):
        return ArrayLayout(value.shape, value.dtype, seq, timestamp, meta)
    meta_bytes = _pack(meta) if meta else b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _header(BYTES, 0, 0, meta_bytes, seq, timestamp) + meta_bytes + bytes(value)
    if value is None:
        return _header(NONE, 0, 0, meta_bytes, seq, timestamp) + meta_bytes
    return _header(MSGPACK, 0, 0, meta_bytes, seq, timestamp) + meta_bytes + _pack(value)


def encode(packet: Packet) -> bytes:
    """Encode a whole packet (array data included) into one bytes object.

    Used off the hot path (tests, IIPs, bridges); ports write arrays straight into the ring.

    Raises:
        PortTypeError: the value cannot be encoded.
    """
    encoded = encode_value(packet.value, packet.seq, packet.timestamp, packet.meta)
    if isinstance(encoded, ArrayLayout):
        out = bytearray(encoded.nbytes)
        encoded.write_head(memoryview(out))[...] = packet.value
        return bytes(out)
    return encoded


def decode(record: Any, kind: int = 0) -> Packet:
    """Decode one record (any buffer) into a Packet; arrays are read-only views on it.

    Raises:
        ValueError: the record is not an fbp packet (too short or an unknown value kind).
    """
    view = memoryview(record)
    if len(view) < HEADER_BYTES:
        raise ValueError(f"record of {len(view)} bytes is too short for an fbp packet header")
    value_kind, ndim, dtype_len, meta_len, seq, timestamp = HEADER.unpack_from(view)
    offset = HEADER_BYTES
    meta = None
    if meta_len:
        meta = _unpack(view[offset : offset + meta_len])
        offset += meta_len
    if value_kind == MSGPACK:
        value = _unpack(view[offset:])
    elif value_kind == ARRAY:
        dtype = numpy.dtype(bytes(view[offset : offset + dtype_len]).decode())
        offset += dtype_len
        shape = struct.unpack_from(f"<{ndim}q", view, offset)
        offset = -(-(offset + 8 * ndim) // DATA_ALIGN) * DATA_ALIGN
        value = numpy.frombuffer(record, dtype, math.prod(shape), offset).reshape(shape)
    elif value_kind == BYTES:
        value = bytes(view[offset:])
    elif value_kind == NONE:
        value = None
    else:
        raise ValueError(f"record has unknown value kind {value_kind}; not an fbp packet")
    return Packet(value, None if seq == NO_SEQ else seq, timestamp or None, meta, kind)
