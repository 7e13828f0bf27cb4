"""The science demo graphs in graphs/ run as users run them, and write what they promise."""

from __future__ import annotations

import math
import pathlib

import h5py
import numpy as np
import pytest

GRAPHS = pathlib.Path(__file__).resolve().parents[2] / "graphs"


def _ring_q(radius_px: float, pixel_m=75e-6, distance_m=0.15, wavelength_nm=0.1) -> float:
    """Where a ring of this radius (pixels) lies in q (nm^-1) for the simulator's geometry."""
    two_theta = math.atan(radius_px * pixel_m / distance_m)
    return 4 * math.pi * math.sin(two_theta / 2) / wavelength_nm


@pytest.mark.timeout(120)
def test_saxs_live_integrates_every_frame_and_finds_the_rings(run_fbp, tmp_path, check_nexus):
    result = run_fbp("run", GRAPHS / "saxs_live.fbp", "--quiet", cwd=tmp_path, timeout=100)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "fbp-output" / "saxs_profiles.h5"
    assert "fbp-output/saxs_profiles.h5" in result.stdout
    assert "'profiles': 60" in result.stdout
    check_nexus(path)
    with h5py.File(path, "r") as f:
        profile = f["/entry/radial_profile"]
        assert sorted(profile["seq"][:]) == list(range(60))
        q, intensity = profile["radial"][:], profile["intensity"][:].mean(axis=0)
    # the three simulated powder rings (radius 120, 260, 410 px) are the profile's maxima
    for radius in (120, 260, 410):
        expected = _ring_q(radius)
        near = (q > expected - 0.5) & (q < expected + 0.5)
        window = (q > expected - 3) & (q < expected + 3)
        assert intensity[near].max() == pytest.approx(intensity[window].max()), radius
        assert intensity[near].max() > 3 * np.median(intensity[window])
