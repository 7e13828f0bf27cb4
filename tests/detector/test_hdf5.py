"""Replaying NXmx master + external data files (bitshuffle-LZ4) with HDF5FrameReader."""

import os
import time

import h5py
import hdf5plugin
import numpy as np
import pytest
from fbp_components.detector.hdf5 import HDF5FrameReader, Pacer
from fbp_components.detector.simulate import DetectorSimulator


def write_nxmx(folder, frames, per_file=3):
    """A small DECTRIS-style series: master file linking to bslz4 data files."""
    master = folder / "series_master.h5"
    with h5py.File(master, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        detector = f.create_group("entry/instrument/detector")
        detector["beam_center_x"] = 520.5
        detector["x_pixel_size"] = 75e-6
        detector["description"] = b"EIGER2 test"
        detector["pixel_mask"] = np.eye(*frames.shape[1:], dtype=np.uint32)
        for number, first in enumerate(range(0, len(frames), per_file), start=1):
            name = f"series_data_{number:06d}.h5"
            with h5py.File(folder / name, "w") as d:
                d.create_dataset(
                    "entry/data/data",
                    data=frames[first : first + per_file],
                    chunks=(1, *frames.shape[1:]),
                    **hdf5plugin.Bitshuffle(cname="lz4"),
                )
            data[f"data_{number:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
    return master


@pytest.fixture(scope="module")
def frames():
    sim = DetectorSimulator("eiger2-500k", seed=9, hit_rate=0.5)
    return np.stack([sim.frame(i)[0] for i in range(7)])


def test_master_with_external_bslz4_data_files_replays_bit_identical(tmp_path, frames, monkeypatch):
    master = write_nxmx(tmp_path, frames)
    monkeypatch.chdir("/")  # external links resolve next to the master file, not in the cwd
    with HDF5FrameReader(master) as reader:
        assert len(reader) == 7 and len(reader.datasets) == 3
        assert reader.frame_shape == (512, 1028) and reader.dtype == np.uint16
        assert reader.datasets[0].id.get_create_plist().get_filter(0)[0] == 32008  # bitshuffle
        replayed = np.stack(list(reader.frames()))
        info = reader.info()
        mask = reader.pixel_mask()
    assert np.array_equal(replayed, frames)
    assert info["beam_center_x"] == 520.5 and info["detector_description"] == "EIGER2 test"
    assert info["frames"] == 7 and info["image_size_x"] == 1028
    assert mask is not None and mask.sum() == 512


def test_read_into_a_caller_buffer_and_ranges(tmp_path, frames):
    master = write_nxmx(tmp_path, frames)
    with HDF5FrameReader(master) as reader:
        out = np.zeros(reader.frame_shape, reader.dtype)
        reader.read_into(4, out)
        assert np.array_equal(out, frames[4])
        assert [f[0, 0] for f in reader.frames(start=5)] == list(frames[5:, 0, 0])
        with pytest.raises(IndexError, match="past the 7 frames"):
            reader.read_into(7, out)


def test_plain_file_with_a_named_or_found_dataset(tmp_path, frames):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["scalars"] = np.arange(3)
        f.create_dataset("images/stack", data=frames[:2])
    with HDF5FrameReader(path) as reader:
        assert len(reader) == 2
    with HDF5FrameReader(path, "/images/stack") as reader:
        assert np.array_equal(next(reader.frames()), frames[0])
    with pytest.raises(ValueError, match="no dataset '/nope'"):
        HDF5FrameReader(path, "/nope")
    with pytest.raises(ValueError, match="is not a 3-D dataset"):
        HDF5FrameReader(path, "/scalars")


def test_missing_files_are_clear_errors(tmp_path, frames):
    with pytest.raises(FileNotFoundError, match="no HDF5 file"):
        HDF5FrameReader(tmp_path / "absent.h5")
    master = write_nxmx(tmp_path, frames)
    os.remove(tmp_path / "series_data_000002.h5")
    with pytest.raises(FileNotFoundError, match="'series_data_000002.h5', which is missing"):
        HDF5FrameReader(master)


def test_rate_limit_spaces_frames(tmp_path, frames):
    master = write_nxmx(tmp_path, frames)
    with HDF5FrameReader(master) as reader:
        started = time.monotonic()
        count = sum(1 for _ in reader.frames(rate=50.0))
        elapsed = time.monotonic() - started
    # 7 frames at 50/s: the 7th is due 6/50 s after the first; sleeping never ends early.
    assert count == 7 and elapsed >= 6 / 50
    with pytest.raises(ValueError, match="rate must be >= 0"):
        Pacer(-1)
