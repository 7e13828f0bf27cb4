"""Detector sources: the EIGER2-like simulator, DECTRIS stream receivers, HDF5/NeXus replay."""
