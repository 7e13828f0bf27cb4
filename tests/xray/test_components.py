"""The xray components through fbp.testing.run_component (the executor `fbp run` uses)."""

from __future__ import annotations

import numpy as np
from fbp_components.xray import ROI, DarkCorrect, HitFilter, Mask, PeakFinder, RadialProfile, Sum

from fbp.packet import Packet, PacketKind
from fbp.testing import run_component


def series_open(maker):
    return Packet(
        {
            "beam_center_x": maker.beam_center[0],
            "beam_center_y": maker.beam_center[1],
            "detector_distance": 0.15,
            "incident_wavelength": 1.0,
        },
        kind=PacketKind.OPEN,
    )


def test_peak_finder_flags_hits_and_sends_peak_tables(frame_maker):
    frames, truth = [], []
    for seq in range(4):
        frame, t = frame_maker.frame(200 + seq, hit=seq % 2 == 0)
        frames.append(Packet(frame, seq=seq, meta={"is_hit": t.is_hit}))
        truth.append(t)
    mask = frame_maker.mask.astype(np.uint32)
    packets = [series_open(frame_maker), *frames, Packet({"frames": 4}, kind=PacketKind.CLOSE)]
    result = run_component(PeakFinder, inputs={"IN": packets}, config={"MASK": mask})
    assert result.errors == 0
    tables = result.values("PEAKS")
    assert [t["is_hit"] for t in tables] == [True, False, True, False]
    assert result.seqs("PEAKS") == [0, 1, 2, 3]
    out = [p for p in result.outputs["OUT"] if p.kind == PacketKind.DATA]
    assert [p.meta["hit"] for p in out] == [True, False, True, False]
    assert all(p.meta["is_hit"] == (p.seq % 2 == 0) for p in out)  # truth untouched
    assert out[0].meta["n_peaks"] == tables[0]["n_peaks"] >= 20
    np.testing.assert_array_equal(out[2].value, frames[2].value)
    kinds = [p.kind for p in result.outputs["PEAKS"]]
    assert kinds[0] == PacketKind.OPEN and kinds[-1] == PacketKind.CLOSE


def test_hit_filter_passes_hits_only():
    frame = np.zeros((4, 4), np.uint16)
    packets = [
        Packet(frame + i, seq=i, meta={"hit": i % 2 == 0, "n_peaks": 5 * i}) for i in range(4)
    ]
    assert run_component(HitFilter, inputs={"IN": packets}).seqs() == [0, 2]
    by_count = run_component(HitFilter, inputs={"IN": packets}, config={"MIN_PEAKS": "10"})
    assert by_count.seqs() == [2, 3]
    failed = run_component(HitFilter, inputs={"IN": [frame]})
    assert failed.errors == 1
    assert "put xray/PeakFinder before HitFilter" in failed.error_reports[0][2]


def test_dark_correct_mask_roi_sum(tmp_path):
    dark = np.full((6, 8), 2.0)
    np.save(tmp_path / "dark.npy", dark)
    frame = np.full((6, 8), 5, np.uint16)
    frame[1, 1] = 65535
    corrected = run_component(
        DarkCorrect, inputs={"IN": [frame]}, config={"DARK": str(tmp_path / "dark.npy")}
    ).values()[0]
    assert corrected.dtype == np.float32 and corrected[0, 0] == 3.0 and np.isnan(corrected[1, 1])
    passed = run_component(DarkCorrect, inputs={"IN": [frame]}).values()[0]
    np.testing.assert_array_equal(passed, frame)

    static = np.zeros((6, 8), np.uint32)
    static[0, :] = 2
    masked = run_component(Mask, inputs={"IN": [frame]}, config={"MASK": static}).values()[0]
    assert (masked[0] == 65535).all() and masked[2, 2] == 5

    region = run_component(ROI, inputs={"IN": [frame]}, config={"ROI": "2:4,3:6"}).values()[0]
    assert region.shape == (2, 3)

    sums = run_component(Sum, inputs={"IN": [frame, frame]})
    assert sums.values("OUT") == [5.0 * 47] * 2
    assert sums.values("IMAGE")[0][0, 0] == 10.0


def test_radial_profile_from_the_series_geometry():
    shape = (200, 300)
    y, x = np.ogrid[:200, :300]
    frame = (10 + 100 * (np.abs(np.hypot(x - 150, y - 100) - 60) < 2)).astype(np.uint16)
    opening = Packet(
        {
            "beam_center_x": 150.0,
            "beam_center_y": 100.0,
            "detector_distance": 0.1,
            "incident_wavelength": 1.0,
        },
        kind=PacketKind.OPEN,
    )
    result = run_component(
        RadialProfile,
        inputs={"IN": [opening, frame]},
        config={"NPT": "200", "UNIT": "r_mm"},
    )
    assert result.errors == 0
    profile = result.values()[0]
    peak_radius_mm = profile["radial"][int(np.argmax(profile["intensity"]))]
    assert abs(peak_radius_mm - 60 * 0.075) < 0.15  # the ring at 60 pixels
    assert profile["unit"] == "r_mm" and len(profile["intensity"]) == 200
    missing = run_component(RadialProfile, inputs={"IN": [frame]})
    assert missing.errors == 1
    assert "needs a geometry" in missing.error_reports[0][2]
    assert shape == frame.shape


def test_radial_profile_geometry_in_one_iip():
    y, x = np.ogrid[:200, :300]
    frame = (10 + 100 * (np.abs(np.hypot(x - 120, y - 90) - 50) < 2)).astype(np.uint16)
    geometry = '{"distance_m": 0.1, "pixel_m": 7.5e-5, "center": [120, 90], "wavelength_A": 1.0}'
    result = run_component(
        RadialProfile,
        inputs={"IN": [frame]},
        config={"GEOMETRY": geometry, "NPT": "200", "UNIT": "r_mm"},
    )
    profile = result.values()[0]
    assert abs(profile["radial"][int(np.argmax(profile["intensity"]))] - 50 * 0.075) < 0.15
    bad = run_component(RadialProfile, inputs={"IN": [frame]}, config={"GEOMETRY": '{"dist": 1}'})
    assert "GEOMETRY has unknown keys ['dist']" in bad.error_reports[0][2]
