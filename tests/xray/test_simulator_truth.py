"""PeakFinder at its default settings against the built-in simulator's own ground truth.

The simulator (`detector/Simulate`) at its defaults too: 20 % hits, ~40 spots per hit,
1 photon/pixel background, dead and hot pixels at their defaults, no mask given to the
finder (as in a graph without a MASK connection). Issue 6 asks for hit recall and
precision >= 0.98 and spot positions within 1 px.
"""

from __future__ import annotations

import numpy as np
import pytest
from fbp_components.detector.simulate import DetectorSimulator
from fbp_components.xray.peaks import PeakFinder


def _score(model: str, frames: int, seed: int, match_spots):
    simulator = DetectorSimulator(model, seed=seed)
    finder = PeakFinder(simulator.shape, beam_center=simulator.beam_center)
    truth_hits, found_hits, errors, strong_found = [], [], [], []
    for seq in range(frames):
        frame, truth = simulator.frame(seq)
        result = finder.find(frame)
        truth_hits.append(truth.is_hit)
        found_hits.append(result.is_hit)
        if truth.is_hit:
            distance = match_spots(truth.x, truth.y, result.x, result.y)
            errors.append(distance[np.isfinite(distance)])
            strong_found.append(np.isfinite(distance[truth.snr >= 5]))
    truth_hits, found_hits = np.array(truth_hits), np.array(found_hits)
    true_positives = (truth_hits & found_hits).sum()
    recall = true_positives / truth_hits.sum()
    precision = true_positives / max(found_hits.sum(), 1)
    errors = np.concatenate(errors)
    spot_recall = np.concatenate(strong_found).mean()
    print(
        f"\n{model}: {truth_hits.sum()} hits in {frames} frames, hit recall {recall:.3f}, "
        f"precision {precision:.3f}, spot recall (SNR >= 5) {spot_recall:.3f}, "
        f"position error mean {errors.mean():.3f} px, max {errors.max():.3f} px"
    )
    return truth_hits.sum(), recall, precision, errors, spot_recall


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("model", "frames"), [("eiger2-1m", 150), ("eiger2-4m", 40)])
def test_hits_and_spots_of_the_simulator_at_default_settings(model, frames, match_spots):
    hits, recall, precision, errors, spot_recall = _score(model, frames, 11, match_spots)
    assert hits >= 5
    assert recall >= 0.98
    assert precision >= 0.98
    assert errors.max() < 1.0
    assert spot_recall >= 0.95
