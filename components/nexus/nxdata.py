"""NXdata result files: peak tables, radial profiles, hit flags, per-frame metadata, losses.

Layout (one NXentry; each result an NXdata group with its own signal, one row per frame):

    /entry
      peaks            NXdata   n_peaks (signal) and padded per-peak tables
                                (x, y, intensity, snr, npix; NaN/0 beyond n_peaks),
                                the CXI convention crystallography tools read
      hits             NXdata   is_hit (signal) per frame
      radial_profile   NXdata   intensity (frames x bins, signal) against `radial`
      frame_metadata   NXcollection  seq, write time, and scalar metadata keys
      loss_ledger      NXcollection  where, kind (dropped/failed), reason, count, seqs

Groups are made on first use, so a file holds only what was sent to it. Results arrive
frame by frame and rows are appended; peaks beyond `max_peaks` are not stored, but
`n_peaks` keeps the true count and `peaks_truncated` says how many were cut.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Self

import h5py
import numpy as np

from ._hdf import field, group, growable, now_iso, time_field

LEDGER_KINDS = ("failed", "replayed", "dropped", "lost")  # fbp.runtime.ledger.KINDS

__all__ = ["PEAK_FIELDS", "NXdataWriter"]

#: Per-peak columns stored, with their dtype and fill value beyond n_peaks.
PEAK_FIELDS = {
    "x": (np.float32, np.nan),
    "y": (np.float32, np.nan),
    "intensity": (np.float32, np.nan),
    "snr": (np.float32, np.nan),
    "npix": (np.int32, 0),
}


class NXdataWriter:
    """Writes processed results of one run into one NeXus file.

    Args:
        path: file to create (its folder is created; an existing file is an error).
        max_peaks: peak-table width per frame.
        title: free text for /entry/title.
        overwrite: replace an existing file instead of refusing.

    Raises:
        FileExistsError: `path` exists and `overwrite` is false.
        ValueError: max_peaks < 1.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_peaks: int = 1024,
        title: str = "",
        overwrite: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        if overwrite and os.path.exists(self.path):
            os.unlink(self.path)
        if os.path.exists(self.path):
            raise FileExistsError(f"{self.path} exists; result writers never overwrite")
        if max_peaks < 1:
            raise ValueError(f"max_peaks must be >= 1, got {max_peaks!r}")
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.max_peaks = int(max_peaks)
        self._file = h5py.File(self.path, "w", libver="latest")
        self._file.attrs["creator"] = "fbp nexus/WriteNXdata"
        self._file.attrs["file_name"] = os.path.basename(self.path)
        self._file.attrs["file_time"] = now_iso()
        self._entry = group(self._file, "entry", "NXentry")
        if title:
            field(self._entry, "title", title)
        time_field(self._entry, "start_time", now_iso())
        self._groups: dict[str, h5py.Group] = {}
        self._rows: Counter = Counter()
        self._losses: dict[tuple[str, str, str], list] = {}
        self._meta_keys: dict[str, h5py.Dataset] = {}

    # -- results -----------------------------------------------------------------------------
    def add_peaks(self, seq: int, peaks: dict) -> None:
        """Append one frame's peak table (`PeakResult.to_record()` form: lists per column).

        Raises:
            KeyError: a required column is missing.
        """
        g = self._group("peaks", signal="n_peaks", axes="seq")
        if "n_peaks" not in g:
            growable(g, "seq", (), np.int64, chunk_rows=1024)
            growable(g, "n_peaks", (), np.int32, chunk_rows=1024)
            growable(g, "peaks_truncated", (), np.int32, chunk_rows=1024)
            for name, (dtype, fill) in PEAK_FIELDS.items():
                growable(
                    g,
                    name,
                    (self.max_peaks,),
                    dtype,
                    chunk_rows=16,
                    fillvalue=fill,
                    compression="gzip",
                    compression_opts=1,
                )
            g["x"].attrs["units"] = g["y"].attrs["units"] = "pixel"
            g["intensity"].attrs["units"] = "counts"
        n_peaks = len(peaks["x"])
        stored = min(n_peaks, self.max_peaks)
        row = self._next_row("peaks", g, ["seq", "n_peaks", "peaks_truncated", *PEAK_FIELDS])
        g["seq"][row] = seq
        g["n_peaks"][row] = n_peaks
        g["peaks_truncated"][row] = n_peaks - stored
        for name, (dtype, fill) in PEAK_FIELDS.items():
            values = np.full(self.max_peaks, fill, dtype)
            values[:stored] = np.asarray(peaks[name], dtype)[:stored]
            g[name][row] = values

    def add_hit(self, seq: int, is_hit: bool) -> None:
        """Append one frame's hit flag."""
        g = self._group("hits", signal="is_hit", axes="seq")
        if "is_hit" not in g:
            growable(g, "seq", (), np.int64, chunk_rows=1024)
            growable(g, "is_hit", (), np.int8, chunk_rows=1024)
        row = self._next_row("hits", g, ["seq", "is_hit"])
        g["seq"][row] = seq
        g["is_hit"][row] = bool(is_hit)

    def add_profile(self, seq: int, radial, intensity, unit: str = "q_nm^-1") -> None:
        """Append one frame's radial profile (the radial axis is taken from the first).

        Raises:
            ValueError: the profile length differs from the first profile's.
        """
        radial = np.asarray(radial, np.float64)
        intensity = np.asarray(intensity, np.float32)
        g = self._group("radial_profile", signal="intensity", axes=["seq", "radial"])
        if "intensity" not in g:
            field(g, "radial", radial, _radial_units(unit), long_name=unit)
            growable(g, "seq", (), np.int64, chunk_rows=1024)
            growable(g, "intensity", (len(radial),), np.float32, chunk_rows=16)
        if intensity.shape != g["intensity"].shape[1:]:
            raise ValueError(
                f"profile has {intensity.shape[0]} bins, earlier ones {g['intensity'].shape[1]}"
            )
        row = self._next_row("radial_profile", g, ["seq", "intensity"])
        g["seq"][row] = seq
        g["intensity"][row] = intensity

    def add_metadata(self, seq: int, meta: dict) -> None:
        """Append a frame's scalar metadata (numbers and booleans; other values skipped).

        A key first seen at a later frame gets NaN for the frames before it.
        """
        g = self._collection("frame_metadata")
        if "seq" not in g:
            growable(g, "seq", (), np.int64, chunk_rows=1024)
            growable(g, "write_time", (), np.float64, chunk_rows=1024).attrs["units"] = "s"
        row = self._rows["frame_metadata"]
        self._rows["frame_metadata"] = row + 1
        for name in ("seq", "write_time"):
            g[name].resize(row + 1, axis=0)
        g["seq"][row] = seq
        g["write_time"][row] = time.time()
        for key, value in meta.items():
            if isinstance(value, bool | int | float) and key not in ("seq",):
                dataset = self._meta_keys.get(key)
                if dataset is None:
                    dataset = growable(g, key, (), np.float64, chunk_rows=1024, fillvalue=np.nan)
                    self._meta_keys[key] = dataset
                dataset.resize(row + 1, axis=0)
                dataset[row] = float(value)
        for dataset in self._meta_keys.values():
            if dataset.shape[0] < row + 1:
                dataset.resize(row + 1, axis=0)

    # -- the loss ledger ---------------------------------------------------------------------
    def record_loss(self, where: str, kind: str, reason: str, count: int = 1, seq=None) -> None:
        """Count packets that did not make it into this file.

        Args:
            where: the process (and port) where they were lost, e.g. "Find.IN".
            kind: "dropped" (a delivery policy let them go), "failed" (an error), "lost"
                (left behind by a process that died) or "replayed" (given again to a
                restarted process: in the file, but worth knowing).
            reason: why, e.g. "latest: ring full" or the exception text.
            count: how many packets.
            seq: the lost packet's seq, if known.

        Raises:
            ValueError: kind is not one of the loss ledger's kinds.
        """
        if kind not in LEDGER_KINDS:
            raise ValueError(f"loss kind must be one of {', '.join(LEDGER_KINDS)}, got {kind!r}")
        entry = self._losses.setdefault((where, kind, reason), [0, []])
        entry[0] += int(count)
        if seq is not None:
            entry[1].append(int(seq))

    def _write_ledger(self) -> None:
        g = group(self._entry, "loss_ledger", "NXcollection")
        text = h5py.string_dtype("utf-8")
        keys = sorted(self._losses)
        g.create_dataset("where", data=[k[0] for k in keys], dtype=text)
        g.create_dataset("kind", data=[k[1] for k in keys], dtype=text)
        g.create_dataset("reason", data=[k[2] for k in keys], dtype=text)
        g.create_dataset("count", data=np.array([self._losses[k][0] for k in keys], np.int64))
        # The seqs of all entries, concatenated; seq_entry says which entry each belongs to.
        seqs = [(i, s) for i, k in enumerate(keys) for s in self._losses[k][1]]
        g.create_dataset("seq", data=np.array([s for _, s in seqs], np.int64))
        g.create_dataset("seq_entry", data=np.array([i for i, _ in seqs], np.int32))
        field(g, "total", int(sum(v[0] for v in self._losses.values())))

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Write the loss ledger and end time, and close the file (safe to call twice)."""
        if self._file:
            self._write_ledger()
            time_field(self._entry, "end_time", now_iso())
            for name in ("hits", "peaks", "radial_profile"):
                if name in self._groups:
                    self._entry.attrs["default"] = name
                    break
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _group(self, name: str, **attrs) -> h5py.Group:
        if name not in self._groups:
            self._groups[name] = group(self._entry, name, "NXdata", **attrs)
        return self._groups[name]

    def _collection(self, name: str) -> h5py.Group:
        if name not in self._groups:
            self._groups[name] = group(self._entry, name, "NXcollection")
        return self._groups[name]

    def _next_row(self, name: str, g: h5py.Group, datasets: list[str]) -> int:
        row = self._rows[name]
        self._rows[name] = row + 1
        for dataset in datasets:
            g[dataset].resize(row + 1, axis=0)
        return row


def _radial_units(unit: str) -> str:
    """HDF5 units for a pyFAI unit name."""
    return {
        "q_nm^-1": "1/nm",
        "q_A^-1": "1/angstrom",
        "2th_deg": "degree",
        "2th_rad": "rad",
        "r_mm": "mm",
        "r_m": "m",
    }.get(unit, unit)
