"""Regions of interest, frame sums and hit selection: the small steps around a hit finder."""

from __future__ import annotations

import re

import numpy as np

from .corrections import invalid_pixels

__all__ = ["FrameSum", "crop", "is_hit", "parse_roi"]

_ROI = re.compile(r"^\s*(\d*):(\d*)\s*,\s*(\d*):(\d*)\s*$")


def parse_roi(text: str) -> tuple[slice, slice]:
    """Parse "row0:row1,col0:col1" (numpy slice syntax, ends exclusive, parts optional).

    Raises:
        ValueError: the text is not of that form.
    """
    match = _ROI.match(text)
    if not match:
        raise ValueError(
            f"ROI must look like 'row0:row1,col0:col1' (e.g. '100:300,0:512'), got {text!r}"
        )
    r0, r1, c0, c1 = (int(v) if v else None for v in match.groups())
    return slice(r0, r1), slice(c0, c1)


def crop(frame: np.ndarray, roi: tuple[slice, slice]) -> np.ndarray:
    """A contiguous copy of the region; the copy keeps the result valid after the input's
    shared-memory slot is freed.

    Raises:
        ValueError: the region is empty for this frame.
    """
    region = np.ascontiguousarray(frame[roi])
    if region.size == 0:
        raise ValueError(f"ROI {roi} selects no pixels of a frame of shape {frame.shape}")
    return region


class FrameSum:
    """Sums of frames: per-frame total counts and the running sum image of a series.

    Invalid pixels (dtype maximum, NaN) count as zero in both.
    """

    def __init__(self) -> None:
        self.image: np.ndarray | None = None
        self.frames = 0

    def add(self, frame: np.ndarray) -> float:
        """Add a frame to the sum image; return its own total.

        Raises:
            ValueError: the frame's shape differs from the earlier frames'.
        """
        frame = np.asarray(frame)
        values = np.where(invalid_pixels(frame), 0, frame).astype(np.float64)
        if self.image is None:
            self.image = np.zeros(frame.shape, np.float64)
        elif self.image.shape != frame.shape:
            raise ValueError(f"frame has shape {frame.shape}, earlier frames {self.image.shape}")
        self.image += values
        self.frames += 1
        return float(values.sum())


def is_hit(meta: dict, min_peaks: int | None = None) -> bool:
    """Whether a packet's metadata marks a hit.

    With `min_peaks`, decides from the peak count `n_peaks`; otherwise uses `hit` as the
    peak finder set it. (`is_hit` is a simulator's ground truth and is never consulted.)

    Raises:
        KeyError: the metadata has neither key (the packet did not pass a peak finder).
    """
    if min_peaks is not None and "n_peaks" in meta:
        return int(meta["n_peaks"]) >= min_peaks
    if "hit" in meta:
        return bool(meta["hit"])
    raise KeyError(
        "packet metadata has no 'hit' or 'n_peaks'; put xray/PeakFinder before HitFilter"
    )
