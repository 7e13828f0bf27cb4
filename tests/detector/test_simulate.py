"""The simulator: geometry, determinism, Poisson statistics, spot truth, output buffers."""

import numpy as np
import pytest
from fbp_components.detector.geometry import MASK_DEAD, MASK_GAP, MASK_HOT, geometry
from fbp_components.detector.simulate import DetectorSimulator, FrameTruth


@pytest.fixture(scope="module")
def small():
    return DetectorSimulator("eiger2-1m", seed=7, hit_rate=0.5)


def test_eiger2_geometries_match_the_real_detectors():
    assert geometry("eiger2-4m").shape == (2162, 2068)
    assert geometry("EIGER2-16M").shape == (4362, 4148)
    assert geometry("eiger2-500k").shape == (512, 1028)
    gaps = geometry("eiger2-4m").gap_mask()
    # 38-pixel gaps between module rows, 12-pixel gaps between module columns.
    assert gaps[512:550, :].all() and not gaps[511, :1028].any() and not gaps[550, :1028].any()
    assert gaps[:, 1028:1040].all() and not gaps[:512, 1027].any()
    assert gaps.sum() == 2162 * 2068 - 8 * 512 * 1028


def test_unknown_model_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown detector model 'eiger9'.*eiger2-4m"):
        geometry("eiger9")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hit_rate": 1.5}, "hit_rate must be between 0.0 and 1.0, got 1.5"),
        ({"dtype": "float32"}, "dtype must be 'uint16' or 'uint32'"),
        ({"spot_photons": (10, 5)}, "spot_photons must be"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DetectorSimulator("eiger2-500k", **kwargs)


def test_frames_are_deterministic_per_seq_and_differ_between_seqs(small):
    first, truth_first = small.frame(3)
    again, truth_again = DetectorSimulator("eiger2-1m", seed=7, hit_rate=0.5).frame(3)
    other, _ = small.frame(4)
    assert np.array_equal(first, again)
    assert truth_first.to_meta() == truth_again.to_meta()
    assert not np.array_equal(first, other)
    reseeded, _ = DetectorSimulator("eiger2-1m", seed=8, hit_rate=0.5).frame(3)
    assert not np.array_equal(first, reseeded)


def test_renders_into_a_caller_buffer_including_a_raw_memoryview(small):
    expected, _ = small.frame(11)
    buffer = bytearray(expected.nbytes)
    small.render_into(11, memoryview(buffer))
    assert np.array_equal(np.frombuffer(buffer, dtype=np.uint16).reshape(small.shape), expected)
    with pytest.raises(ValueError, match="out must be a writable C-contiguous uint16"):
        small.render_into(0, np.empty((10, 10), dtype=np.uint16))


def test_gaps_and_dead_pixels_read_the_invalid_value_and_hot_pixels_are_hot(small):
    image, _ = small.frame(0)
    mask = small.pixel_mask
    assert (image[(mask & (MASK_GAP | MASK_DEAD)) != 0] == 65535).all()
    assert (mask == MASK_DEAD).sum() > 0 and (mask == MASK_HOT).sum() > 0
    assert image[mask == MASK_HOT].min() > 150
    assert image[mask == 0].max() < 65535


def test_background_is_poisson_with_the_stated_mean():
    sim = DetectorSimulator("eiger2-500k", seed=1, hit_rate=0.0, hot_fraction=0, dead_fraction=0)
    frames = np.stack([sim.frame(seq)[0] for seq in range(40)]).astype(np.float64)
    region = (slice(200, 300), slice(400, 600))  # near the beam: mean about 1 photon
    expected = sim.background_map[region].astype(np.float64)
    mean = frames[:, region[0], region[1]].mean(axis=0)
    variance = frames[:, region[0], region[1]].var(axis=0)
    # Averaged over 20000 pixels x 40 frames: mean and variance both equal the Poisson mean.
    assert abs(mean.mean() / expected.mean() - 1) < 0.01
    assert abs(variance.mean() / expected.mean() - 1) < 0.03
    # Poisson P(0) = exp(-mean): the zero fraction pins the shape, not only two moments.
    zeros = (frames[:, region[0], region[1]] == 0).mean()
    assert abs(zeros - np.exp(-expected).mean()) < 0.005


def test_hit_rate_and_spot_truth():
    sim = DetectorSimulator("eiger2-500k", seed=5, hit_rate=0.3, spots_per_hit=30, min_spots=10)
    hits = 0
    scratch = np.empty(sim.shape, np.uint16)
    for seq in range(200):
        truth = sim.render_into(seq, scratch)
        hits += truth.is_hit
        if truth.is_hit:
            assert truth.n_spots >= 10
        else:
            assert truth.n_spots == 0
    assert 40 <= hits <= 80  # 200 frames at 30 %: 60 +- 3 sigma

    seq = next(s for s in range(50) if sim.render_into(s, np.empty(sim.shape, np.uint16)).is_hit)
    image, truth = sim.frame(seq)
    background, _ = DetectorSimulator(
        "eiger2-500k", seed=5, hit_rate=0.0, spots_per_hit=30, min_spots=10
    ).frame(seq)
    signal = image.astype(np.int64) - background.astype(np.int64)
    for x, y, photons in zip(truth.x, truth.y, truth.photons, strict=False):
        row, col = int(round(y)), int(round(x))
        stamp = signal[row - 4 : row + 5, col - 4 : col + 5].clip(min=0)
        rows, cols = np.mgrid[row - 4 : row + 5, col - 4 : col + 5]
        total = stamp.sum()
        # Photons are Poisson around the expectation; the centroid sits on the true centre.
        assert abs(total - photons) < 5 * np.sqrt(photons) + 3
        if total > 200:
            assert abs((stamp * cols).sum() / total - x) < 0.3
            assert abs((stamp * rows).sum() / total - y) < 0.3
    assert (truth.snr > 0).all() and (truth.peak <= truth.photons).all()
    separations = np.hypot(truth.x[:, None] - truth.x, truth.y[:, None] - truth.y)
    assert separations[~np.eye(truth.n_spots, dtype=bool)].min() >= sim.min_separation


def test_truth_round_trips_through_plain_metadata(small):
    _, truth = next(small.frame(s) for s in range(20) if small.frame(s)[1].is_hit)
    meta = truth.to_meta()
    again = FrameTruth.from_meta(truth.seq, meta)
    assert meta["n_spots"] == truth.n_spots and again.n_spots == truth.n_spots
    assert np.allclose(again.x, truth.x, atol=1e-4) and np.allclose(again.snr, truth.snr, atol=1e-4)


def test_powder_rings_raise_the_mean_on_the_ring():
    sim = DetectorSimulator("eiger2-500k", seed=2, hit_rate=0, rings=[(200.0, 20.0, 3.0)])
    cx, cy = sim.beam_center
    on_ring = sim.background_map[int(cy), int(cx + 200)]
    off_ring = sim.background_map[int(cy), int(cx + 150)]
    assert on_ring > 15 and off_ring < 2


def test_uint32_frames():
    sim = DetectorSimulator("eiger2-500k", seed=2, dtype="uint32")
    image, _ = sim.frame(0)
    assert image.dtype == np.uint32 and image[sim.pixel_mask == MASK_GAP].size == 0
    assert (image[sim.pixel_mask == MASK_DEAD] == 2**32 - 1).all()


def test_truth_is_known_before_rendering(small):
    for seq in range(6):
        before = small.truth(seq)
        _, rendered = small.frame(seq)
        assert before.to_meta() == rendered.to_meta()
