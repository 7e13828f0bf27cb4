"""Loading calibration images (dark, flat, mask) named in graph IIPs."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["load_array"]


def load_array(source: str) -> np.ndarray:
    """Read an array from `FILE.npy` or `FILE.h5:/path/to/dataset` (also .nxs, .hdf5).

    .npy files are read with pickles refused: a calibration file is data, never code.

    Raises:
        FileNotFoundError: the file does not exist.
        KeyError: the HDF5 dataset does not exist.
        ValueError: the name has neither form.
    """
    path, _, dataset = source.partition(":/")
    if dataset:
        import h5py
        import hdf5plugin  # noqa: F401  (compressed calibration files)

        if not os.path.exists(path):
            raise FileNotFoundError(f"calibration file {path} does not exist")
        with h5py.File(path, "r") as f:
            if "/" + dataset not in f:
                raise KeyError(f"{path} has no dataset /{dataset}")
            return np.asarray(f["/" + dataset][()])
    if source.endswith(".npy"):
        return np.load(source, allow_pickle=False)
    raise ValueError(f"calibration source must be FILE.npy or FILE.h5:/dataset, got {source!r}")
