"""Azimuthal integration with pyFAI, set up once per geometry and reused for every frame.

pyFAI builds a sparse (CSR) pixel-to-bin matrix on the first `integrate1d` call and caches
it on the integrator; making an integrator per frame would rebuild it every time (half a
second for a 1M detector instead of a few milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RadialIntegrator", "RadialProfile"]

DEFAULT_METHOD = ("bbox", "csr", "cython")


@dataclass
class RadialProfile:
    """One azimuthally integrated profile.

    Attributes:
        radial: bin centres in `unit`.
        intensity: mean intensity per bin (solid-angle corrected, as pyFAI computes it).
        sigma: its standard error (Poisson error model), or None.
        unit: pyFAI unit name of `radial`, e.g. "q_nm^-1" or "2th_deg".
    """

    radial: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray | None
    unit: str

    def to_record(self) -> dict:
        """A msgpack-able mapping of the profile."""
        return {
            "radial": self.radial.tolist(),
            "intensity": self.intensity.tolist(),
            "sigma": None if self.sigma is None else self.sigma.tolist(),
            "unit": self.unit,
        }


class RadialIntegrator:
    """Integrates frames of one geometry into 1-D profiles with pyFAI `integrate1d`.

    The geometry comes from a PONI file (pyFAI-calib2's output) or from explicit
    parameters in pyFAI's convention (metres, radians; poni1 along rows, poni2 along
    columns).

    Args:
        poni: path of a PONI file, or None to use the explicit parameters.
        shape: frame shape (rows, columns); needed with explicit parameters.
        distance, poni1, poni2, rot1, rot2, rot3, wavelength: geometry, metres/radians.
        pixel_size: pixel edge in metres (75 um for EIGER2).
        npt: number of radial bins.
        unit: pyFAI radial unit ("q_nm^-1", "q_A^-1", "2th_deg", "r_mm", ...).
        mask: frame-shaped, nonzero = ignore.
        error_model: "poisson" to get `sigma`, or None.
        method: pyFAI integration method.

    Raises:
        ValueError: the geometry is incomplete, or a parameter is invalid.
        FileNotFoundError: the PONI file does not exist.
    """

    def __init__(
        self,
        poni: str | None = None,
        *,
        shape: tuple[int, int] | None = None,
        distance: float | None = None,
        poni1: float = 0.0,
        poni2: float = 0.0,
        rot1: float = 0.0,
        rot2: float = 0.0,
        rot3: float = 0.0,
        wavelength: float = 1e-10,
        pixel_size: float = 75e-6,
        npt: int = 1000,
        unit: str = "q_nm^-1",
        mask: np.ndarray | None = None,
        error_model: str | None = "poisson",
        method=DEFAULT_METHOD,
    ) -> None:
        from pyFAI.detectors import Detector
        from pyFAI.integrator.azimuthal import AzimuthalIntegrator

        if npt < 2:
            raise ValueError(f"npt must be >= 2 radial bins, got {npt!r}")
        if poni:
            import pyFAI

            with open(poni):  # a clear FileNotFoundError before pyFAI's own messages
                pass
            self.integrator = pyFAI.load(poni)
        else:
            if distance is None or shape is None:
                raise ValueError(
                    "give either a PONI file or the geometry: shape and distance are "
                    f"required (got shape={shape!r}, distance={distance!r})"
                )
            detector = Detector(pixel1=pixel_size, pixel2=pixel_size, max_shape=tuple(shape))
            self.integrator = AzimuthalIntegrator(
                dist=distance,
                poni1=poni1,
                poni2=poni2,
                rot1=rot1,
                rot2=rot2,
                rot3=rot3,
                detector=detector,
                wavelength=wavelength,
            )
        self.npt = int(npt)
        self.unit = unit
        self.mask = None if mask is None else np.asarray(mask).astype(np.int8)
        self.error_model = error_model
        self.method = method

    def integrate(self, frame: np.ndarray) -> RadialProfile:
        """Integrate one frame. Invalid pixels (unsigned dtype maximum, NaN) are ignored.

        Raises:
            ValueError: the frame does not fit the geometry.
        """
        frame = np.asarray(frame)
        shape = self.integrator.detector.max_shape
        if shape is not None and tuple(frame.shape) != tuple(shape):
            raise ValueError(
                f"frame has shape {frame.shape}, the geometry's detector {tuple(shape)}"
            )
        dummy = float(np.iinfo(frame.dtype).max) if frame.dtype.kind == "u" else None
        result = self.integrator.integrate1d(
            frame,
            self.npt,
            unit=self.unit,
            mask=self.mask,
            dummy=dummy,
            error_model=self.error_model,
            method=self.method,
        )
        return RadialProfile(
            radial=np.asarray(result.radial),
            intensity=np.asarray(result.intensity),
            sigma=None if result.sigma is None else np.asarray(result.sigma),
            unit=str(self.unit),
        )
