"""The components of the `xray` library: thin wrappers around the science modules.

Frames are 2-D arrays; a detector series is one bracket whose OPEN data describe the
detector (Stream V2 start-message names such as `beam_center_x`, as `detector/Simulate`
sends them), which PeakFinder and RadialProfile use when no geometry is configured.
PeakFinder adds `n_peaks` and `hit` to each frame's metadata (leaving a simulator's
ground truth, `is_hit`, untouched); HitFilter reads them.
"""

from __future__ import annotations

import numpy as np

from fbp.component import Component, InPort, OutPort, component
from fbp.packet import Packet, PacketKind
from fbp.types import Array, Bool, Float, Int, Record, Str

from .calibration import load_array
from .corrections import DarkCorrection
from .masking import PixelMask, module_gap_mask
from .peaks import PeakFinder as _PeakFinder
from .radial import RadialIntegrator
from .selection import FrameSum, crop, is_hit, parse_roi

__all__ = ["ROI", "DarkCorrect", "HitFilter", "Mask", "PeakFinder", "RadialProfile", "Sum"]

FRAMES = Array(ndim=2)
MASK_PORT = InPort(
    "MASK",
    Array(ndim=2),
    "pixel mask, nonzero = bad (NXmx bits); connect detector/Simulate MASK, or leave open",
    default=None,
)


class DarkCorrect(Component):
    """Dark (pedestal) subtraction and flat-field division: (frame - DARK) / FLAT.

    Corrected frames are float32 with NaN where a pixel is invalid (gap, dead, or a flat
    that is not positive). Without DARK and FLAT, frames pass unchanged: photon-counting
    detectors such as EIGER need no dark, and a copy into float32 would double the bytes
    every later step reads.
    """

    inports = [
        InPort("IN", FRAMES, "raw frames"),
        InPort("DARK", Str, "dark image: FILE.npy or FILE.h5:/dataset; empty for none", default=""),
        InPort(
            "FLAT", Str, "relative gain image (1 = nominal), same forms; empty for none", default=""
        ),
    ]
    outports = [OutPort("OUT", FRAMES, "corrected frames (float32), or the input unchanged")]

    def setup(self, *, dark, flat) -> None:
        dark_image = load_array(dark) if dark else None
        flat_image = load_array(flat) if flat else None
        self.correction = DarkCorrection(dark_image, flat_image) if dark or flat else None

    def process(self, packet: Packet):
        if self.correction is None:
            return packet  # unchanged: value, seq and metadata
        return self.correction.apply(packet.value)


class Mask(Component):
    """Mark bad pixels invalid: a static mask, EIGER2 module gaps, hot pixels found live.

    Masked pixels become the dtype's maximum in integer frames (EIGER's own convention) and
    NaN in float frames, so every later step ignores them without carrying the mask.
    A pixel above HOT_THRESHOLD in HOT_FRAMES frames is declared hot (spots move, hot
    pixels stay).
    """

    inports = [
        InPort("IN", FRAMES, "frames"),
        MASK_PORT,
        InPort("GAPS", Bool, "also mask EIGER2 module gaps (512 x 1028 modules)", default=False),
        InPort(
            "HOT_THRESHOLD", Float, "counts that make a pixel suspicious; 0 disables", default=0.0
        ),
        InPort("HOT_FRAMES", Int, "frames a pixel must be suspicious in to be hot", default=3),
    ]
    outports = [OutPort("OUT", FRAMES, "frames with bad pixels invalid")]

    def setup(self, *, mask, gaps, hot_threshold, hot_frames) -> None:
        self.static = None if mask is None else np.asarray(mask)
        self.gaps = gaps
        self.hot_threshold = hot_threshold if hot_threshold > 0 else None
        self.hot_frames = hot_frames
        self.masker: PixelMask | None = None

    def process(self, packet: Packet):
        frame = packet.value
        if self.masker is None:
            static = np.zeros(frame.shape, np.uint32) if self.static is None else self.static
            if self.gaps:
                static = np.where(module_gap_mask(frame.shape), 1, static)
            self.masker = PixelMask(
                frame.shape, static, hot_threshold=self.hot_threshold, hot_frames=self.hot_frames
            )
        return self.masker.apply(frame)


class PeakFinder(Component):
    """Find Bragg peaks (peakfinder8 style, Poisson-aware) and flag hits.

    Background statistics per radial bin (iterative sigma clipping); candidate pixels at a
    loose PIXEL_SIGMA level with the exact Poisson tail at low counts; 8-connected groups
    integrated over their pixels plus a 3 x 3 box and kept at MIN_SNR Gaussian-equivalent
    sigmas (again the exact Poisson tail); MIN_PIXELS..MAX_PIXELS candidate pixels; a peak
    whose brightest pixel holds nearly all its intensity is a hot pixel. The beam centre
    comes from BEAM_X/BEAM_Y, else from the series bracket (`beam_center_x/_y`), else the
    image centre. Each frame goes on to OUT with `n_peaks` and `hit` added to its metadata;
    its peak table (columns x, y, max_x, max_y, intensity, background, snr, significance,
    npix, plus n_peaks and is_hit) goes to PEAKS with the frame's seq and metadata.
    """

    inports = [
        InPort("IN", FRAMES, "frames (photon counts; masked pixels at dtype max or NaN)"),
        MASK_PORT,
        InPort("MIN_SNR", Float, "peak significance, Gaussian-equivalent sigmas", default=6.0),
        InPort(
            "PIXEL_SIGMA", Float, "candidate-pixel level, Gaussian-equivalent sigmas", default=2.0
        ),
        InPort("MIN_PIXELS", Int, "fewest candidate pixels per peak", default=1),
        InPort("MAX_PIXELS", Int, "most candidate pixels per peak", default=200),
        InPort("MIN_PEAKS", Int, "peaks that make a frame a hit", default=10),
        InPort("ADU_PER_PHOTON", Float, "detector units per photon", default=1.0),
        InPort(
            "BEAM_X", Float, "beam centre x (column) in pixels; < 0: from the series", default=-1.0
        ),
        InPort(
            "BEAM_Y", Float, "beam centre y (row) in pixels; < 0: from the series", default=-1.0
        ),
    ]
    outports = [
        OutPort("OUT", FRAMES, "the frames, with n_peaks and hit in their metadata"),
        OutPort("PEAKS", Record(), "one peak table per frame"),
    ]

    def setup(self, *, mask, beam_x, beam_y, **options) -> None:
        self.mask = mask
        self.beam = (beam_x, beam_y) if beam_x >= 0 and beam_y >= 0 else None
        self.series_beam = None
        self.options = options
        self.finder: _PeakFinder | None = None

    def bracket(self, packet: Packet) -> None:
        info = packet.value if isinstance(packet.value, dict) else {}
        if packet.kind == PacketKind.OPEN and "beam_center_x" in info:
            beam = (float(info["beam_center_x"]), float(info["beam_center_y"]))
            if beam != self.series_beam:
                self.series_beam = beam
                self.finder = None  # a new geometry: rebuild the radial bins
        for port in ("OUT", "PEAKS"):
            self.out[port].send_packet(packet)

    def process(self, packet: Packet) -> None:
        frame = packet.value
        if self.finder is None or self.finder.shape != frame.shape:
            self.finder = _PeakFinder(
                frame.shape,
                beam_center=self.beam or self.series_beam,
                mask=self.mask,
                pixel_sigma=self.options["pixel_sigma"],
                min_snr=self.options["min_snr"],
                min_pixels=self.options["min_pixels"],
                max_pixels=self.options["max_pixels"],
                min_peaks=self.options["min_peaks"],
                adu_per_photon=self.options["adu_per_photon"],
            )
        result = self.finder.find(frame)
        meta = dict(packet.meta or {})
        meta["n_peaks"] = result.n_peaks
        meta["hit"] = result.is_hit
        self.out.PEAKS.send(result.to_record(), seq=packet.seq, meta=meta)
        self.out.OUT.send(frame, seq=packet.seq, meta=meta)


class HitFilter(Component):
    """Pass only the frames PeakFinder marked as hits.

    The decision is the frame metadata's `hit` (PeakFinder's MIN_PEAKS), or `n_peaks` >=
    MIN_PEAKS when MIN_PEAKS > 0. A frame without either key fails with a message saying
    to put PeakFinder first.
    """

    inports = [
        InPort("IN", FRAMES, "frames that passed PeakFinder"),
        InPort("MIN_PEAKS", Int, "peaks a hit needs; 0: PeakFinder's own decision", default=0),
    ]
    outports = [OutPort("OUT", FRAMES, "hits only, unchanged")]

    def setup(self, *, min_peaks) -> None:
        self.min_peaks = min_peaks if min_peaks > 0 else None

    def process(self, packet: Packet):
        return packet.value if is_hit(packet.meta or {}, self.min_peaks) else None


class RadialProfile(Component):
    """Azimuthal integration with pyFAI `integrate1d`, set up once and reused per frame.

    Geometry: a PONI file (PONI), or DISTANCE with the beam centre (BEAM_X/BEAM_Y, else the
    series bracket's `beam_center_x/_y` and `detector_distance`), PIXEL_SIZE and
    WAVELENGTH, for a detector perpendicular to the beam; GEOMETRY gives these in one
    JSON IIP. Masked pixels (dtype max) and
    MASK are ignored. Each profile is a Record {radial, intensity, sigma, unit}.
    """

    inports = [
        InPort("IN", FRAMES, "frames"),
        MASK_PORT,
        InPort("PONI", Str, "pyFAI PONI file; empty: use the parameters below", default=""),
        InPort(
            "GEOMETRY",
            Record(),
            'all parameters in one IIP: {"distance_m", "pixel_m", "center": [x, y], '
            '"wavelength_A"}; overrides the single ports',
            default=None,
        ),
        InPort(
            "DISTANCE", Float, "sample-detector distance in metres; 0: from the series", default=0.0
        ),
        InPort(
            "BEAM_X", Float, "beam centre x (column) in pixels; < 0: from the series", default=-1.0
        ),
        InPort(
            "BEAM_Y", Float, "beam centre y (row) in pixels; < 0: from the series", default=-1.0
        ),
        InPort("PIXEL_SIZE", Float, "pixel edge in metres", default=75e-6),
        InPort("WAVELENGTH", Float, "wavelength in angstrom; 0: from the series", default=0.0),
        InPort("NPT", Int, "radial bins", default=1000),
        InPort("UNIT", Str, "radial unit: q_nm^-1, q_A^-1, 2th_deg, r_mm", default="q_nm^-1"),
    ]
    outports = [OutPort("OUT", Record(), "one profile per frame")]

    def setup(self, **config) -> None:
        self.config = config
        self.series: dict = {}
        self.integrator: RadialIntegrator | None = None

    def bracket(self, packet: Packet) -> None:
        opens_new_geometry = (
            packet.kind == PacketKind.OPEN
            and isinstance(packet.value, dict)
            and packet.value != self.series
        )
        if opens_new_geometry:
            self.series = dict(packet.value)
            self.integrator = None
        self.out.OUT.send_packet(packet)

    def process(self, packet: Packet):
        frame = packet.value
        if self.integrator is None:
            self.integrator = self._integrator(frame.shape)
        return self.integrator.integrate(frame).to_record()

    def _integrator(self, shape) -> RadialIntegrator:
        c = dict(self.config)
        geometry = c.pop("geometry") or {}
        unknown = set(geometry) - {"distance_m", "pixel_m", "center", "wavelength_A"}
        if unknown:
            raise ValueError(
                f"GEOMETRY has unknown keys {sorted(unknown)}; use distance_m, pixel_m, "
                "center ([x, y] in pixels) and wavelength_A"
            )
        if "distance_m" in geometry:
            c["distance"] = float(geometry["distance_m"])
        if "pixel_m" in geometry:
            c["pixel_size"] = float(geometry["pixel_m"])
        if "center" in geometry:
            c["beam_x"], c["beam_y"] = (float(v) for v in geometry["center"])
        if "wavelength_A" in geometry:
            c["wavelength"] = float(geometry["wavelength_A"])
        common = {"npt": c["npt"], "unit": c["unit"], "mask": c["mask"]}
        if c["poni"]:
            return RadialIntegrator(c["poni"], **common)
        series = self.series
        pixel = c["pixel_size"]
        beam_x = c["beam_x"] if c["beam_x"] >= 0 else series.get("beam_center_x")
        beam_y = c["beam_y"] if c["beam_y"] >= 0 else series.get("beam_center_y")
        distance = c["distance"] or series.get("detector_distance")
        wavelength = c["wavelength"] or series.get("incident_wavelength") or 1.0
        if beam_x is None or beam_y is None or not distance:
            raise ValueError(
                "RadialProfile needs a geometry: give PONI, or DISTANCE and BEAM_X/BEAM_Y "
                "(or a series bracket with detector_distance and beam_center_x/_y)"
            )
        # pyFAI's PONI is the beam's foot point in metres from the first pixel's corner.
        return RadialIntegrator(
            shape=shape,
            distance=float(distance),
            poni1=(float(beam_y) + 0.5) * pixel,
            poni2=(float(beam_x) + 0.5) * pixel,
            pixel_size=pixel,
            wavelength=float(wavelength) * 1e-10,
            **common,
        )


@component(
    inports=[
        InPort("IN", FRAMES, "frames"),
        InPort(
            "ROI", Str, "region 'row0:row1,col0:col1' (numpy slices, ends exclusive)", config=True
        ),
    ],
    outports=[OutPort("OUT", FRAMES, "the region of each frame")],
)
def ROI(frame, *, roi):
    """Cut a rectangular region of interest out of each frame."""
    return crop(frame, parse_roi(roi))


class Sum(Component):
    """Total counts per frame, and the sum image of the whole stream at its end.

    Invalid pixels (dtype max, NaN) count as zero.
    """

    inports = [InPort("IN", FRAMES, "frames")]
    outports = [
        OutPort("OUT", Float, "each frame's total counts"),
        OutPort("IMAGE", Array("float64", ndim=2), "the sum of all frames, sent at the end"),
    ]

    def setup(self) -> None:
        self.summer = FrameSum()

    def process(self, packet: Packet):
        return self.summer.add(packet.value)

    def finish(self) -> None:
        if self.summer.image is not None:
            self.out.IMAGE.send(self.summer.image)
