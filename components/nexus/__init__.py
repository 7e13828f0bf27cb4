"""nexus: NeXus/HDF5 writers — NXmx image files and NXdata processing results.

`fbp components nexus` lists the components. The writers are plain classes usable without
the runtime: `nxmx.NXmxWriter`, `nxdata.NXdataWriter`.
"""

from fbp_components.nexus.components import WriteNXdata, WriteNXmx

__all__ = ["WriteNXdata", "WriteNXmx"]
