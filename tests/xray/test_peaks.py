"""PeakFinder against frames whose spots are known (generator in conftest.py)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from fbp_components.xray.peaks import PEAK_COLUMNS, PeakFinder, radial_bins

SNR_BINS = [(0, 2), (2, 3), (3, 4), (4, 5), (5, 7), (7, 10), (10, np.inf)]


def finder_for(maker, **options):
    return PeakFinder(maker.shape, beam_center=maker.beam_center, mask=maker.mask, **options)


def recall_by_snr(maker, finder, seeds, background_label, match_spots):
    snr, found, errors = [], [], []
    for seed in seeds:
        frame, truth = maker.frame(seed, hit=True, n_spots=60, photons=(3.0, 3000.0))
        result = finder.find(frame)
        distance = match_spots(truth.x, truth.y, result.x, result.y)
        snr.append(truth.snr)
        found.append(np.isfinite(distance))
        errors.append(distance)
    snr, found, errors = map(np.concatenate, (snr, found, errors))
    print(f"\nspot recall by SNR, background {background_label} photons/pixel at the centre:")
    for low, high in SNR_BINS:
        selected = (snr >= low) & (snr < high)
        print(
            f"  SNR {low:>3}-{high:<4}: {selected.sum():4d} spots, "
            f"recall {found[selected].mean():.3f}"
        )
    return snr, found, errors


def test_hit_recall_and_precision_at_default_settings(frame_maker, match_spots):
    finder = finder_for(frame_maker)
    rng = np.random.default_rng(7)
    truth_hits, found_hits = [], []
    errors = []
    for seed in range(60):
        hit = bool(rng.random() < 0.3)
        n_spots = max(20, int(rng.poisson(40)))
        frame, truth = frame_maker.frame(1000 + seed, hit=hit, n_spots=n_spots)
        result = finder.find(frame)
        truth_hits.append(hit)
        found_hits.append(result.is_hit)
        if hit:
            distance = match_spots(truth.x, truth.y, result.x, result.y)
            errors.append(distance[np.isfinite(distance)])
    truth_hits, found_hits = np.array(truth_hits), np.array(found_hits)
    recall = (truth_hits & found_hits).sum() / truth_hits.sum()
    precision = (truth_hits & found_hits).sum() / max(found_hits.sum(), 1)
    errors = np.concatenate(errors)
    print(
        f"\nhits {truth_hits.sum()}/60, recall {recall:.3f}, precision {precision:.3f}, "
        f"position error mean {errors.mean():.3f} px, max {errors.max():.3f} px"
    )
    assert truth_hits.sum() >= 10
    assert recall >= 0.98
    assert precision >= 0.98
    assert errors.max() < 1.0


@pytest.mark.parametrize("background", [0.1, 1.0])
def test_spot_recall_by_snr(background, frame_maker_class, match_spots):
    maker = frame_maker_class(background=background)
    snr, found, errors = recall_by_snr(maker, finder_for(maker), range(12), background, match_spots)
    strong = snr >= 5
    assert found[strong].mean() >= 0.95
    assert errors[strong & found].max() < 1.0
    assert errors[strong & found].mean() < 0.3
    # Faint spots are hard, not invisible: something is found between SNR 3 and 5.
    assert found[(snr >= 3) & (snr < 5)].mean() > 0.3


def test_spot_recall_at_high_background_is_reported(frame_maker_class, match_spots):
    maker = frame_maker_class(background=10.0)
    snr, found, _ = recall_by_snr(maker, finder_for(maker), range(8), 10.0, match_spots)
    # At high background the spot SNR and the detection significance coincide, so a
    # min_snr of 6 keeps most but not all SNR 5-7 spots; everything above 7 is found.
    assert found[snr >= 7].mean() >= 0.98
    assert found[(snr >= 5) & (snr < 7)].mean() >= 0.7


def test_background_frames_have_no_peaks(frame_maker):
    finder = finder_for(frame_maker)
    counts = [finder.find(frame_maker.frame(500 + s, hit=False)[0]).n_peaks for s in range(10)]
    assert sum(counts) <= 2, counts


def test_masked_and_invalid_pixels_never_make_peaks(frame_maker):
    frame, _ = frame_maker.frame(3, hit=False)
    hot = np.zeros(frame_maker.shape, bool)
    hot[100:900:50, 100:900:50] = True
    frame[hot] = 5000
    # Without the mask and the hot-pixel check they do look like peaks.
    assert finder_for(frame_maker, max_peak_fraction=1.0).find(frame).n_peaks >= hot.sum()
    masked = PeakFinder(
        frame_maker.shape, beam_center=frame_maker.beam_center, mask=frame_maker.mask | hot
    )
    assert masked.find(frame).n_peaks == 0
    # By default a single bright pixel over flat surroundings is recognised as hot.
    assert finder_for(frame_maker).find(frame).n_peaks == 0


def test_float_frames_give_the_same_peaks(frame_maker):
    frame, _ = frame_maker.frame(11, hit=True)
    finder = finder_for(frame_maker)
    as_int = finder.find(frame)
    as_float = frame.astype(np.float32)
    as_float[frame_maker.mask] = np.nan
    as_float_result = finder.find(as_float)
    assert as_int.n_peaks > 20
    np.testing.assert_allclose(as_float_result.x, as_int.x)
    np.testing.assert_allclose(as_float_result.intensity, as_int.intensity, rtol=1e-6)


def test_peak_table_is_a_msgpack_record(frame_maker):
    frame, _ = frame_maker.frame(12, hit=True)
    record = finder_for(frame_maker).find(frame).to_record()
    decoded = msgpack.unpackb(msgpack.packb(record))
    assert set(PEAK_COLUMNS) <= set(decoded)
    assert decoded["n_peaks"] == len(decoded["x"]) > 0
    assert decoded["is_hit"] is True


def test_wrong_frame_shape_is_a_clear_error(frame_maker):
    with pytest.raises(ValueError, match=r"frame has shape \(10, 10\).*PeakFinder per detector"):
        finder_for(frame_maker).find(np.zeros((10, 10), np.uint16))


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="min_pixels <= max_pixels"):
        PeakFinder((10, 10), min_pixels=5, max_pixels=2)
    with pytest.raises(ValueError, match="adu_per_photon must be > 0"):
        PeakFinder((10, 10), adu_per_photon=0)


def test_radial_bins_hold_enough_pixels():
    bins, n_bins = radial_bins((200, 300), beam_center=(10.0, 20.0), min_bin_pixels=50)
    counts = np.bincount(bins.ravel())
    assert len(counts) == n_bins
    assert counts.min() >= 50
    # Bins grow outwards: the bin index never decreases with radius.
    y, x = np.ogrid[:200, :300]
    order = np.argsort(np.hypot(x - 10.0, y - 20.0).ravel(), kind="stable")
    assert np.all(np.diff(bins.ravel()[order]) >= 0)


def test_detector_units_scale_out_with_adu_per_photon(frame_maker):
    frame, _ = frame_maker.frame(13, hit=True)
    in_photons = finder_for(frame_maker).find(frame)
    in_adu = frame.astype(np.float32) * 10.0
    in_adu[frame_maker.mask] = np.nan
    scaled = finder_for(frame_maker, adu_per_photon=10.0).find(in_adu)
    assert in_photons.n_peaks > 20
    np.testing.assert_allclose(scaled.x, in_photons.x, atol=1e-4)
    np.testing.assert_allclose(scaled.significance, in_photons.significance, rtol=1e-4)
    np.testing.assert_allclose(scaled.intensity, 10.0 * in_photons.intensity, rtol=1e-4)
