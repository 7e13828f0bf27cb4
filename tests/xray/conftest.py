"""A self-contained generator of diffraction-like frames with known spots, for the xray tests.

Poisson background falling off with radius, EIGER-like module gap and dead pixels (reading
the dtype maximum), and Gaussian spots integrated over pixels. Spot SNR follows the
detector simulator's definition: S / sqrt(S + B) in the 3 x 3 box around the spot's
brightest pixel, S the expected spot photons and B the expected background in that box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import special

SHAPE = (1062, 1028)  # an EIGER2 1M: two modules, one 38-row gap
GAP_ROWS = slice(512, 550)
INVALID = 65535


@dataclass
class Truth:
    is_hit: bool
    x: np.ndarray
    y: np.ndarray
    photons: np.ndarray
    snr: np.ndarray


class FrameMaker:
    """Frames of one geometry; `frame(seed, ...)` returns (uint16 frame, Truth)."""

    def __init__(self, shape=SHAPE, background=1.0, sigma=0.8, beam_center=None):
        self.shape = shape
        rows, cols = shape
        self.beam_center = beam_center or (cols / 2 + 7.3, rows / 2 - 11.6)
        y, x = np.ogrid[:rows, :cols]
        radius = np.hypot(x - self.beam_center[0], y - self.beam_center[1])
        self.background = background * (0.3 + 0.7 * np.exp(-radius / 400.0))
        self.sigma = sigma
        self.mask = np.zeros(shape, bool)
        if rows > GAP_ROWS.stop:
            self.mask[GAP_ROWS] = True
        dead = np.random.default_rng(99).random(shape) < 1e-4
        self.mask |= dead

    def frame(self, seed, *, hit, n_spots=40, photons=(30.0, 3000.0), min_separation=8.0):
        rng = np.random.default_rng(seed)
        rows, cols = self.shape
        expected = self.background.copy()
        xs, ys = [], []
        if hit:
            margin = 6
            while len(xs) < n_spots:
                x = rng.uniform(margin, cols - margin)
                y = rng.uniform(margin, rows - margin)
                if GAP_ROWS.start - 4 < y < GAP_ROWS.stop + 4:
                    continue
                if any(
                    math.hypot(x - a, y - b) < min_separation for a, b in zip(xs, ys, strict=False)
                ):
                    continue
                xs.append(x)
                ys.append(y)
        xs, ys = np.array(xs), np.array(ys)
        total = np.exp(rng.uniform(math.log(photons[0]), math.log(photons[1]), len(xs)))
        snr = np.empty(len(xs))
        half = math.ceil(4 * self.sigma) + 1
        for i, (x, y, s) in enumerate(zip(xs, ys, total, strict=False)):
            c0, r0 = round(x) - half, round(y) - half
            edges_c = np.arange(c0, c0 + 2 * half + 2) - 0.5
            edges_r = np.arange(r0, r0 + 2 * half + 2) - 0.5
            fc = np.diff(special.ndtr((edges_c - x) / self.sigma))
            fr = np.diff(special.ndtr((edges_r - y) / self.sigma))
            stamp = s * np.outer(fr, fc)
            expected[r0 : r0 + 2 * half + 1, c0 : c0 + 2 * half + 1] += stamp
            pr, pc = np.unravel_index(np.argmax(stamp), stamp.shape)
            box = (slice(r0 + pr - 1, r0 + pr + 2), slice(c0 + pc - 1, c0 + pc + 2))
            spot = stamp[pr - 1 : pr + 2, pc - 1 : pc + 2].sum()
            bkg = self.background[box].sum()
            snr[i] = spot / math.sqrt(spot + bkg)
        frame = np.minimum(rng.poisson(expected), INVALID - 1).astype(np.uint16)
        frame[self.mask] = INVALID
        return frame, Truth(bool(hit), xs, ys, total, snr)


@pytest.fixture(scope="session")
def frame_maker():
    return FrameMaker()


def match_spots(truth_x, truth_y, found_x, found_y, radius=2.0):
    """Per truth spot, the distance to the nearest found peak (inf if none within radius)."""
    if len(found_x) == 0:
        return np.full(len(truth_x), np.inf)
    dx = truth_x[:, None] - np.asarray(found_x)[None, :]
    dy = truth_y[:, None] - np.asarray(found_y)[None, :]
    distance = np.sqrt(dx**2 + dy**2).min(axis=1)
    return np.where(distance <= radius, distance, np.inf)


@pytest.fixture(scope="session")
def frame_maker_class():
    """The FrameMaker class, for tests that need another background level."""
    return FrameMaker


@pytest.fixture(name="match_spots", scope="session")
def match_spots_fixture():
    return match_spots
