"""RadialIntegrator against a direct pyFAI call on the same frame and geometry."""

from __future__ import annotations

import numpy as np
import pytest
from fbp_components.xray.radial import RadialIntegrator
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

SHAPE = (512, 1028)
GEOMETRY = {
    "distance": 0.12,
    "poni1": 0.021,
    "poni2": 0.037,
    "rot1": 0.01,
    "rot2": -0.02,
    "wavelength": 1.0e-10,
}


def powder_frame(seed=0):
    rows, cols = SHAPE
    y, x = np.ogrid[:rows, :cols]
    r = np.hypot(x - 0.037 / 75e-6, y - 0.021 / 75e-6)
    expected = 2.0 + 50.0 * np.exp(-0.5 * ((r - 200.0) / 3.0) ** 2)
    frame = np.random.default_rng(seed).poisson(expected).astype(np.uint16)
    frame[100:110, :] = 65535  # a stripe of invalid pixels
    return frame


def direct_pyfai(frame, **kwargs):
    detector = Detector(pixel1=75e-6, pixel2=75e-6, max_shape=SHAPE)
    g = GEOMETRY
    ai = AzimuthalIntegrator(
        dist=g["distance"],
        poni1=g["poni1"],
        poni2=g["poni2"],
        rot1=g["rot1"],
        rot2=g["rot2"],
        detector=detector,
        wavelength=g["wavelength"],
    )
    return ai, ai.integrate1d(
        frame,
        400,
        unit="q_nm^-1",
        dummy=65535.0,
        error_model="poisson",
        method=("bbox", "csr", "cython"),
        **kwargs,
    )


def test_profile_equals_a_direct_pyfai_call():
    frame = powder_frame()
    integrator = RadialIntegrator(shape=SHAPE, npt=400, **GEOMETRY)
    ours = integrator.integrate(frame)
    _, reference = direct_pyfai(frame)
    np.testing.assert_allclose(ours.radial, reference.radial, rtol=1e-6)
    np.testing.assert_allclose(ours.intensity, reference.intensity, rtol=1e-6)
    np.testing.assert_allclose(ours.sigma, reference.sigma, rtol=1e-6)
    # The ring (smeared by the tilt) stands well above the flat background.
    assert ours.intensity.max() > 3 * np.median(ours.intensity)
    # The integrator is reused: a second frame gives that frame's profile, not the first's.
    second = integrator.integrate(powder_frame(seed=1))
    _, reference_second = direct_pyfai(powder_frame(seed=1))
    np.testing.assert_allclose(second.intensity, reference_second.intensity, rtol=1e-6)


def test_geometry_from_a_poni_file(tmp_path):
    frame = powder_frame()
    ai, reference = direct_pyfai(frame)
    poni = tmp_path / "geometry.poni"
    ai.save(str(poni))
    ours = RadialIntegrator(str(poni), npt=400).integrate(frame)
    np.testing.assert_allclose(ours.intensity, reference.intensity, rtol=1e-6)
    record = ours.to_record()
    assert record["unit"] == "q_nm^-1" and len(record["radial"]) == 400


def test_incomplete_geometry_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="give either a PONI file or the geometry"):
        RadialIntegrator(shape=SHAPE)
    with pytest.raises(FileNotFoundError):
        RadialIntegrator(str(tmp_path / "missing.poni"))
    integrator = RadialIntegrator(shape=SHAPE, npt=100, **GEOMETRY)
    with pytest.raises(ValueError, match=r"frame has shape \(10, 10\)"):
        integrator.integrate(np.zeros((10, 10), np.uint16))
