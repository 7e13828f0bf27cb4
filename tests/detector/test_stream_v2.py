"""Stream V2 against real DECTRIS EIGER2 500K messages, and our own encoder round trip."""

import hashlib
import re

import cbor2
import numpy as np
import pytest
from fbp_components.detector import stream_v2
from fbp_components.detector.messages import Image, MalformedMessage, SeriesEnd, SeriesStart
from fbp_components.detector.series import SeriesTracker


def readme_rows(folder):
    """The README table: file -> (type, image_id, channel, shape, dtype, sum, max, sha)."""
    rows = {}
    for line in (folder / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and re.match(r"r500k_.*\.cbor$", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


def test_every_real_image_decodes_to_the_listed_shape_dtype_sum_max_and_hash(real_v2):
    rows = readme_rows(real_v2)
    images = [name for name, row in rows.items() if row[0] == "image"]
    assert len(images) == 30 and len(rows) == 33
    for name in images:
        kind, image_id, channel, shape, dtype, total, peak, digest = rows[name]
        message = stream_v2.decode((real_v2 / name).read_bytes())
        assert isinstance(message, Image) and message.image_id == int(image_id)
        array = message.channels[channel].decode()
        assert "x".join(map(str, array.shape)) == shape, name
        assert array.dtype == np.dtype(dtype), name
        assert int(array.sum(dtype=np.uint64)) == int(total), name
        assert int(array.max()) == int(peak), name
        assert hashlib.sha256(array.tobytes()).hexdigest()[:16] == digest, name


def test_real_end_messages(real_v2):
    rows = readme_rows(real_v2)
    for name in (n for n, row in rows.items() if row[0] == "end"):
        message = stream_v2.decode((real_v2 / name).read_bytes())
        assert isinstance(message, SeriesEnd) and message.series_id == 1
        assert message.unique_id


def test_a_series_seen_without_its_start_still_gets_brackets(real_v2):
    tracker = SeriesTracker()
    events = []
    for path in sorted((real_v2 / "r500k_bm_lz4_16bit").glob("*.cbor")):
        events += tracker.feed(stream_v2.decode(path.read_bytes()))
    assert isinstance(events[0], SeriesStart) and events[0].seen is False
    assert [e.image_id for e in events[1:-1]] == list(range(10))
    assert isinstance(events[-1], SeriesEnd) and "missing" not in events[-1].info
    assert tracker.counts["missing_start"] == 1 and tracker.counts["orphan_end"] == 0


def test_decode_into_a_caller_buffer(real_v2):
    message = stream_v2.decode((real_v2 / "r500k_bm_bslz4_32bit" / "000003.cbor").read_bytes())
    encoded = message.channels["threshold_1"]
    out = np.zeros(encoded.shape, dtype=encoded.dtype)
    assert encoded.decode(out=out) is out and int(out.max()) == 28


@pytest.mark.parametrize("compression", [None, "bslz4", "lz4"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_encoder_round_trip(compression, dtype):
    image = np.random.default_rng(0).poisson(2, size=(40, 70)).astype(dtype)
    start = stream_v2.decode(
        stream_v2.encode_start(4, "abc", {"image_size_x": 70}, pixel_mask=np.eye(40, 70))
    )
    assert start.series_id == 4 and start.info["image_size_x"] == 70
    assert np.array_equal(start.arrays["pixel_mask/threshold_1"], np.eye(40, 70))
    message = stream_v2.decode(
        stream_v2.encode_image(4, "abc", 9, {"threshold_1": image}, compression=compression)
    )
    assert message.image_id == 9 and message.unique_id == "abc"
    assert np.array_equal(message.channels["threshold_1"].decode(), image)
    raw = cbor2.loads(stream_v2.encode_image(4, "abc", 9, {"t": image}, compression=compression))
    assert raw["type"] == "image" and raw["data"]["t"].tag == 40  # RFC 8746 multi-dim array


def test_column_major_arrays_are_transposed_back():
    image = np.arange(12, dtype="<u2").reshape(3, 4)
    column_major = cbor2.CBORTag(1040, [[4, 3], cbor2.CBORTag(69, image.T.tobytes(order="F"))])
    message = stream_v2.decode(
        cbor2.dumps({"type": "image", "series_id": 1, "image_id": 0, "data": {"c": column_major}})
    )
    assert np.array_equal(message.channels["c"].decode(), image.T)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "not valid CBOR"),
        (cbor2.dumps([1, 2]), "a Stream V2 message is a CBOR map"),
        (cbor2.dumps({"type": "bogus"}), "unknown Stream V2 message type 'bogus'"),
        (cbor2.dumps({"type": "image", "series_id": 1, "image_id": 0}), "non-empty 'data' map"),
        (cbor2.dumps({"type": "end", "series_id": -1}), "'series_id' must be a non-negative"),
        (
            cbor2.dumps(
                {
                    "type": "image",
                    "series_id": 1,
                    "image_id": 0,
                    "data": {
                        "c": cbor2.CBORTag(
                            40,
                            [[2, 2], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["zstd", 2, b"xx"]))],
                        )
                    },
                }
            ),
            "unknown compression 'zstd'",
        ),
    ],
)
def test_malformed_messages_say_why(payload, reason):
    with pytest.raises(MalformedMessage, match=reason):
        stream_v2.decode(payload)


def test_corrupt_compressed_image_fails_on_decode_not_earlier(real_v2):
    raw = bytearray((real_v2 / "r500k_bm_bslz4_16bit" / "000001.cbor").read_bytes())
    # Corrupt the first bitshuffle block length (after the 12-byte framing header).
    position = bytes(raw).index(bytes.fromhex("0000000000102818"))
    raw[position + 12 : position + 16] = b"\x7f\xff\xff\xff"
    message = stream_v2.decode(bytes(raw))
    with pytest.raises(MalformedMessage, match="runs past the end"):
        message.channels["threshold_1"].decode()
