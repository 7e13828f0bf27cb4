"""xray: hit finding, corrections and azimuthal integration for light-source frames.

`fbp components xray` lists the components with their ports. The science lives in plain
modules usable without the runtime: `peaks` (PeakFinder), `corrections`, `masking`,
`radial` (pyFAI), `selection` (ROI, sums, hit decisions).
"""

from fbp_components.xray.components import (
    ROI,
    DarkCorrect,
    HitFilter,
    Mask,
    PeakFinder,
    RadialProfile,
    Sum,
)

__all__ = ["ROI", "DarkCorrect", "HitFilter", "Mask", "PeakFinder", "RadialProfile", "Sum"]
