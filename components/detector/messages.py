"""The protocol-neutral messages of a DECTRIS stream: series start, image, series end.

Both Stream V1 (JSON multipart) and Stream V2 (CBOR) decode to these. Images stay
compressed (`EncodedArray`) until the caller decodes them, so a receiver can decode straight
into a ring slot whose size it learns from the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fbp.errors import FBPError

from . import codecs

__all__ = ["EncodedArray", "Image", "MalformedMessage", "SeriesEnd", "SeriesStart"]


class MalformedMessage(FBPError, ValueError):
    """A stream message that does not follow the protocol; the receiver counts and skips it."""


@dataclass
class EncodedArray:
    """An image as it arrived: shape, pixel type and (maybe compressed) bytes.

    Attributes:
        shape: (rows, columns).
        dtype: pixel type.
        compression: None (raw), "bslz4", "lz4" (both in HDF5 framing) or "lz4-block" (one
            bare LZ4 block, Stream V1 `lz4<`).
        data: the bytes as received.
        order: "C" (row-major, CBOR tag 40) or "F" (column-major, tag 1040).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    compression: str | None
    data: bytes
    order: str = "C"

    @property
    def nbytes(self) -> int:
        """Size of the decoded image in bytes."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def decode(self, out: np.ndarray | None = None) -> np.ndarray:
        """The decoded image, written into `out` (shape and dtype must match) if given.

        Raises:
            MalformedMessage: the bytes do not decode to an image of this shape and type.
        """
        shape = self.shape if self.order == "C" else tuple(reversed(self.shape))
        try:
            if self.compression is None:
                if len(self.data) != self.nbytes:
                    raise MalformedMessage(
                        f"raw image of shape {self.shape} {self.dtype} needs {self.nbytes} "
                        f"bytes, got {len(self.data)}"
                    )
                image = np.frombuffer(self.data, dtype=self.dtype).reshape(shape)
                if out is not None:
                    out[...] = image
                    image = out
            elif self.compression == "lz4-block":
                image = codecs.decompress_lz4_block(self.data, shape, self.dtype, out=out)
            else:
                image = codecs.decompress(self.data, self.compression, shape, self.dtype, out=out)
        except codecs.CodecError as exc:
            raise MalformedMessage(str(exc)) from exc
        return image if self.order == "C" else image.T


@dataclass
class SeriesStart:
    """A series begins (V2 `start`, V1 `dheader-1.0`).

    Attributes:
        series_id: the detector's series number.
        unique_id: V2 `series_unique_id` (None in V1).
        info: the other fields, as plain values (JSON/msgpack-able).
        arrays: arrays sent with the header (e.g. "pixel_mask/threshold_1", "flatfield").
        seen: False when the receiver never saw the start and made this one up on the first
            image of the series.
    """

    series_id: int
    unique_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    seen: bool = True


@dataclass
class Image:
    """One exposure (V2 `image`, V1 `dimage-1.0`).

    Attributes:
        series_id: the series it belongs to.
        image_id: the image number within the series (V1 `frame`).
        channels: channel name -> encoded image (V1 has one channel, "threshold_1").
        unique_id: V2 `series_unique_id` (None in V1).
        info: times and user data, as plain values.
    """

    series_id: int
    image_id: int
    channels: dict[str, EncodedArray]
    unique_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeriesEnd:
    """A series ended (V2 `end`, V1 `dseries_end-1.0`)."""

    series_id: int
    unique_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """`value` as msgpack-able plain data: datetimes become ISO strings, tuples lists."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
