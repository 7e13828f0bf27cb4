"""The `.fbp` graph language: parse, load, save and validate networks.

`parse` and `load` read the flowbased/NoFlo language exactly as the reference parser (npm
`fbp@1.8.0`) does, or its JSON; `Graph.to_json()` and `Graph.to_fbp()` write both back.
`validate` reports structural problems; later layers add their own checks through it.
"""

from fbp.graph.files import load, save
from fbp.graph.jsonio import graph_from_json
from fbp.graph.model import Connection, Export, Graph, Location, PortRef, Process
from fbp.graph.parser import parse
from fbp.graph.validate import STRUCTURAL_CHECKS, Check, validate

__all__ = [
    "STRUCTURAL_CHECKS",
    "Check",
    "Connection",
    "Export",
    "Graph",
    "Location",
    "PortRef",
    "Process",
    "graph_from_json",
    "load",
    "parse",
    "save",
    "validate",
]
