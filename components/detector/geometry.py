"""Pixel layout of EIGER2-like detectors: modules, the gaps between them, and the pixel mask.

An EIGER2 module is 1028 x 512 pixels (fast x slow). Modules tile the detector with gaps
of 12 pixels between columns of modules and 38 pixels between rows; gap pixels carry no
signal. The models differ only in how many modules they have:

| name        | modules (fast x slow) | image (height x width) |
|-------------|-----------------------|------------------------|
| eiger2-500k | 1 x 1                 | 512 x 1028             |
| eiger2-1m   | 1 x 2                 | 1062 x 1028            |
| eiger2-4m   | 2 x 4                 | 2162 x 2068            |
| eiger2-9m   | 3 x 6                 | 3262 x 3108            |
| eiger2-16m  | 4 x 8                 | 4362 x 4148            |

The pixel mask follows the NXmx convention (bit 0 gap, 1 dead, 3 over-responding/hot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "MASK_DEAD",
    "MASK_GAP",
    "MASK_HOT",
    "MODELS",
    "DetectorGeometry",
    "geometry",
]

MODULE_FAST = 1028
MODULE_SLOW = 512
GAP_FAST = 12
GAP_SLOW = 38

# NXmx pixel_mask bits.
MASK_GAP = 1 << 0
MASK_DEAD = 1 << 1
MASK_HOT = 1 << 3

MODELS: dict[str, tuple[int, int]] = {
    "eiger2-500k": (1, 1),
    "eiger2-1m": (1, 2),
    "eiger2-4m": (2, 4),
    "eiger2-9m": (3, 6),
    "eiger2-16m": (4, 8),
}


@dataclass(frozen=True)
class DetectorGeometry:
    """A detector made of identical modules separated by gaps.

    Attributes:
        name: model name, e.g. "eiger2-4m".
        modules_fast: modules along a row (x).
        modules_slow: modules along a column (y).
        module_shape: (slow, fast) pixels of one module.
        gap: (slow, fast) pixels between neighbouring modules.
        pixel_size: pixel edge in metres (75 um for EIGER2).
    """

    name: str
    modules_fast: int
    modules_slow: int
    module_shape: tuple[int, int] = (MODULE_SLOW, MODULE_FAST)
    gap: tuple[int, int] = (GAP_SLOW, GAP_FAST)
    pixel_size: float = 75e-6

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the whole image in pixels, gaps included."""
        height = self.modules_slow * self.module_shape[0] + (self.modules_slow - 1) * self.gap[0]
        width = self.modules_fast * self.module_shape[1] + (self.modules_fast - 1) * self.gap[1]
        return height, width

    def module_origins(self) -> list[tuple[int, int]]:
        """(row, column) of the first pixel of every module, row by row."""
        step_slow = self.module_shape[0] + self.gap[0]
        step_fast = self.module_shape[1] + self.gap[1]
        return [
            (slow * step_slow, fast * step_fast)
            for slow in range(self.modules_slow)
            for fast in range(self.modules_fast)
        ]

    def gap_mask(self) -> np.ndarray:
        """Boolean image, True on gap pixels (between modules)."""
        gaps = np.ones(self.shape, dtype=bool)
        rows, cols = self.module_shape
        for row, col in self.module_origins():
            gaps[row : row + rows, col : col + cols] = False
        return gaps


def geometry(name: str) -> DetectorGeometry:
    """The geometry of a model by name (case-insensitive), e.g. `geometry("eiger2-16m")`.

    Raises:
        ValueError: the name is not one of `MODELS`.
    """
    key = name.strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown detector model {name!r}; valid models: {', '.join(MODELS)}")
    fast, slow = MODELS[key]
    return DetectorGeometry(key, fast, slow)
