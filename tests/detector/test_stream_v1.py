"""Stream V1 (JSON multipart) encode/decode."""

import json

import numpy as np
import pytest
from fbp_components.detector import stream_v1
from fbp_components.detector.messages import Image, MalformedMessage, SeriesEnd, SeriesStart


@pytest.mark.parametrize("compression", ["bslz4", "lz4", None])
@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_image_round_trip(compression, dtype):
    image = np.random.default_rng(0).poisson(2, size=(30, 50)).astype(dtype)
    parts = stream_v1.encode_image(7, 3, image, compression=compression, start_time=10)
    detail = json.loads(parts[1])
    assert detail["shape"] == [50, 30]  # [x, y]: width first
    assert (
        detail["encoding"]
        == {"bslz4": f"bs{image.itemsize * 8}-lz4<", "lz4": "lz4<", None: "<"}[compression]
    )
    assert detail["size"] == len(parts[2])
    message = stream_v1.decode(parts)
    assert isinstance(message, Image) and (message.series_id, message.image_id) == (7, 3)
    assert message.info["start_time"] == 10
    assert np.array_equal(message.channels["threshold_1"].decode(), image)


def test_header_with_config_and_pixel_mask_and_end():
    mask = np.zeros((30, 50), np.uint32)
    mask[0, :] = 1
    start = stream_v1.decode(stream_v1.encode_header(7, {"nimages": 5}, pixel_mask=mask))
    assert isinstance(start, SeriesStart) and start.series_id == 7
    assert start.info["nimages"] == 5 and start.info["header_detail"] == "all"
    assert np.array_equal(start.arrays["pixel_mask"], mask)
    assert stream_v1.decode(stream_v1.encode_header(8)).info == {"header_detail": "none"}
    end = stream_v1.decode(stream_v1.encode_end(7))
    assert isinstance(end, SeriesEnd) and end.series_id == 7


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([], "empty multipart message"),
        ([b"not json"], "first part is not JSON"),
        ([b'{"htype": "dimage-1.0", "series": 1, "frame": 0}'], "needs 4 parts"),
        ([b'{"htype": "dweird-1.0"}'], "unknown Stream V1 htype 'dweird-1.0'"),
        (
            [
                b'{"htype": "dimage-1.0", "series": 1, "frame": 0}',
                b'{"htype": "dimage_d-1.0", "shape": [2, 2], "type": "uint16", "encoding": "zz"}',
                b"",
                b"{}",
            ],
            "encoding 'zz'",
        ),
    ],
)
def test_malformed_messages_say_why(parts, reason):
    with pytest.raises(MalformedMessage, match=reason):
        stream_v1.decode(parts)
