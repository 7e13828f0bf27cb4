"""Replaying frames from HDF5/NeXus files: NXmx master files with external data files.

A DECTRIS/NXmx series is a master file whose `/entry/data` group holds external links
(`data_000001`, `data_000002`, ...) to data files, each with a 3-D dataset of frames,
usually chunked one frame per chunk and compressed with bitshuffle-LZ4. HDF5 resolves the
links relative to the master file's folder, and `hdf5plugin` provides the filters, so
reading is plain h5py: each frame is read straight into the caller's buffer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filters with HDF5)
import numpy as np

__all__ = ["HDF5FrameReader", "Pacer"]

# NXmx fields worth passing downstream with a replayed series, if the file has them.
_DETECTOR_FIELDS = {
    "beam_center_x": "/entry/instrument/detector/beam_center_x",
    "beam_center_y": "/entry/instrument/detector/beam_center_y",
    "pixel_size_x": "/entry/instrument/detector/x_pixel_size",
    "pixel_size_y": "/entry/instrument/detector/y_pixel_size",
    "detector_distance": "/entry/instrument/detector/distance",
    "count_time": "/entry/instrument/detector/count_time",
    "frame_time": "/entry/instrument/detector/frame_time",
    "incident_wavelength": "/entry/instrument/beam/incident_wavelength",
    "saturation_value": "/entry/instrument/detector/saturation_value",
    "detector_description": "/entry/instrument/detector/description",
}
_MASK_PATHS = (
    "/entry/instrument/detector/pixel_mask",
    "/entry/instrument/detector/detectorSpecific/pixel_mask",
)


class Pacer:
    """Spaces events `1/rate` seconds apart on a fixed schedule (no drift); rate 0: no wait."""

    def __init__(self, rate: float) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0 frames per second (0: unlimited), got {rate!r}")
        self.period = 1.0 / rate if rate > 0 else 0.0
        self.start: float | None = None
        self.count = 0

    def wait(self) -> None:
        """Sleep until the next event is due."""
        if self.period:
            now = time.monotonic()
            if self.start is None:
                self.start = now
            delay = self.start + self.count * self.period - now
            if delay > 0:
                time.sleep(delay)
        self.count += 1


class HDF5FrameReader:
    """The frames of one HDF5/NeXus file (or NXmx master file), in order.

    Args:
        path: the file.
        dataset: path of the frame dataset inside the file; default: every 3-D dataset in
            `/entry/data` in name order (NXmx `data_000001`, ...; external links followed),
            else the first 3-D dataset in the file.
        swmr: open in SWMR read mode (for files another process is still writing).

    Raises:
        FileNotFoundError: no such file, or a data file an external link names is missing.
        ValueError: no 3-D frame dataset found, or the datasets disagree on frame shape.
        OSError: the file is not HDF5, or an external data file is missing.
    """

    def __init__(self, path: str | Path, dataset: str | None = None, *, swmr: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no HDF5 file {str(self.path)!r}")
        self.file = h5py.File(self.path, "r", swmr=swmr)
        try:
            self.datasets = self._find(dataset)
        except BaseException:
            self.file.close()
            raise
        shapes = {ds.shape[1:] for ds in self.datasets}
        dtypes = {ds.dtype for ds in self.datasets}
        if len(shapes) != 1 or len(dtypes) != 1:
            self.file.close()
            raise ValueError(
                f"frame datasets in {self.path} disagree: shapes {sorted(shapes)}, "
                f"dtypes {sorted(map(str, dtypes))}"
            )
        self.frame_shape: tuple[int, int] = shapes.pop()
        self.dtype: np.dtype = dtypes.pop()

    def _find(self, name: str | None) -> list[h5py.Dataset]:
        if name is not None:
            if name not in self.file:
                raise ValueError(f"{self.path} has no dataset {name!r}")
            found = self.file[name]
            if not isinstance(found, h5py.Dataset) or found.ndim != 3:
                raise ValueError(f"{self.path}:{name} is not a 3-D dataset of frames")
            return [found]
        group = self.file.get("/entry/data")
        datasets: list[h5py.Dataset] = []
        if isinstance(group, h5py.Group):
            for key in sorted(group):
                member = group.get(key)  # follows external links; None if the target is gone
                link = group.get(key, getlink=True)
                if member is None and isinstance(link, h5py.ExternalLink):
                    raise FileNotFoundError(
                        f"{self.path}: /entry/data/{key} links to {link.filename!r}, which is "
                        f"missing (looked next to the master file); a series is read whole "
                        "or not at all"
                    )
                if isinstance(member, h5py.Dataset) and member.ndim == 3:
                    datasets.append(member)
        if not datasets:
            candidates: list[h5py.Dataset] = []
            self.file.visititems(
                lambda _, obj: (
                    candidates.append(obj)
                    if isinstance(obj, h5py.Dataset) and obj.ndim == 3
                    else None
                )
            )
            datasets = candidates[:1]
        if not datasets:
            raise ValueError(
                f"{self.path} has no 3-D frame dataset (looked in /entry/data and the whole "
                "file); name one with the dataset argument"
            )
        return datasets

    def __len__(self) -> int:
        return sum(ds.shape[0] for ds in self.datasets)

    @property
    def frame_nbytes(self) -> int:
        """Bytes of one frame."""
        return int(np.prod(self.frame_shape)) * self.dtype.itemsize

    def info(self) -> dict:
        """Detector fields of an NXmx file (beam centre, pixel size, ...) that are present."""
        found: dict = {
            "source_file": str(self.path),
            "frames": len(self),
            "image_size_y": self.frame_shape[0],
            "image_size_x": self.frame_shape[1],
        }
        for key, location in _DETECTOR_FIELDS.items():
            item = self.file.get(location)
            if isinstance(item, h5py.Dataset) and item.shape == ():
                value = item[()]
                found[key] = value.decode() if isinstance(value, bytes) else value.item()
        return found

    def pixel_mask(self) -> np.ndarray | None:
        """The NXmx pixel mask if the file has one."""
        for location in _MASK_PATHS:
            item = self.file.get(location)
            if isinstance(item, h5py.Dataset) and item.shape == self.frame_shape:
                return item[()]
        return None

    def read_into(self, index: int, out: np.ndarray) -> None:
        """Read frame `index` (over all data files) into `out` (C-contiguous, frame shape).

        Raises:
            IndexError: no such frame.
        """
        for dataset in self.datasets:
            if index < dataset.shape[0]:
                dataset.read_direct(out, source_sel=np.s_[index])
                return
            index -= dataset.shape[0]
        raise IndexError(f"frame index past the {len(self)} frames of {self.path}")

    def frames(
        self, rate: float = 0.0, start: int = 0, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """New arrays for frames `start`..`stop`, at most `rate` per second (0: no limit)."""
        pacer = Pacer(rate)
        for index in range(start, len(self) if stop is None else min(stop, len(self))):
            pacer.wait()
            out = np.empty(self.frame_shape, dtype=self.dtype)
            self.read_into(index, out)
            yield out

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def __enter__(self) -> HDF5FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
