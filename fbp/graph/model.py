"""The Graph model: processes, connections, exports and properties of one network.

The model mirrors the reference JSON (npm `fbp`) one to one, plus source locations so that
every later check can point at the `.fbp` text. `Graph.nx` gives a networkx view for
algorithms (partitioning, ordering, drawing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx

from fbp.errors import GraphError


@dataclass(frozen=True)
class Location:
    """A place in a graph's source: 1-based line and column, and that line's text."""

    file: str
    line: int | None = None
    col: int | None = None
    source_line: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


@dataclass(frozen=True)
class PortRef:
    """One end of a connection: a process's port, with an index for array ports."""

    process: str
    port: str
    index: int | None = None

    def __str__(self) -> str:
        index = "" if self.index is None else f"[{self.index}]"
        return f"{self.process}.{self.port}{index}"


@dataclass
class Process:
    """A node of the graph: a named instance of a component.

    `metadata` values are strings, except `x`/`y` (numbers). Consumers convert the values they
    understand (e.g. `workers`) and report a bad one at `location`.
    """

    name: str
    component: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    location: Location | None = None


@dataclass
class Connection:
    """An edge `src -> tgt`, or an initial information packet (IIP) when `src` is None.

    For an IIP, `data` holds its value (a string for `'text'`, any JSON value otherwise,
    including None for `null`).
    """

    src: PortRef | None
    tgt: PortRef
    data: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    location: Location | None = None
    target_location: Location | None = None

    @property
    def is_iip(self) -> bool:
        """True for an initial information packet (no source process)."""
        return self.src is None


@dataclass
class Export:
    """A graph inport or outport (`INPORT=Proc.PORT:NAME`), mapping NAME to a process port."""

    name: str
    process: str
    port: str
    metadata: dict[str, Any] = field(default_factory=dict)
    location: Location | None = None


@dataclass
class Graph:
    """A parsed network.

    Attributes:
        processes: name -> Process, in order of first declaration.
        connections: edges and IIPs in textual order.
        inports / outports: exported ports by public name.
        properties: graph annotations (`# @name X` -> {"name": "X"}; `# @runtime R` ->
            {"environment": {"type": "R"}}).
        groups: process groups (only JSON graphs carry them).
        case_sensitive: whether port names kept their case when parsed.
        problems: structural problems the parser noticed (edges the reference parser
            would silently drop, conflicting redeclarations...); `validate` reports them.
        file: where the graph came from, for messages.
    """

    processes: dict[str, Process] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    inports: dict[str, Export] = field(default_factory=dict)
    outports: dict[str, Export] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    case_sensitive: bool = False
    problems: list[GraphError] = field(default_factory=list)
    file: str = "<string>"

    @property
    def name(self) -> str | None:
        """The graph's `# @name`, if it has one."""
        value = self.properties.get("name")
        return value if isinstance(value, str) else None

    @property
    def runtime(self) -> str | None:
        """The graph's `# @runtime`, if it has one."""
        environment = self.properties.get("environment")
        if isinstance(environment, dict) and isinstance(environment.get("type"), str):
            return environment["type"]
        return None

    def error(self, message: str, location: Location | None, hint: str | None = None) -> GraphError:
        """Build a GraphError located at `location` (or at this graph's file when None)."""
        if location is None:
            return GraphError(message, file=self.file, hint=hint)
        return GraphError(
            message,
            file=location.file,
            line=location.line,
            col=location.col,
            source_line=location.source_line,
            hint=hint,
        )

    @property
    def nx(self) -> networkx.MultiDiGraph:
        """A fresh networkx view: one node per process, one edge per connection.

        Node attributes: `component`, `metadata`, `iips` (list of (PortRef, value)).
        Edge attributes: `src` and `tgt` (PortRef), `connection` (the Connection).
        """
        view = networkx.MultiDiGraph(name=self.name)
        for process in self.processes.values():
            view.add_node(
                process.name, component=process.component, metadata=process.metadata, iips=[]
            )
        for connection in self.connections:
            if connection.src is None:
                if connection.tgt.process in view:
                    view.nodes[connection.tgt.process]["iips"].append(
                        (connection.tgt, connection.data)
                    )
                continue
            view.add_edge(
                connection.src.process,
                connection.tgt.process,
                src=connection.src,
                tgt=connection.tgt,
                connection=connection,
            )
        return view

    def to_json(self) -> dict[str, Any]:
        """The graph as the reference parser's JSON (see `fbp.graph.jsonio`)."""
        from fbp.graph.jsonio import graph_to_json

        return graph_to_json(self)

    def to_fbp(self) -> str:
        """The graph as `.fbp` text that parses back to an equal graph.

        Raises:
            GraphError: a name or value cannot be written in the `.fbp` language.
        """
        from fbp.graph.writer import graph_to_fbp

        return graph_to_fbp(self)
