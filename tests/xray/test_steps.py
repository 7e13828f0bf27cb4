"""DarkCorrection, PixelMask, module gaps, ROI, FrameSum and hit selection."""

from __future__ import annotations

import numpy as np
import pytest
from fbp_components.xray.corrections import DarkCorrection, invalid_pixels
from fbp_components.xray.masking import MASK_DEAD, MASK_HOT, PixelMask, module_gap_mask
from fbp_components.xray.selection import FrameSum, crop, is_hit, parse_roi


def test_dark_and_flat_correction():
    rng = np.random.default_rng(1)
    raw = rng.integers(100, 200, (20, 30)).astype(np.uint16)
    raw[3, 4] = 65535
    dark = np.full((20, 30), 50.0)
    flat = rng.uniform(0.5, 1.5, (20, 30))
    flat[5, 6] = 0.0
    out = DarkCorrection(dark, flat).apply(raw)
    assert out.dtype == np.float32
    with np.errstate(divide="ignore"):
        expected = (raw.astype(np.float64) - 50.0) / flat
    good = np.ones(raw.shape, bool)
    good[3, 4] = good[5, 6] = False
    np.testing.assert_allclose(out[good], expected[good], rtol=1e-6)
    assert np.isnan(out[3, 4]) and np.isnan(out[5, 6])


def test_dark_correction_rejects_a_frame_of_another_shape():
    with pytest.raises(ValueError, match=r"frame has shape \(2, 2\) but the dark/flat \(3, 3\)"):
        DarkCorrection(np.zeros((3, 3))).apply(np.zeros((2, 2)))


def test_module_gaps_of_an_eiger2_4m():
    mask = module_gap_mask((2162, 2068))
    assert mask.sum() == 2162 * 2068 - 8 * 512 * 1028
    assert mask[512:550, 0].all() and not mask[511, 0] and not mask[550, 0]
    assert mask[0, 1028:1040].all() and not mask[0, 1027]
    with pytest.raises(ValueError, match="not n \\* 512 pixels"):
        module_gap_mask((600, 1028))


def test_pixel_mask_applies_static_mask_and_finds_hot_pixels():
    static = np.zeros((8, 8), bool)
    static[0, 0] = True
    masker = PixelMask((8, 8), static, hot_threshold=100, hot_frames=2)
    frames = []
    for i in range(3):
        frame = np.full((8, 8), 3, np.uint16)
        frame[5, 5] = 1000  # the same pixel every frame: hot
        frame[i, 7] = 1000  # moves: a spot, never hot
        frames.append(masker.apply(frame))
    assert frames[0][0, 0] == 65535 and frames[0][5, 5] == 1000
    assert frames[1][5, 5] == 65535 and frames[2][5, 5] == 65535
    assert masker.pixel_mask[5, 5] == MASK_HOT and masker.pixel_mask[0, 0] == MASK_DEAD
    assert frames[2][2, 7] == 1000
    as_float = masker.apply(np.ones((8, 8), np.float32))
    assert np.isnan(as_float[5, 5]) and invalid_pixels(as_float).sum() == 2


def test_roi_parse_and_crop():
    frame = np.arange(100).reshape(10, 10)
    roi = parse_roi("2:4, 5:")
    np.testing.assert_array_equal(crop(frame, roi), frame[2:4, 5:])
    with pytest.raises(ValueError, match="ROI must look like 'row0:row1,col0:col1'"):
        parse_roi("2-4,5")
    with pytest.raises(ValueError, match="selects no pixels"):
        crop(frame, parse_roi("20:30,0:1"))


def test_frame_sum_ignores_invalid_pixels():
    summer = FrameSum()
    a = np.ones((4, 4), np.uint16)
    a[0, 0] = 65535
    assert summer.add(a) == 15.0
    assert summer.add(np.full((4, 4), 2, np.uint16)) == 32.0
    assert summer.frames == 2 and summer.image[0, 0] == 2 and summer.image[1, 1] == 3
    with pytest.raises(ValueError, match="earlier frames"):
        summer.add(np.ones((2, 2)))


def test_is_hit_from_peak_metadata():
    assert is_hit({"hit": True, "n_peaks": 3})
    assert not is_hit({"hit": True, "n_peaks": 3}, min_peaks=5)
    assert not is_hit({"hit": False, "is_hit": True})  # the simulator's truth is not used
    with pytest.raises(KeyError, match="put xray/PeakFinder before HitFilter"):
        is_hit({"seq": 1})
