"""Small HDF5 helpers shared by the NeXus writers: groups with NX_class, fields with units."""

from __future__ import annotations

import datetime

import h5py
import hdf5plugin

# Fixed-length timestamps, so end_time can be rewritten in place after SWMR has started
# (SWMR forbids creating datasets or attributes, not writing existing ones).
TIME_DTYPE = h5py.string_dtype("utf-8", 40)


def now_iso() -> str:
    """The current UTC time in ISO 8601 with an explicit offset, as NeXus asks."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def group(parent: h5py.Group, name: str, nx_class: str, **attrs) -> h5py.Group:
    """Create a NeXus group: an HDF5 group with its NX_class attribute."""
    created = parent.create_group(name)
    created.attrs["NX_class"] = nx_class
    for key, value in attrs.items():
        created.attrs[key] = value
    return created


def field(parent: h5py.Group, name: str, value, units: str | None = None, **attrs) -> h5py.Dataset:
    """Create a scalar or small array field, with its units attribute if given."""
    if isinstance(value, str):
        dataset = parent.create_dataset(name, data=value, dtype=h5py.string_dtype("utf-8"))
    else:
        dataset = parent.create_dataset(name, data=value)
    if units is not None:
        dataset.attrs["units"] = units
    for key, item in attrs.items():
        dataset.attrs[key] = item
    return dataset


def time_field(parent: h5py.Group, name: str, value: str) -> h5py.Dataset:
    """A rewritable NX_DATE_TIME field."""
    return parent.create_dataset(name, data=value, dtype=TIME_DTYPE)


def compression(name: str) -> dict:
    """h5py dataset keywords for a compression name: "bslz4", "lz4", "gzip" or "none".

    Raises:
        ValueError: an unknown name.
    """
    if name == "bslz4":
        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    if name == "lz4":
        return dict(hdf5plugin.LZ4())
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1}
    if name == "none":
        return {}
    raise ValueError(f"compression must be 'bslz4', 'lz4', 'gzip' or 'none', got {name!r}")


def growable(parent: h5py.Group, name: str, shape: tuple, dtype, chunk_rows: int = 1, **kwargs):
    """An extendible dataset of zero rows, chunked `chunk_rows` rows at a time."""
    return parent.create_dataset(
        name,
        shape=(0, *shape),
        maxshape=(None, *shape),
        chunks=(chunk_rows, *shape) if shape else (chunk_rows,),
        dtype=dtype,
        **kwargs,
    )
