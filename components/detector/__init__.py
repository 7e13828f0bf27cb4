"""Detector sources: the EIGER2-like simulator, DECTRIS stream receivers, HDF5/NeXus replay.

Components: `detector/Simulate`, `detector/ReadHDF5`, `detector/StreamReceiver`,
`detector/StreamSimulator`, `detector/StreamTee`. The plain-Python building blocks live in
the submodules (`simulate`, `stream_v1`, `stream_v2`, `receiver`, `server`, `tee`, `hdf5`,
`codecs`) and can be used without the runtime.
"""

from .sources import ReadHDF5, Simulate, StreamReceiver, StreamSimulator, StreamTee

__all__ = ["ReadHDF5", "Simulate", "StreamReceiver", "StreamSimulator", "StreamTee"]
