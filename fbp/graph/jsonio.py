"""The reference JSON graph format: Graph -> dict and dict -> Graph.

Key order and optional keys follow the reference parser's output exactly (`inports`,
`outports`, `groups`, `processes`, `connections`, `properties` when there are annotations,
`caseSensitive`), so `fbp parse --json` prints what `fbp` from npm prints.
"""

from __future__ import annotations

from typing import Any

from fbp.errors import GraphError
from fbp.graph.model import Connection, Export, Graph, PortRef, Process


def _port_json(ref: PortRef) -> dict[str, Any]:
    result: dict[str, Any] = {"process": ref.process, "port": ref.port}
    if ref.index is not None:
        result["index"] = ref.index
    return result


def _export_json(export: Export) -> dict[str, Any]:
    result: dict[str, Any] = {"process": export.process, "port": export.port}
    if export.metadata:
        result["metadata"] = export.metadata
    return result


def graph_to_json(graph: Graph) -> dict[str, Any]:
    """The graph as the reference parser's JSON object."""
    processes: dict[str, Any] = {}
    for process in graph.processes.values():
        entry: dict[str, Any] = {}
        if process.component:
            entry["component"] = process.component
        if process.metadata:
            entry["metadata"] = dict(process.metadata)
        processes[process.name] = entry
    connections = []
    for connection in graph.connections:
        if connection.src is None:
            entry = {"data": connection.data, "tgt": _port_json(connection.tgt)}
        else:
            entry = {"src": _port_json(connection.src), "tgt": _port_json(connection.tgt)}
        if connection.metadata:
            entry["metadata"] = dict(connection.metadata)
        connections.append(entry)
    result: dict[str, Any] = {
        "inports": {name: _export_json(e) for name, e in graph.inports.items()},
        "outports": {name: _export_json(e) for name, e in graph.outports.items()},
        "groups": list(graph.groups),
        "processes": processes,
        "connections": connections,
    }
    if graph.properties:
        result["properties"] = graph.properties
    result["caseSensitive"] = graph.case_sensitive
    return result


def graph_from_json(data: Any, *, file: str = "<string>") -> Graph:
    """Build a Graph from the reference JSON (or a NoFlo graph JSON of the same shape).

    Args:
        data: the decoded JSON object.
        file: name used in error messages.

    Returns:
        The Graph; locations are None because JSON carries no positions we keep.

    Raises:
        GraphError: the object does not have the shape of a graph.
    """

    def fail(message: str, hint: str | None = None) -> GraphError:
        return GraphError(message, file=file, hint=hint)

    if not isinstance(data, dict):
        raise fail(f"a JSON graph must be an object, not {type(data).__name__}")
    graph = Graph(case_sensitive=bool(data.get("caseSensitive", False)), file=file)
    processes = data.get("processes", {})
    if not isinstance(processes, dict):
        raise fail("'processes' must be an object mapping process names to {component, metadata}")
    for name, entry in processes.items():
        if not isinstance(entry, dict):
            raise fail(f'process \'{name}\' must be an object like {{"component": "lib/Name"}}')
        component = entry.get("component")
        if component is not None and not isinstance(component, str):
            raise fail(f"process '{name}': 'component' must be a string, not {component!r}")
        metadata = entry.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise fail(f"process '{name}': 'metadata' must be an object")
        graph.processes[name] = Process(name, component, dict(metadata), None)
    connections = data.get("connections", [])
    if not isinstance(connections, list):
        raise fail("'connections' must be a list")
    for number, entry in enumerate(connections):
        where = f"connection #{number + 1}"
        if not isinstance(entry, dict) or "tgt" not in entry:
            raise fail(f"{where} must be an object with 'tgt' and either 'src' or 'data'")
        tgt = _port_from_json(entry["tgt"], f"{where} 'tgt'", fail)
        metadata = entry.get("metadata") or {}
        if "src" in entry and entry["src"] is not None:
            src = _port_from_json(entry["src"], f"{where} 'src'", fail)
            graph.connections.append(Connection(src, tgt, None, dict(metadata)))
        elif "data" in entry:
            graph.connections.append(Connection(None, tgt, entry["data"], dict(metadata)))
        else:
            raise fail(f"{where} has neither 'src' nor 'data'")
    for key, exports in (("inports", graph.inports), ("outports", graph.outports)):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise fail(f"'{key}' must be an object mapping public names to {{process, port}}")
        for name, entry in table.items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("process"), str)
                or not (isinstance(entry.get("port"), str))
            ):
                raise fail(f"{key} '{name}' must be an object with string 'process' and 'port'")
            exports[name] = Export(
                name, entry["process"], entry["port"], dict(entry.get("metadata") or {}), None
            )
    groups = data.get("groups", [])
    if not isinstance(groups, list):
        raise fail("'groups' must be a list")
    graph.groups = list(groups)
    properties = data.get("properties", {})
    if not isinstance(properties, dict):
        raise fail("'properties' must be an object")
    graph.properties = dict(properties)
    return graph


def _port_from_json(entry: Any, where: str, fail) -> PortRef:
    if not isinstance(entry, dict):
        raise fail(f"{where} must be an object with 'process' and 'port'")
    process, port, index = entry.get("process"), entry.get("port"), entry.get("index")
    if not isinstance(process, str) or not isinstance(port, str):
        raise fail(f"{where} needs string 'process' and 'port', got {entry!r}")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise fail(f"{where}: 'index' must be a non-negative integer, got {index!r}")
    return PortRef(process, port, index)
