"""fbp: flow-based programming runtime for near real-time light-source data pipelines."""

from fbp.errors import FBPError, GraphError

__version__ = "0.1.0"
__all__ = ["FBPError", "GraphError", "__version__"]
