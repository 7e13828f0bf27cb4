"""The nexus writer components through fbp.testing.run_component."""

from __future__ import annotations

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
from fbp_components.nexus import WriteNXdata, WriteNXmx
from fbp_components.nexus.components import series_path

from fbp.packet import Packet, PacketKind
from fbp.testing import run_component


def test_write_nxmx_makes_one_valid_file_per_series(tmp_path, check_nexus):
    shape = (1062, 1028)
    info = {
        "beam_center_x": 500.5,
        "beam_center_y": 520.0,
        "detector_distance": 0.2,
        "incident_wavelength": 0.9,
        "pixel_size_x": 75e-6,
        "detector_description": "test EIGER2 1M",
    }
    rng = np.random.default_rng(3)
    frames = [rng.poisson(1, shape).astype(np.uint16) for _ in range(5)]
    packets = [
        Packet(info, kind=PacketKind.OPEN),
        *(Packet(f, seq=i) for i, f in enumerate(frames[:3])),
        Packet({}, kind=PacketKind.CLOSE),
        Packet(info, kind=PacketKind.OPEN),
        *(Packet(f, seq=10 + i) for i, f in enumerate(frames[3:])),
        Packet({}, kind=PacketKind.CLOSE),
    ]
    template = str(tmp_path / "out" / "run_{series:03d}.nxs")
    result = run_component(WriteNXmx, inputs={"IN": packets}, config={"PATH": template})
    assert result.errors == 0
    files = result.values("FILES")
    assert files == [template.format(series=0), template.format(series=1)]
    for path, expected in zip(files, (frames[:3], frames[3:]), strict=False):
        check_nexus(path, application="NXmx")
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(f["/entry/data/data"][:], np.stack(expected))
            assert f["/entry/instrument/detector/beam_center_x"][()] == 500.5
            assert f["/entry/instrument/detector/distance"][()] == 0.2
            assert "module_1" in f["/entry/instrument/detector"]


def test_write_nxdata_collects_results_and_losses(tmp_path, check_nexus):
    path = tmp_path / "results.nxs"
    peaks = [
        Packet(
            {
                "x": [1.0] * n,
                "y": [2.0] * n,
                "intensity": [3.0] * n,
                "snr": [7.0] * n,
                "npix": [2] * n,
                "n_peaks": n,
                "is_hit": n >= 10,
            },
            seq=i,
            meta={"n_peaks": n, "is_hit": n >= 10},
        )
        for i, n in enumerate([12, 3, 15])
    ]
    errors = [
        Packet(
            {
                "process": "Find",
                "port": "IN",
                "index": None,
                "seq": 7,
                "error": "ValueError: bad frame",
                "traceback": "...",
            }
        )
    ]
    losses = [
        Packet({"where": "View.IN", "kind": "dropped", "reason": "latest: kept 2", "count": 40})
    ]
    result = run_component(
        WriteNXdata,
        inputs={"PEAKS": peaks, "ERRORS": errors, "LOSSES": losses},
        config={"PATH": str(path)},
    )
    assert result.errors == 0
    summary = result.values("SUMMARY")[0]
    assert summary == {
        "frames": 3,
        "hits": 2,
        "hit_rate": 2 / 3,
        "peaks": 30,
        "profiles": 0,
        "lost": 41,
        "file": str(path),
    }
    check_nexus(path)
    with h5py.File(path, "r") as f:
        assert list(f["/entry/hits/is_hit"][:]) == [1, 0, 1]
        assert f["/entry/loss_ledger/total"][()] == 41
        assert sorted(f["/entry/loss_ledger/where"].asstr()[:]) == ["Find.IN", "View.IN"]


def test_series_path_templates():
    assert series_path("a/b_{series:04d}.nxs", 3) == "a/b_0003.nxs"
    assert series_path("a/b.nxs", 0) == "a/b.nxs"
    assert series_path("a/b.nxs", 2) == "a/b_2.nxs"
    import pytest

    with pytest.raises(ValueError, match=r"only the field \{series\}"):
        series_path("a/{run}.nxs", 0)


def test_write_nxdata_sorts_records_sent_to_in(tmp_path):
    path = tmp_path / "mixed.nxs"
    records = [
        Packet(
            {
                "x": [1.0],
                "y": [1.0],
                "intensity": [5.0],
                "snr": [6.0],
                "npix": [2],
                "n_peaks": 1,
                "is_hit": False,
            },
            seq=0,
        ),
        Packet(
            {"radial": [0.1, 0.2], "intensity": [3.0, 4.0], "sigma": None, "unit": "q_nm^-1"}, seq=0
        ),
        Packet({"process": "F", "port": "IN", "seq": 3, "error": "E: x", "traceback": "t"}),
        Packet({"where": "V.IN", "kind": "dropped", "reason": "latest", "count": 2}),
    ]
    result = run_component(WriteNXdata, inputs={"IN": records}, config={"PATH": str(path)})
    assert result.errors == 0
    assert result.values("SUMMARY")[0]["lost"] == 3
    with h5py.File(path, "r") as f:
        assert f["/entry/radial_profile/intensity"].shape == (1, 2)
        assert f["/entry/peaks/n_peaks"][0] == 1
    odd = run_component(
        WriteNXdata, inputs={"IN": [{"a": 1}]}, config={"PATH": str(tmp_path / "odd.nxs")}
    )
    assert odd.errors == 1 and "expected a peak table" in odd.error_reports[0][2]
