"""NXmxWriter: valid NXmx, bit-identical frames, bitshuffle-LZ4 per-frame chunks, SWMR."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle filter for reading)
import numpy as np
import pytest
from fbp_components.nexus.nxmx import DetectorDescription, NXmxWriter

SHAPE = (1062, 1028)  # an EIGER2 1M: two modules
BITSHUFFLE_FILTER_ID = 32008


def eiger_1m(**overrides):
    mask = np.zeros(SHAPE, np.uint32)
    mask[512:550] = 1
    options = {
        "shape": SHAPE,
        "module_shape": (512, 1028),
        "pixel_mask": mask,
        "beam_center": (520.3, 530.1),
        "distance": 0.12,
        "wavelength": 0.98,
    }
    options.update(overrides)
    return DetectorDescription(**options)


def frames(count, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.poisson(2.0, shape).astype(np.uint16) for _ in range(count)]


def test_written_file_is_valid_nxmx_and_frames_read_back_bit_identical(tmp_path, check_nexus):
    path = tmp_path / "series_0001.nxs"
    written = frames(4)
    written[2][0, 0] = 65535
    with NXmxWriter(path, eiger_1m(), title="test series") as writer:
        for seq, frame in enumerate(written):
            writer.append(frame, seq=100 + seq)
    check_nexus(path, application="NXmx")
    with h5py.File(path, "r") as f:
        data = f["/entry/data/data"]
        assert data.shape == (4, *SHAPE)
        assert data.chunks == (1, *SHAPE)
        assert BITSHUFFLE_FILTER_ID in data._filters or str(BITSHUFFLE_FILTER_ID) in data._filters
        for i, frame in enumerate(written):
            np.testing.assert_array_equal(data[i], frame)
        assert f["/entry/instrument/detector/data"].id == data.id
        assert list(f["/entry/instrument/detector/frame_metadata/seq"][:]) == [100, 101, 102, 103]
        assert f["/entry/definition"][()] == b"NXmx"
        assert f["/entry/end_time"][()] >= f["/entry/start_time"][()]
        modules = [k for k in f["/entry/instrument/detector"] if k.startswith("module_")]
        assert len(modules) == 2
        assert list(f["/entry/instrument/detector/module_1/data_origin"][:]) == [550, 0]


def test_the_validation_catches_a_broken_file(tmp_path, nexus_errors):
    path = tmp_path / "broken.nxs"
    with NXmxWriter(path, eiger_1m()) as writer:
        writer.append(frames(1)[0])
    with h5py.File(path, "r+") as f:
        del f["/entry/sample"]
        del f["/entry/instrument/beam/incident_wavelength"]
    errors = nexus_errors(path, "nxvalidate", "NXmx")
    assert any("NXsample" in e for e in errors), errors
    assert any("incident_wavelength" in e for e in errors), errors


def test_one_file_per_series_never_overwrites(tmp_path):
    path = tmp_path / "s.nxs"
    NXmxWriter(path, eiger_1m(pixel_mask=None)).close()
    with pytest.raises(FileExistsError, match="never overwrite"):
        NXmxWriter(path, eiger_1m())


def test_wrong_frames_and_closed_writer_are_clear_errors(tmp_path):
    writer = NXmxWriter(tmp_path / "s.nxs", eiger_1m())
    with pytest.raises(ValueError, match=r"frame is uint32\[1062, 1028\], this file holds uint16"):
        writer.append(np.zeros(SHAPE, np.uint32))
    writer.close()
    writer.close()
    with pytest.raises(RuntimeError, match="is closed"):
        writer.append(np.zeros(SHAPE, np.uint16))
    with pytest.raises(ValueError, match="compression must be"):
        NXmxWriter(tmp_path / "t.nxs", eiger_1m(), compression="zip")


READER = textwrap.dedent(
    """
    import sys, h5py, hdf5plugin, numpy as np
    path, expected = sys.argv[1], int(sys.argv[2])
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        data = f["/entry/data/data"]
        seen = 0
        print("opened", flush=True)
        while seen < expected:
            sys.stdin.readline()  # the writer says a frame is out
            data.refresh()
            seen = data.shape[0]
            # Each frame i is filled with the value i + 1: check the newest one.
            print("seen", seen, int(data[seen - 1].min()), int(data[seen - 1].max()), flush=True)
    """
)


@pytest.mark.timeout(60)
def test_a_reader_follows_the_file_while_it_is_written(tmp_path):
    path = tmp_path / "live.nxs"
    shape = (256, 256)
    detector = DetectorDescription(shape=shape)
    writer = NXmxWriter(path, detector)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), "5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "opened"
        for i in range(5):
            writer.append(np.full(shape, i + 1, np.uint16), seq=i)
            reader.stdin.write("next\n")
            reader.stdin.flush()
            # The reader sees frame i complete while the writer still holds the file open.
            assert reader.stdout.readline().split() == ["seen", str(i + 1), str(i + 1), str(i + 1)]
        assert reader.wait(timeout=30) == 0
    finally:
        writer.close()
        if reader.poll() is None:
            reader.kill()
        reader.wait()
    with h5py.File(path, "r") as f:
        assert f["/entry/data/data"].shape == (5, *shape)
