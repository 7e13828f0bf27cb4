"""NXmx image files: one file per series, frames appended while viewers read (SWMR).

Layout (NXmx application definition, as DECTRIS writes it, in one file):

    /entry                       NXentry   definition="NXmx", start/end times
      data/data                  NXdata    frames (n, rows, columns), one chunk per frame
      instrument                 NXinstrument
        beam                     NXbeam    incident_wavelength
        detector                 NXdetector geometry, pixel mask, sensor, `data` link
          transformations        NXtransformations  detector distance along the beam
          module_<i>             NXdetector_module  hyperslab and pixel directions
          frame_metadata         NXcollection       seq and receive time per frame
      sample                     NXsample
      source                     NXsource

Everything is created before SWMR starts (SWMR allows appending to existing datasets, not
creating new ones); `end_time` is a fixed-length string rewritten on close.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Self

import h5py
import numpy as np

from ._hdf import compression as compression_filters
from ._hdf import field, group, growable, now_iso, time_field

__all__ = ["DetectorDescription", "NXmxWriter"]


@dataclass
class DetectorDescription:
    """What NXmx needs to know about the detector and beam.

    Attributes:
        shape: (rows, columns) of a frame.
        dtype: pixel type, e.g. "uint16".
        pixel_size: pixel edge in metres.
        distance: sample-detector distance in metres.
        beam_center: (x, y) of the direct beam in pixels.
        wavelength: incident wavelength in angstrom.
        module_shape: (rows, columns) of one module; default the whole frame is one module.
        gap: (rows, columns) of the gaps between modules.
        sensor_material, sensor_thickness: sensor (thickness in metres).
        description: detector model, e.g. "EIGER2 X 4M (simulated)".
        count_time: exposure per frame in seconds.
        source_name: facility, e.g. "Simulated source".
        sample_name: sample name.
        pixel_mask: NXmx pixel mask (0 good, bits say why), or None.
    """

    shape: tuple[int, int]
    dtype: str = "uint16"
    pixel_size: float = 75e-6
    distance: float = 0.1
    beam_center: tuple[float, float] | None = None
    wavelength: float = 1.0
    module_shape: tuple[int, int] | None = None
    gap: tuple[int, int] = (38, 12)
    sensor_material: str = "Si"
    sensor_thickness: float = 450e-6
    description: str = "EIGER2-like detector (simulated)"
    count_time: float = 0.001
    source_name: str = "fbp simulated source"
    sample_name: str = "sample"
    pixel_mask: np.ndarray | None = None

    def module_origins(self) -> list[tuple[int, int]]:
        """(row, column) of the first pixel of each module."""
        rows, cols = self.shape
        if self.module_shape is None:
            return [(0, 0)]
        m_rows, m_cols = self.module_shape
        return [
            (r, c)
            for r in range(0, rows, m_rows + self.gap[0])
            for c in range(0, cols, m_cols + self.gap[1])
        ]


class NXmxWriter:
    """Writes one series of frames into one NXmx file; readers may follow it live (SWMR).

    Args:
        path: file to create (its folder is created; an existing file is an error).
        detector: the detector and beam description.
        compression: "bslz4" (default), "lz4", "gzip" or "none".
        title: free text for /entry/title.
        overwrite: replace an existing file instead of refusing.

    Raises:
        FileExistsError: `path` exists and `overwrite` is false.
        ValueError: a frame shape or compression is invalid.

    Use as a context manager, or call `close()`: it records the end time and closes the
    file cleanly, also when the pipeline is stopped.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        detector: DetectorDescription,
        *,
        compression: str = "bslz4",
        title: str = "",
        overwrite: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.detector = detector
        filters = compression_filters(compression)
        if overwrite and os.path.exists(self.path):
            os.unlink(self.path)
        if os.path.exists(self.path):
            raise FileExistsError(
                f"{self.path} exists; NXmx writers never overwrite, pick a new name per series"
            )
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.frames_written = 0
        self._file = h5py.File(self.path, "w", libver="latest")
        try:
            self._build(detector, filters, title)
            self._file.swmr_mode = True
        except BaseException:
            self._file.close()
            os.unlink(self.path)
            raise

    def _build(self, det: DetectorDescription, filters: dict, title: str) -> None:
        f = self._file
        rows, cols = det.shape
        f.attrs["default"] = "entry"
        f.attrs["creator"] = "fbp nexus/WriteNXmx"
        f.attrs["file_name"] = os.path.basename(self.path)
        f.attrs["file_time"] = now_iso()
        entry = group(f, "entry", "NXentry", default="data")
        field(entry, "definition", "NXmx")
        if title:
            field(entry, "title", title)
        start = now_iso()
        time_field(entry, "start_time", start)
        self._end_time = time_field(entry, "end_time", start)
        self._end_estimated = time_field(entry, "end_time_estimated", start)

        data_group = group(entry, "data", "NXdata", signal="data")
        self.images = growable(data_group, "data", (rows, cols), det.dtype, **filters)
        self.images.attrs["units"] = "counts"

        instrument = group(entry, "instrument", "NXinstrument")
        field(instrument, "name", "fbp pipeline")
        beam = group(instrument, "beam", "NXbeam")
        field(beam, "incident_wavelength", float(det.wavelength), "angstrom")
        field(beam, "profile", "Gaussian")
        # Unpolarised, the simulator's and a safe default; Stokes (I, Q, U, V).
        field(beam, "incident_polarization_stokes", np.array([1.0, 0.0, 0.0, 0.0]))

        detector = group(instrument, "detector", "NXdetector")
        detector["data"] = self.images  # hard link: the same dataset, two NeXus paths
        field(detector, "description", det.description)
        field(detector, "sensor_material", det.sensor_material)
        field(detector, "sensor_thickness", float(det.sensor_thickness), "m")
        field(detector, "x_pixel_size", float(det.pixel_size), "m")
        field(detector, "y_pixel_size", float(det.pixel_size), "m")
        field(detector, "distance", float(det.distance), "m")
        field(detector, "distance_derived", False)
        field(detector, "count_time", float(det.count_time), "s")
        center_x, center_y = det.beam_center or ((cols - 1) / 2, (rows - 1) / 2)
        field(detector, "beam_center_x", float(center_x), "pixel")
        field(detector, "beam_center_y", float(center_y), "pixel")
        dtype = np.dtype(det.dtype)
        if dtype.kind in "ui":
            field(detector, "bit_depth_readout", int(dtype.itemsize * 8))
            field(detector, "saturation_value", int(np.iinfo(dtype).max) - 1)
        if det.pixel_mask is not None:
            mask = np.asarray(det.pixel_mask).astype(np.uint32)
            if mask.shape != (rows, cols):
                raise ValueError(f"pixel_mask has shape {mask.shape}, frames {(rows, cols)}")
            detector.create_dataset("pixel_mask", data=mask, **filters, chunks=mask.shape)
            field(detector, "pixel_mask_applied", False)
        translation_path = "/entry/instrument/detector/transformations/translation"
        field(detector, "depends_on", translation_path)
        transformations = group(detector, "transformations", "NXtransformations")
        field(
            transformations,
            "translation",
            float(det.distance),
            "m",
            transformation_type="translation",
            vector=np.array([0.0, 0.0, 1.0]),
            depends_on=".",
        )
        self._modules(detector, det, translation_path, (center_x, center_y))

        metadata = group(detector, "frame_metadata", "NXcollection")
        self.seq = growable(metadata, "seq", (), np.int64, chunk_rows=1024)
        self.receive_time = growable(metadata, "receive_time", (), np.float64, chunk_rows=1024)
        self.receive_time.attrs["units"] = "s"

        sample = group(entry, "sample", "NXsample")
        field(sample, "name", det.sample_name)
        field(sample, "depends_on", ".")
        source = group(entry, "source", "NXsource")
        field(source, "name", det.source_name)

    def _modules(self, detector, det: DetectorDescription, parent: str, center) -> None:
        rows, cols = det.shape
        size = det.module_shape or (rows, cols)
        pixel = float(det.pixel_size)
        for index, (row0, col0) in enumerate(det.module_origins()):
            module = group(detector, f"module_{index}", "NXdetector_module")
            field(module, "data_origin", np.array([row0, col0], np.int32))
            field(module, "data_size", np.array(size, np.int32))
            module_path = f"/entry/instrument/detector/module_{index}/module_offset"
            # The offset puts the module's first pixel relative to the beam centre in the
            # detector plane (fast pixels along -x, slow along -y, as EIGER files have it).
            field(
                module,
                "module_offset",
                0.0,
                "m",
                transformation_type="translation",
                vector=np.array([1.0, 0.0, 0.0]),
                offset=np.array([(center[0] - col0) * pixel, (center[1] - row0) * pixel, 0.0]),
                offset_units="m",
                depends_on=parent,
            )
            for name, vector in (
                ("fast_pixel_direction", [-1.0, 0.0, 0.0]),
                ("slow_pixel_direction", [0.0, -1.0, 0.0]),
            ):
                field(
                    module,
                    name,
                    pixel,
                    "m",
                    transformation_type="translation",
                    vector=np.array(vector),
                    offset=np.zeros(3),
                    depends_on=module_path,
                )

    def append(self, frame: np.ndarray, seq: int | None = None) -> None:
        """Append one frame; readers in SWMR mode see it after this returns.

        Raises:
            ValueError: the frame's shape or dtype differs from the detector's.
            RuntimeError: the writer is closed.
        """
        if not self._file:
            raise RuntimeError(f"{self.path} is closed; start a new NXmxWriter per series")
        frame = np.asarray(frame)
        if frame.shape != tuple(self.detector.shape) or frame.dtype != np.dtype(
            self.detector.dtype
        ):
            raise ValueError(
                f"frame is {frame.dtype}{list(frame.shape)}, this file holds "
                f"{self.detector.dtype}{list(self.detector.shape)}"
            )
        n = self.frames_written
        for dataset in (self.images, self.seq, self.receive_time):
            dataset.resize(n + 1, axis=0)
        self.images[n] = frame
        self.seq[n] = n if seq is None else int(seq)
        self.receive_time[n] = time.time()
        self.frames_written = n + 1
        # Flushing per frame is what lets a SWMR reader see it; the metadata first, so a
        # reader that sees the frame count also finds the frame's seq.
        self.seq.flush()
        self.receive_time.flush()
        self.images.flush()

    def close(self) -> None:
        """Record the end time and close the file (safe to call twice)."""
        if self._file:
            end = now_iso()
            self._end_time[()] = end
            self._end_estimated[()] = end
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
