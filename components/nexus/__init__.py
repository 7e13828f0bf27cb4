"""nexus: writers of NeXus/HDF5 files — NXmx images and NXdata processing results."""
