"""A readable text summary of a Graph (what `fbp parse` prints without --json)."""

from __future__ import annotations

import json

from fbp.graph.model import Graph


def _value(data) -> str:
    text = f"'{data}'" if isinstance(data, str) else json.dumps(data)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:57] + "..."


def summary(graph: Graph) -> str:
    """Describe processes, connections, IIPs and exports, one per line."""
    title = graph.name or graph.file
    runtime = graph.properties.get("environment", {})
    if isinstance(runtime, dict) and runtime.get("type"):
        title += f" (runtime {runtime['type']})"
    iips = [c for c in graph.connections if c.src is None]
    edges = [c for c in graph.connections if c.src is not None]
    out = [f"graph {title}"]
    for key, value in graph.properties.items():
        if key not in ("name", "environment"):
            out.append(f"  @{key}: {value}")
    width = max((len(name) for name in graph.processes), default=0)
    out.append(f"processes ({len(graph.processes)}):")
    for process in graph.processes.values():
        meta = ",".join(f"{k}={v}" for k, v in process.metadata.items())
        line = f"  {process.name:<{width}}  {process.component or '(no component)'}"
        out.append(line + (f"  [{meta}]" if meta else ""))
    out.append(f"connections ({len(edges)}):")
    for c in edges:
        assert c.src is not None
        src, tgt = _port(graph, c.src), _port(graph, c.tgt)
        out.append(f"  {c.src.process} {src} -> {tgt} {c.tgt.process}")
    out.append(f"initial packets ({len(iips)}):")
    for c in iips:
        out.append(f"  {_value(c.data)} -> {_port(graph, c.tgt)} {c.tgt.process}")
    for kind, exports in (("inports", graph.inports), ("outports", graph.outports)):
        if exports:
            out.append(f"{kind} ({len(exports)}):")
            for name, export in exports.items():
                out.append(f"  {name} = {export.process}.{export.port}")
    return "\n".join(out) + "\n"


def _port(graph: Graph, ref) -> str:
    # Case-insensitive graphs store ports lower-cased; capitals read as the file was written.
    name = ref.port if graph.case_sensitive else ref.port.upper()
    return name + ("" if ref.index is None else f"[{ref.index}]")
