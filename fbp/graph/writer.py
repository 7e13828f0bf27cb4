"""Graph -> `.fbp` text that parses back to an equal graph.

Layout: annotations, exports, one declaration per process (component and metadata), then
one statement per connection in order. Ports are written with their stored case, so a graph
parsed case-insensitively reads back the same in either mode.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fbp.graph import lexer
from fbp.graph.model import Graph, Location, PortRef


def graph_to_fbp(graph: Graph) -> str:
    """Write `graph` as `.fbp` text.

    Raises:
        GraphError: something in the graph has no `.fbp` spelling (a process name with '/',
            metadata values with spaces or commas, non-text properties, NaN in an IIP...).
    """
    lines: list[str] = []
    for key, value in graph.properties.items():
        lines.append(_annotation(graph, key, value))
    for keyword, exports in (("INPORT", graph.inports), ("OUTPORT", graph.outports)):
        for name, export in exports.items():
            _check_name(graph, export.process, lexer.NODE_NAME, "process name", export.location)
            _check_name(graph, export.port, lexer.PORT_NAME, "port name", export.location)
            _check_name(graph, name, lexer.PORT_NAME, f"{keyword} name", export.location)
            port, public = _case(graph, export.port), _case(graph, name)
            lines.append(f"{keyword}={export.process}.{port}:{public}")
    if lines:
        lines.append("")
    for process in graph.processes.values():
        _check_name(graph, process.name, lexer.NODE_NAME, "process name", process.location)
        component = process.component or ""
        if not lexer.COMPONENT_NAME.match(component):
            raise graph.error(
                f"component name '{component}' of process '{process.name}' cannot be written "
                "in .fbp",
                process.location,
                hint="component names use letters, digits, '/', '-' and '_'",
            )
        lines.append(f"{process.name}({component}{_metadata(graph, process)})")
    if graph.processes:
        lines.append("")
    for connection in graph.connections:
        target = f"{_port(graph, connection.tgt)} {connection.tgt.process}"
        if connection.src is None:
            if connection.data is None or isinstance(connection.data, bool):
                # The grammar reads `true -> IN A` as a process named "true", so a bare
                # true/false/null IIP has no .fbp spelling (the reference has none either).
                raise graph.error(
                    f"IIP {json.dumps(connection.data)} -> {target} cannot be written in .fbp: "
                    f"the language reads `{json.dumps(connection.data)} ->` as a process name",
                    connection.location,
                    hint="send 'true'/'false' as text (the port type converts it), wrap it "
                    "as [true], or keep this graph as JSON",
                )
            value = _iip(graph, connection.data, connection.location)
            lines.append(f"{value} -> {target}")
        else:
            src = connection.src
            lines.append(f"{src.process} {_port(graph, src)} -> {target}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _annotation(graph: Graph, key: str, value: Any) -> str:
    if key == "environment" and isinstance(value, dict) and set(value) == {"type"}:
        key, value = "runtime", value["type"]
    if (
        not lexer.ANNOTATION_KEY.match(key)
        or not isinstance(value, str)
        or not value.strip()
        or value[0] == " "
        or any(c in lexer.NEWLINES for c in value)
    ):
        raise graph.error(
            f"graph property {key!r}={value!r} cannot be written as a `# @{key} value` annotation",
            None,
            hint="annotations hold one line of text; keep such graphs as JSON",
        )
    return f"# @{key} {value}"


def _metadata(graph: Graph, process) -> str:
    items = []
    for key, value in process.metadata.items():
        if key in ("x", "y") and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise graph.error(
                    f"metadata {key}={value} of process '{process.name}' is not a finite number",
                    process.location,
                )
            # '+' has no place in metadata text; float() reads 1e300 like 1e+300.
            text = repr(value).replace("e+", "e")
        else:
            text = value if isinstance(value, str) else None  # type: ignore[assignment]
        if (
            text is None
            or not lexer.METADATA_TEXT.match(text)
            or not lexer.METADATA_TEXT.match(key)
            or not key
        ):
            raise graph.error(
                f"metadata {key!r}={value!r} of process '{process.name}' cannot be written in .fbp",
                process.location,
                hint="metadata keys and values use letters, digits and / _ - . only",
            )
        items.append(f"{key}={text}")
    return ":" + ",".join(items) if items else ""


def _port(graph: Graph, ref: PortRef) -> str:
    _check_name(graph, ref.process, lexer.NODE_NAME, "process name", None)
    _check_name(graph, ref.port, lexer.PORT_NAME, "port name", None)
    port = _case(graph, ref.port)
    return port if ref.index is None else f"{port}[{ref.index}]"


def _case(graph: Graph, port: str) -> str:
    # Parsing lower-cases ports of case-insensitive graphs, so capitals read better and come
    # back the same.
    if not graph.case_sensitive and port == port.lower():
        return port.upper()
    return port


def _iip(graph: Graph, data: Any, location: Location | None) -> str:
    if isinstance(data, str) and "'" not in data and "\\" not in data:
        return f"'{data}'"
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise graph.error(
            f"IIP value {data!r} cannot be written as JSON: {exc}", location
        ) from None


def _check_name(graph: Graph, name: str, pattern, what: str, location: Location | None) -> None:
    if not isinstance(name, str) or not pattern.match(name):
        raise graph.error(
            f"{what} {name!r} cannot be written in .fbp",
            location,
            hint="names start with a letter or '_' and use letters, digits, '_' (and '-' in "
            "process names, '.' in port names); anonymous processes of components with "
            "several '/' get such names: give them a name",
        )
