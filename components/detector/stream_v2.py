"""DECTRIS Stream V2: one CBOR map per ZeroMQ message (`start`, `image`, `end`).

Field names follow the DECTRIS Stream V2 documentation. Images are RFC 8746
multi-dimensional arrays (tag 40, row-major; 1040, column-major) of typed arrays (tags
64-87), whose bytes may be a DECTRIS compressed byte string (tag 56500:
`[algorithm, element size, data]`, algorithm "bslz4" or "lz4" in HDF5 filter framing).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import cbor2
import numpy as np

from . import codecs
from .messages import EncodedArray, Image, MalformedMessage, SeriesEnd, SeriesStart, plain

__all__ = ["decode", "encode_end", "encode_image", "encode_start"]

TAG_MULTIDIM_ROW_MAJOR = 40
TAG_MULTIDIM_COLUMN_MAJOR = 1040
TAG_DECTRIS_COMPRESSION = 56500

# RFC 8746 typed-array tags: 0b010_f_s_e_ll (float, signed, little-endian, size class).
_TYPED_ARRAY_TAGS: dict[int, np.dtype] = {}
for _tag in range(64, 88):
    _bits = _tag - 64
    _float, _signed, _little, _size = _bits >> 4 & 1, _bits >> 3 & 1, _bits >> 2 & 1, _bits & 3
    if _float:
        if _signed or _size == 3:
            continue  # float128 and the reserved float codes
        _kind, _itemsize = "f", 2 << _size
    else:
        if _tag == 76:
            continue  # reserved
        _kind, _itemsize = ("i" if _signed else "u"), 1 << _size
    _order = "|" if _itemsize == 1 else ("<" if _little else ">")
    _TYPED_ARRAY_TAGS[_tag] = np.dtype(f"{_order}{_kind}{_itemsize}")
_LITTLE_ENDIAN_TAGS = {
    dtype.str: tag for tag, dtype in _TYPED_ARRAY_TAGS.items() if tag != 68 and dtype.str[0] in "<|"
}


class _Compressed:
    def __init__(self, algorithm: str, data: bytes) -> None:
        self.algorithm, self.data = algorithm, data


class _Typed:
    def __init__(self, dtype: np.dtype, payload: bytes | _Compressed) -> None:
        self.dtype, self.payload = dtype, payload


def _tag_hook(*args: Any) -> Any:
    # cbor2 5 calls tag_hook(decoder, tag), cbor2 6 calls tag_hook(tag, immutable).
    tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
    number, value = tag.tag, tag.value
    if number == TAG_DECTRIS_COMPRESSION:
        if not (
            isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[2], bytes)
        ):
            raise MalformedMessage("tag 56500 must hold [algorithm, element size, bytes]")
        return _Compressed(str(value[0]), value[2])
    if number in _TYPED_ARRAY_TAGS:
        if not isinstance(value, (bytes, _Compressed)):
            raise MalformedMessage(f"typed array tag {number} must hold a byte string")
        return _Typed(_TYPED_ARRAY_TAGS[number], value)
    if number in (TAG_MULTIDIM_ROW_MAJOR, TAG_MULTIDIM_COLUMN_MAJOR):
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise MalformedMessage(f"tag {number} must hold [dimensions, array]")
        dims, array = value
        if not (
            isinstance(dims, (list, tuple)) and all(isinstance(d, int) and d > 0 for d in dims)
        ):
            raise MalformedMessage(f"multi-dimensional array has bad dimensions {dims!r}")
        if not isinstance(array, _Typed):
            raise MalformedMessage("multi-dimensional array must hold a typed array")
        order = "C" if number == TAG_MULTIDIM_ROW_MAJOR else "F"
        payload = array.payload
        if isinstance(payload, _Compressed):
            compression, data = payload.algorithm, payload.data
            if compression not in codecs.ALGORITHMS:
                raise MalformedMessage(f"unknown compression {compression!r}")
        else:
            compression, data = None, payload
        return EncodedArray(tuple(dims), array.dtype, compression, data, order)
    return tag


def _loads(message) -> Mapping:
    try:
        decoded = cbor2.loads(bytes(message), tag_hook=_tag_hook)
    except MalformedMessage:
        raise
    except Exception as exc:  # cbor2 raises several types for bad input
        cause = exc.__cause__ if isinstance(exc.__cause__, MalformedMessage) else None
        if cause is not None:
            raise cause from None
        raise MalformedMessage(f"not valid CBOR: {exc}") from exc
    if not isinstance(decoded, Mapping):
        raise MalformedMessage(f"a Stream V2 message is a CBOR map, got {type(decoded).__name__}")
    return decoded


def _integer(fields: Mapping, key: str) -> int:
    value = fields.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedMessage(f"field {key!r} must be a non-negative integer, got {value!r}")
    return value


def _decode_array(value: Any) -> np.ndarray:
    if isinstance(value, EncodedArray):
        return value.decode()
    if isinstance(value, _Typed) and isinstance(value.payload, bytes):
        return np.frombuffer(value.payload, dtype=value.dtype)
    return np.asarray(value)


def decode(message) -> SeriesStart | Image | SeriesEnd:
    """Decode one Stream V2 message (image data stay compressed until `.decode()`).

    Raises:
        MalformedMessage: not CBOR, not a map, unknown `type`, or a required field missing.
    """
    fields = _loads(message)
    kind = fields.get("type")
    unique_id = fields.get("series_unique_id")
    if kind == "image":
        data = fields.get("data")
        if not isinstance(data, Mapping) or not data:
            raise MalformedMessage("image message needs a non-empty 'data' map of channels")
        channels = {}
        for name, array in data.items():
            if not isinstance(array, EncodedArray):
                raise MalformedMessage(f"image channel {name!r} is not a multi-dimensional array")
            channels[str(name)] = array
        info = {k: plain(v) for k, v in fields.items() if k not in ("type", "data")}
        return Image(
            _integer(fields, "series_id"), _integer(fields, "image_id"), channels, unique_id, info
        )
    if kind == "start":
        info, arrays = {}, {}
        for key, value in fields.items():
            if key == "type":
                continue
            if isinstance(value, Mapping) and any(
                isinstance(v, (EncodedArray, _Typed)) for v in value.values()
            ):
                for channel, array in value.items():
                    arrays[f"{key}/{channel}"] = _decode_array(array)
            elif isinstance(value, (EncodedArray, _Typed)):
                arrays[key] = _decode_array(value)
            else:
                info[key] = plain(value)
        return SeriesStart(_integer(fields, "series_id"), unique_id, info, arrays)
    if kind == "end":
        info = {k: plain(v) for k, v in fields.items() if k != "type"}
        return SeriesEnd(_integer(fields, "series_id"), unique_id, info)
    raise MalformedMessage(f"unknown Stream V2 message type {kind!r}; expected start, image or end")


def _array_tag(array: np.ndarray, compression: str | None) -> cbor2.CBORTag:
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    array = array.astype(dtype, copy=False)
    tag = _LITTLE_ENDIAN_TAGS.get(np.dtype(dtype).str)
    if tag is None:
        raise ValueError(f"no CBOR typed-array tag for dtype {array.dtype}")
    if compression is None:
        payload: Any = array.tobytes()
    else:
        element_size = array.dtype.itemsize if compression == "bslz4" else 0
        payload = cbor2.CBORTag(
            TAG_DECTRIS_COMPRESSION,
            [compression, element_size, codecs.compress(array, compression)],
        )
    return cbor2.CBORTag(TAG_MULTIDIM_ROW_MAJOR, [list(array.shape), cbor2.CBORTag(tag, payload)])


def encode_start(
    series_id: int,
    unique_id: str,
    info: Mapping[str, Any] | None = None,
    *,
    channels: tuple[str, ...] = ("threshold_1",),
    pixel_mask: np.ndarray | None = None,
) -> bytes:
    """A `start` message; `info` adds fields such as `image_size_x` or `number_of_images`.

    Raises:
        ValueError: an array has a dtype CBOR typed arrays cannot express.
    """
    fields: dict[str, Any] = {
        "type": "start",
        "series_id": int(series_id),
        "series_unique_id": unique_id,
        "arm_date": datetime.datetime.now(datetime.UTC),
        "channels": list(channels),
    }
    fields.update(info or {})
    if pixel_mask is not None:
        fields["pixel_mask"] = {channels[0]: _array_tag(pixel_mask.astype(np.uint32), "bslz4")}
        fields["pixel_mask_enabled"] = True
    return cbor2.dumps(fields)


def encode_image(
    series_id: int,
    unique_id: str,
    image_id: int,
    channels: Mapping[str, np.ndarray],
    *,
    compression: str | None = "bslz4",
    start_time: tuple[int, int] = (0, 1),
    stop_time: tuple[int, int] = (0, 1),
    real_time: tuple[int, int] = (0, 1),
    user_data: Any = None,
) -> bytes:
    """An `image` message with one array per channel, compressed with "bslz4", "lz4" or None.

    Raises:
        ValueError: an unknown compression or an array dtype CBOR cannot express.
    """
    if compression not in (None, *codecs.ALGORITHMS):
        raise ValueError(f"compression must be one of None, 'bslz4', 'lz4', got {compression!r}")
    fields = {
        "type": "image",
        "series_id": int(series_id),
        "series_unique_id": unique_id,
        "image_id": int(image_id),
        "start_time": list(start_time),
        "stop_time": list(stop_time),
        "real_time": list(real_time),
        "data": {name: _array_tag(array, compression) for name, array in channels.items()},
    }
    if user_data is not None:
        fields["user_data"] = user_data
    return cbor2.dumps(fields)


def encode_end(series_id: int, unique_id: str) -> bytes:
    """An `end` message."""
    return cbor2.dumps({"type": "end", "series_id": int(series_id), "series_unique_id": unique_id})
