"""Bitshuffle-LZ4 and LZ4 in HDF5 filter framing, as DECTRIS detectors send them.

Both stream protocols carry images compressed exactly like an HDF5 chunk written with the
bitshuffle filter (32008, LZ4 inside) or the LZ4 filter (32004). Rather than re-implement
either codec, this module runs the real filters that `hdf5plugin` ships: it keeps a tiny
in-memory HDF5 file per (shape, dtype, algorithm) whose one dataset has one chunk the size
of a frame, and moves compressed chunks in and out of it with `write_direct_chunk` /
`read_direct_chunk`. Decoding is then HDF5 reading that chunk through its filter (straight
into the caller's buffer), encoding is HDF5 writing it. The chunk cache is switched off so
every read really decodes the chunk just written.

Stream V1's `lz4<` encoding is one bare LZ4 block without any framing. The LZ4 filter's
framing of a single block is a fixed 16-byte prefix (original size, block size, block
length; big-endian), so a bare block is wrapped in (or stripped of) that prefix and goes
through the same filter: no second LZ4 binding is needed.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict

import h5py
import hdf5plugin
import numpy as np

__all__ = [
    "ALGORITHMS",
    "CodecError",
    "compress",
    "compress_lz4_block",
    "decompress",
    "decompress_lz4_block",
]

ALGORITHMS = ("bslz4", "lz4")
_CACHE_LIMIT = 16
_LZ4_PREFIX = struct.Struct(">QII")  # original size, block size, first block's length


class CodecError(ValueError):
    """Compressed data that cannot be decoded (corrupt, truncated, or the wrong size)."""


class _ChunkCodec:
    """One in-memory dataset with a single frame-sized chunk behind the HDF5 filter."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, algorithm: str) -> None:
        if algorithm == "bslz4":
            options = hdf5plugin.Bitshuffle(cname="lz4")
        else:
            # One LZ4 block per frame (HDF5 lz4 filter block size in bytes, capped at 2 GiB
            # by the format): matches what detectors send and makes Stream V1 blocks bare.
            options = hdf5plugin.LZ4(nbytes=min(int(np.prod(shape)) * dtype.itemsize, 0x7E000000))
        self.file = h5py.File(
            f"fbp-codec-{id(self)}", "w", driver="core", backing_store=False, rdcc_nbytes=0
        )
        self.dataset = self.file.create_dataset(
            "frame", shape=shape, dtype=dtype, chunks=shape, **options
        )
        self.origin = (0,) * len(shape)
        self.lock = threading.Lock()


_codecs: OrderedDict[tuple, _ChunkCodec] = OrderedDict()
_codecs_lock = threading.Lock()


def _codec(shape, dtype, algorithm: str) -> _ChunkCodec:
    if algorithm not in ALGORITHMS:
        raise CodecError(f"unknown compression {algorithm!r}; supported: {', '.join(ALGORITHMS)}")
    shape = tuple(int(n) for n in shape)
    if not shape or min(shape) <= 0:
        raise CodecError(f"image shape must be positive, got {shape}")
    key = (shape, np.dtype(dtype).str, algorithm)
    with _codecs_lock:
        codec = _codecs.get(key)
        if codec is None:
            codec = _codecs[key] = _ChunkCodec(shape, np.dtype(dtype), algorithm)
            if len(_codecs) > _CACHE_LIMIT:
                _codecs.popitem(last=False)[1].file.close()
        else:
            _codecs.move_to_end(key)
        return codec


def compress(array: np.ndarray, algorithm: str) -> bytes:
    """Compress a whole image with "bslz4" or "lz4" in HDF5 filter framing.

    Raises:
        CodecError: unknown algorithm or empty array.
    """
    array = np.ascontiguousarray(array)
    codec = _codec(array.shape, array.dtype, algorithm)
    with codec.lock:
        codec.dataset.write_direct(array)
        _, chunk = codec.dataset.id.read_direct_chunk(codec.origin)
    return chunk


def decompress(data, algorithm: str, shape, dtype, out: np.ndarray | None = None) -> np.ndarray:
    """Decode one image compressed with "bslz4" or "lz4" in HDF5 filter framing.

    Args:
        data: the compressed bytes (any buffer).
        algorithm: "bslz4" or "lz4".
        shape: image shape (rows, columns).
        dtype: pixel type.
        out: optional C-contiguous array of that shape and dtype to decode into (e.g. a ring
            slot); a new array is made otherwise.

    Returns:
        The decoded image (`out` when given).

    Raises:
        CodecError: unknown algorithm, or data that do not decode to exactly that image.
    """
    dtype = np.dtype(dtype)
    codec = _codec(shape, dtype, algorithm)
    if out is None:
        out = np.empty(codec.dataset.shape, dtype=dtype)
    elif out.shape != codec.dataset.shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise CodecError(
            f"out must be a C-contiguous {dtype} array of shape {codec.dataset.shape}, got "
            f"{out.dtype} {out.shape}"
        )
    payload = bytes(data) if not isinstance(data, bytes) else data
    _check_framing(
        payload, algorithm, int(np.prod(codec.dataset.shape)) * dtype.itemsize, dtype.itemsize
    )
    with codec.lock:
        try:
            codec.dataset.id.write_direct_chunk(codec.origin, payload)
            codec.dataset.read_direct(out)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CodecError(
                f"{algorithm} data ({len(payload)} bytes) failed to decode: {exc}"
            ) from exc
    return out


def _check_framing(payload: bytes, algorithm: str, nbytes: int, itemsize: int) -> None:
    """Walk the block structure of the framing before any filter sees the data.

    The filters trust their input: they read each block's length from the data and do not
    know how long the buffer is, so a corrupt length would make them read past its end.
    Both framings start with the big-endian uncompressed size and the block size; then come
    length-prefixed blocks (bitshuffle also appends the last `size % 8` elements raw). A
    malformed message must become an error here, never a crash in C.

    Raises:
        CodecError: the framing does not describe exactly `nbytes` of image.
    """
    if len(payload) < 16:
        raise CodecError(f"{algorithm} data too short ({len(payload)} bytes) to hold a header")
    size, block_bytes = struct.unpack_from(">QI", payload)
    if size != nbytes:
        raise CodecError(
            f"{algorithm} data decode to {size} bytes but the image needs {nbytes} bytes "
            "(shape or dtype do not match the data)"
        )
    if algorithm == "bslz4":
        block_elements = block_bytes // itemsize
        if block_bytes % itemsize or block_elements % 8 or block_elements == 0:
            raise CodecError(f"bslz4 block size {block_bytes} bytes is invalid")
        elements = size // itemsize
        last = elements % block_elements
        blocks = elements // block_elements + (1 if last - last % 8 else 0)
        raw_tail = (last % 8) * itemsize
        position = 12
    else:
        if block_bytes == 0:
            raise CodecError("lz4 block size 0 is invalid")
        blocks = -(-size // block_bytes)
        raw_tail = 0
        position = 12
    for _ in range(blocks):
        if position + 4 > len(payload):
            raise CodecError(f"{algorithm} data truncated at byte {position} of {len(payload)}")
        (length,) = struct.unpack_from(">I", payload, position)
        position += 4 + length
        if position > len(payload):
            raise CodecError(
                f"{algorithm} block of {length} bytes runs past the end of the data "
                f"({len(payload)} bytes)"
            )
    if position + raw_tail != len(payload):
        raise CodecError(
            f"{algorithm} data are {len(payload)} bytes but the blocks account for "
            f"{position + raw_tail}"
        )


def compress_lz4_block(array: np.ndarray) -> bytes:
    """One bare LZ4 block of the whole image (Stream V1 encoding `lz4<`).

    Raises:
        CodecError: the image did not compress (the framing would have stored it raw, which
            a bare block cannot express).
    """
    array = np.ascontiguousarray(array)
    framed = compress(array, "lz4")
    size, block, length = _LZ4_PREFIX.unpack_from(framed)
    if block < size or length == size:
        raise CodecError("image does not fit one compressed LZ4 block; use bslz4 instead")
    return framed[_LZ4_PREFIX.size : _LZ4_PREFIX.size + length]


def decompress_lz4_block(data, shape, dtype, out: np.ndarray | None = None) -> np.ndarray:
    """Decode one bare LZ4 block (Stream V1 encoding `lz4<`) into an image.

    Raises:
        CodecError: the block does not decode to exactly that image.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    block = bytes(data)
    if len(block) == nbytes:
        # The framing would read a block as long as the image as stored raw; a bare LZ4
        # block of exactly that length is possible only for incompressible data.
        raise CodecError(f"LZ4 block is as long as the image ({nbytes} bytes): not compressed")
    framed = _LZ4_PREFIX.pack(nbytes, nbytes, len(block)) + block
    return decompress(framed, "lz4", shape, dtype, out=out)
