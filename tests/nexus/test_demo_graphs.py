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


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(120)
def test_stream_ingest_then_replay_keeps_every_hit_bit_identical(run_fbp, tmp_path, check_nexus):
    from fbp_components.detector.simulate import DetectorSimulator

    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    result = run_fbp(
        "run", GRAPHS / "stream_ingest.fbp", "--quiet",
        "--set", f"Det.ENDPOINT={endpoint}", "--set", f"Rx.ENDPOINT={endpoint}",
        cwd=tmp_path, timeout=100,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    hits_file = tmp_path / "fbp-output" / "stream_hits.h5"
    assert "'images': 80" in result.stdout and "'undecodable': 0" in result.stdout
    check_nexus(hits_file, application="NXmx")
    check_nexus(tmp_path / "fbp-output" / "stream_results.h5")

    simulator = DetectorSimulator("eiger2-1m", seed=5, hit_rate=0.3)
    truth_hits = [seq for seq in range(80) if simulator.truth(seq).is_hit]
    with h5py.File(hits_file, "r") as f:
        seqs = list(f["/entry/instrument/detector/frame_metadata/seq"][:])
        order = np.argsort(seqs)
        assert sorted(seqs) == truth_hits  # every hit, nothing else
        first = f["/entry/data/data"][order[0]]
    np.testing.assert_array_equal(first, simulator.frame(truth_hits[0])[0])

    # replay the hits file through a second network into a new NXmx file: bit-identical
    replay = tmp_path / "replay.fbp"
    replay.write_text(
        f"'{hits_file}' -> PATH Read(detector/ReadHDF5) OUT -> IN Write(nexus/WriteNXmx)\n"
        f"'{tmp_path / 'replayed.h5'}' -> PATH Write\n"
    )
    result = run_fbp("run", replay, "--quiet", cwd=tmp_path, timeout=100)
    assert result.returncode == 0, result.stderr
    check_nexus(tmp_path / "replayed.h5", application="NXmx")
    with h5py.File(hits_file, "r") as a, h5py.File(tmp_path / "replayed.h5", "r") as b:
        original, replayed = a["/entry/data/data"], b["/entry/data/data"]
        assert replayed.shape == original.shape and replayed.dtype == original.dtype
        for index in range(original.shape[0]):
            np.testing.assert_array_equal(replayed[index], original[index])
