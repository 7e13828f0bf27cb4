"""Pixel masks: static masks, EIGER-like module gaps, and hot pixels found on the fly.

Masks follow the NXmx `pixel_mask` convention: an integer per pixel, 0 = good, nonzero
bits say why a pixel is bad. Masked pixels are written as the dtype's maximum in integer
frames (what EIGER itself does for gaps) and as NaN in float frames, so every downstream
step recognises them without carrying the mask along.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MASK_DEAD", "MASK_GAP", "MASK_HOT", "PixelMask", "module_gap_mask"]

# NXmx pixel_mask bits.
MASK_GAP = 1 << 0
MASK_DEAD = 1 << 1
MASK_HOT = 1 << 3


def module_gap_mask(
    shape: tuple[int, int],
    module_shape: tuple[int, int] = (512, 1028),
    gap: tuple[int, int] = (38, 12),
) -> np.ndarray:
    """True on the pixels between detector modules (defaults: EIGER2, rows x columns).

    Raises:
        ValueError: the shape is not a whole number of modules and gaps.
    """
    mask = np.zeros(shape, bool)
    for axis, (size, module, spacing) in enumerate(zip(shape, module_shape, gap, strict=False)):
        period = module + spacing
        if (size + spacing) % period:
            raise ValueError(
                f"image size {size} along axis {axis} is not n * {module} pixels with "
                f"{spacing}-pixel gaps; give module_shape and gap of this detector"
            )
        in_gap = (np.arange(size) % period) >= module
        if axis == 0:
            mask[in_gap, :] = True
        else:
            mask[:, in_gap] = True
    return mask


class PixelMask:
    """Masks pixels of a stream of frames: a static mask plus hot pixels it discovers.

    A pixel is declared hot (NXmx bit 3) once it has exceeded `hot_threshold` in
    `hot_frames` frames; Bragg spots move between frames, hot pixels do not.

    Args:
        shape: frame shape.
        mask: static mask, nonzero = bad (bool or NXmx integer bits), or None.
        hot_threshold: counts above which a pixel is suspicious; None disables discovery.
        hot_frames: in how many frames a pixel must be suspicious to count as hot.

    Raises:
        ValueError: the mask's shape differs from `shape`, or hot_frames < 1.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        mask: np.ndarray | None = None,
        *,
        hot_threshold: float | None = None,
        hot_frames: int = 3,
    ) -> None:
        self.shape = tuple(shape)
        self.pixel_mask = np.zeros(self.shape, np.uint32)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != self.shape:
                raise ValueError(f"mask has shape {mask.shape}, frames {self.shape}")
            if mask.dtype == bool:
                self.pixel_mask[mask] = MASK_DEAD
            else:
                self.pixel_mask[:] = mask
        if hot_frames < 1:
            raise ValueError(f"hot_frames must be >= 1, got {hot_frames!r}")
        self.hot_threshold = hot_threshold
        self.hot_frames = int(hot_frames)
        self._suspicious = np.zeros(self.shape, np.uint16) if hot_threshold is not None else None

    @property
    def bad(self) -> np.ndarray:
        """Boolean map of the pixels currently masked."""
        return self.pixel_mask != 0

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Return a copy of `frame` with masked pixels invalid (dtype max, or NaN).

        Raises:
            ValueError: the frame's shape differs from the mask's.
        """
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise ValueError(f"frame has shape {frame.shape}, the mask {self.shape}")
        if self._suspicious is not None:
            self._suspicious += frame > self.hot_threshold
            newly_hot = (self._suspicious >= self.hot_frames) & (self.pixel_mask == 0)
            self.pixel_mask[newly_hot] |= MASK_HOT
        out = frame.copy()
        if out.dtype.kind == "f":
            out[self.bad] = np.nan
        elif out.dtype.kind in "ui":
            out[self.bad] = np.iinfo(out.dtype).max
        return out
