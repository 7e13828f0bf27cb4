"""DECTRIS Stream V1 ("legacy"): multipart ZeroMQ messages of JSON headers and raw data.

Message layouts (SIMPLON API manual):

- series start: `{"htype": "dheader-1.0", "series", "header_detail"}`; with detail "basic"
  or "all" a second part holds the detector configuration as JSON; "all" adds pairs of
  `{"htype": "dflatfield-1.0" | "dpixelmask-1.0" | "dcountrate_table-1.0", "shape", "type"}`
  and raw data; an optional last part is the user's header appendix.
- image: `{"htype": "dimage-1.0", "series", "frame", "hash"}`,
  `{"htype": "dimage_d-1.0", "shape": [x, y], "type", "encoding", "size"}`, the data,
  `{"htype": "dconfig-1.0", "start_time", "stop_time", "real_time"}` (ns), optional appendix.
- series end: `{"htype": "dseries_end-1.0", "series"}`.

`encoding` is `[bs<bits>-][lz4]<`: `bs16-lz4<` is bitshuffle-LZ4 in HDF5 filter framing (as
in an HDF5 chunk), `lz4<` one bare LZ4 block, `<` raw little-endian pixels. Note that
`shape` is [x, y] = [width, height], the reverse of the numpy shape.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import codecs
from .messages import EncodedArray, Image, MalformedMessage, SeriesEnd, SeriesStart, plain

__all__ = ["decode", "encode_end", "encode_header", "encode_image", "encoding_for"]

_ENCODING = re.compile(r"^(?:bs(8|16|32)-)?(lz4)?<$")
_HEADER_ARRAYS = {
    "dflatfield-1.0": "flatfield",
    "dpixelmask-1.0": "pixel_mask",
    "dcountrate_table-1.0": "countrate_correction_table",
}


def _json(part, what: str) -> dict:
    try:
        value = json.loads(bytes(part))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _integer(fields: Mapping, key: str, htype: str) -> int:
    value = fields.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedMessage(
            f"{htype} field {key!r} must be a non-negative integer, got {value!r}"
        )
    return value


def _dtype(name: Any) -> np.dtype:
    try:
        dtype = np.dtype(str(name))
    except TypeError as exc:
        raise MalformedMessage(f"unknown pixel type {name!r}") from exc
    if dtype.kind not in "uif":
        raise MalformedMessage(f"unknown pixel type {name!r}")
    return dtype.newbyteorder("<")


def _shape(value: Any, htype: str) -> tuple[int, int]:
    if not (
        isinstance(value, list)
        and len(value) in (2, 3)
        and all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise MalformedMessage(f"{htype} shape must be [x, y] positive integers, got {value!r}")
    return tuple(reversed(value))  # [x, y(, z)] -> numpy (.., y, x)


def decode(parts: Sequence[bytes]) -> SeriesStart | Image | SeriesEnd:
    """Decode one multipart Stream V1 message (image data stay compressed until `.decode()`).

    Raises:
        MalformedMessage: a part is not the JSON the protocol prescribes, or parts are missing.
    """
    if not parts:
        raise MalformedMessage("empty multipart message")
    first = _json(parts[0], "first part")
    htype = first.get("htype")
    if htype == "dimage-1.0":
        if len(parts) < 4:
            raise MalformedMessage(f"dimage-1.0 needs 4 parts, got {len(parts)}")
        detail = _json(parts[1], "dimage_d-1.0 part")
        config = _json(parts[3], "dconfig-1.0 part")
        encoding = detail.get("encoding")
        match = _ENCODING.match(str(encoding))
        if detail.get("htype") != "dimage_d-1.0" or not match:
            raise MalformedMessage(
                f"dimage_d-1.0 part with encoding {encoding!r}; expected e.g. 'bs16-lz4<', "
                "'lz4<' or '<'"
            )
        dtype = _dtype(detail.get("type"))
        if match.group(1):
            compression = "bslz4"
        elif match.group(2):
            compression = "lz4-block"
        else:
            compression = None
        data = bytes(parts[2])
        array = EncodedArray(_shape(detail.get("shape"), "dimage_d-1.0"), dtype, compression, data)
        info = {k: plain(v) for k, v in config.items() if k != "htype"}
        if "hash" in first:
            info["hash"] = first["hash"]
        if len(parts) > 4:
            info["appendix"] = bytes(parts[4]).decode("utf-8", "replace")
        return Image(
            _integer(first, "series", htype),
            _integer(first, "frame", htype),
            {"threshold_1": array},
            None,
            info,
        )
    if htype == "dheader-1.0":
        series = _integer(first, "series", htype)
        detail_level = first.get("header_detail", "none")
        info: dict[str, Any] = {"header_detail": detail_level}
        arrays: dict[str, np.ndarray] = {}
        rest = list(parts[1:])
        if detail_level in ("basic", "all") and rest:
            info.update(plain(_json(rest.pop(0), "detector configuration part")))
        while len(rest) >= 2:
            try:
                header = json.loads(bytes(rest[0]))
            except (ValueError, UnicodeDecodeError):
                break
            name = _HEADER_ARRAYS.get(header.get("htype")) if isinstance(header, dict) else None
            if name is None:
                break
            shape = _shape(header.get("shape"), header["htype"])
            dtype = _dtype(header.get("type"))
            raw = bytes(rest[1])
            if len(raw) != int(np.prod(shape)) * dtype.itemsize:
                raise MalformedMessage(f"{header['htype']} data length does not match its shape")
            arrays[name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
            rest = rest[2:]
        if rest:
            info["appendix"] = bytes(rest[0]).decode("utf-8", "replace")
        return SeriesStart(series, None, info, arrays)
    if htype == "dseries_end-1.0":
        return SeriesEnd(_integer(first, "series", htype))
    raise MalformedMessage(
        f"unknown Stream V1 htype {htype!r}; expected dheader-1.0, dimage-1.0 or dseries_end-1.0"
    )


def encoding_for(dtype, compression: str | None) -> str:
    """The V1 `encoding` string for a pixel type and "bslz4", "lz4" or None."""
    if compression == "bslz4":
        return f"bs{np.dtype(dtype).itemsize * 8}-lz4<"
    if compression == "lz4":
        return "lz4<"
    if compression is None:
        return "<"
    raise ValueError(f"compression must be one of None, 'bslz4', 'lz4', got {compression!r}")


def encode_header(
    series: int,
    config: Mapping[str, Any] | None = None,
    *,
    pixel_mask: np.ndarray | None = None,
) -> list[bytes]:
    """A `dheader-1.0` message: detail "basic" with `config`, "all" if a pixel mask is given."""
    detail = "all" if pixel_mask is not None else ("basic" if config is not None else "none")
    parts = [
        json.dumps(
            {"htype": "dheader-1.0", "series": int(series), "header_detail": detail}
        ).encode()
    ]
    if detail != "none":
        parts.append(json.dumps(dict(config or {})).encode())
    if pixel_mask is not None:
        mask = np.ascontiguousarray(pixel_mask, dtype="<u4")
        shape = list(reversed(mask.shape))
        parts.append(
            json.dumps({"htype": "dpixelmask-1.0", "shape": shape, "type": "uint32"}).encode()
        )
        parts.append(mask.tobytes())
    return parts


def encode_image(
    series: int,
    frame: int,
    image: np.ndarray,
    *,
    compression: str | None = "bslz4",
    start_time: int = 0,
    stop_time: int = 0,
    real_time: int = 0,
) -> list[bytes]:
    """A `dimage-1.0` message (4 parts) for one image; times in nanoseconds.

    Raises:
        ValueError: unknown compression.
        codecs.CodecError: "lz4" on an image that does not compress.
    """
    image = np.ascontiguousarray(image)
    encoding = encoding_for(image.dtype, compression)
    if compression == "bslz4":
        data = codecs.compress(image, "bslz4")
    elif compression == "lz4":
        data = codecs.compress_lz4_block(image)
    else:
        data = image.astype(image.dtype.newbyteorder("<"), copy=False).tobytes()
    return [
        json.dumps(
            {
                "htype": "dimage-1.0",
                "series": int(series),
                "frame": int(frame),
                "hash": hashlib.md5(data).hexdigest(),
            }
        ).encode(),
        json.dumps(
            {
                "htype": "dimage_d-1.0",
                "shape": list(reversed(image.shape)),
                "type": image.dtype.name,
                "encoding": encoding,
                "size": len(data),
            }
        ).encode(),
        data,
        json.dumps(
            {
                "htype": "dconfig-1.0",
                "start_time": int(start_time),
                "stop_time": int(stop_time),
                "real_time": int(real_time),
            }
        ).encode(),
    ]


def encode_end(series: int) -> list[bytes]:
    """A `dseries_end-1.0` message."""
    return [json.dumps({"htype": "dseries_end-1.0", "series": int(series)}).encode()]
