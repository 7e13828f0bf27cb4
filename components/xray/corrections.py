"""Dark and flat-field correction of detector frames."""

from __future__ import annotations

import numpy as np

__all__ = ["DarkCorrection", "invalid_pixels"]


def invalid_pixels(frame: np.ndarray) -> np.ndarray:
    """Pixels that carry no measurement: an unsigned type's maximum (EIGER gaps), or NaN."""
    if frame.dtype.kind == "u":
        return frame == np.iinfo(frame.dtype).max
    if frame.dtype.kind == "f":
        return np.isnan(frame)
    return np.zeros(frame.shape, bool)


class DarkCorrection:
    """corrected = (frame - dark) / flat, as float32; invalid pixels become NaN.

    Args:
        dark: frame-shaped dark (pedestal) image, or None for no subtraction.
        flat: frame-shaped relative gain (1 = nominal), or None for no division. Pixels
            whose flat is not positive cannot be corrected and become NaN.

    Raises:
        ValueError: dark and flat differ in shape.
    """

    def __init__(self, dark: np.ndarray | None = None, flat: np.ndarray | None = None) -> None:
        self.dark = None if dark is None else np.asarray(dark, np.float32)
        self.inverse_flat = None
        if flat is not None:
            flat = np.asarray(flat, np.float32)
            if self.dark is not None and flat.shape != self.dark.shape:
                raise ValueError(
                    f"dark has shape {self.dark.shape} but flat {flat.shape}; they must match"
                )
            # Multiplying by a precomputed inverse is cheaper per frame than dividing.
            with np.errstate(divide="ignore"):
                self.inverse_flat = np.where(flat > 0, 1.0 / flat, np.nan).astype(np.float32)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Return the corrected frame (a new float32 array).

        Raises:
            ValueError: the frame's shape differs from the dark's or flat's.
        """
        frame = np.asarray(frame)
        reference = self.dark if self.dark is not None else self.inverse_flat
        if reference is not None and frame.shape != reference.shape:
            raise ValueError(
                f"frame has shape {frame.shape} but the dark/flat {reference.shape}; "
                "use calibration images of the same detector mode"
            )
        out = frame.astype(np.float32)
        if self.dark is not None:
            np.subtract(out, self.dark, out=out)
        if self.inverse_flat is not None:
            np.multiply(out, self.inverse_flat, out=out)
        out[invalid_pixels(frame)] = np.nan
        return out
