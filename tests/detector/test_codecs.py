"""bslz4/lz4 in HDF5 framing through hdf5plugin's filters, and their error paths."""

import numpy as np
import pytest
from fbp_components.detector import codecs


@pytest.mark.parametrize("algorithm", ["bslz4", "lz4"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "float32"])
@pytest.mark.parametrize("shape", [(514, 1030), (3, 5), (64, 64)])
def test_round_trip(algorithm, dtype, shape):
    image = np.random.default_rng(0).poisson(3, size=shape).astype(dtype)
    data = codecs.compress(image, algorithm)
    assert data[:8] == int(image.nbytes).to_bytes(8, "big")  # HDF5 framing header
    out = np.empty_like(image)
    assert codecs.decompress(data, algorithm, shape, dtype, out=out) is out
    assert np.array_equal(out, image)


def test_bare_lz4_block_round_trip():
    image = np.random.default_rng(1).poisson(1, size=(100, 200)).astype(np.uint16)
    block = codecs.compress_lz4_block(image)
    assert np.array_equal(codecs.decompress_lz4_block(block, image.shape, image.dtype), image)


@pytest.mark.parametrize("algorithm", ["bslz4", "lz4"])
def test_corrupt_data_is_an_error_never_a_crash(algorithm):
    image = np.random.default_rng(2).poisson(2, size=(128, 256)).astype(np.uint16)
    data = codecs.compress(image, algorithm)
    broken = [data[:-1], data + b"\0", data[:10], data[:12] + b"\xff\xff\xff\xff" + data[16:]]
    for bad in broken:
        with pytest.raises(codecs.CodecError):
            codecs.decompress(bad, algorithm, image.shape, image.dtype)
    with pytest.raises(codecs.CodecError, match="decode to 65536 bytes but the image needs 32768"):
        codecs.decompress(data, algorithm, (128, 128), np.uint16)
    with pytest.raises(codecs.CodecError, match="unknown compression 'zstd'"):
        codecs.decompress(data, "zstd", image.shape, image.dtype)
