"""Graph -> Graphviz DOT text: processes as boxes, ports on edges, IIPs as notes.

Processes placed with `node=NAME` are drawn in one box per host, each host its own
colour; connections between hosts (ZeroMQ links when run with --hosts) are bold.
"""

from __future__ import annotations

import json

from fbp.graph.model import Graph, PortRef


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _port(graph: Graph, ref: PortRef) -> str:
    name = ref.port if graph.case_sensitive else ref.port.upper()
    return name + ("" if ref.index is None else f"[{ref.index}]")


def _iip_label(data) -> str:
    text = f"'{data}'" if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


# pale fills that stay readable with black text, one per host in order of appearance
HOST_COLOURS = ("#dcefd9", "#fde2c8", "#e6dcf3", "#d6ecf5", "#f7d9de", "#f2efc7", "#dfe4e8")


def _host(graph: Graph, process: str) -> str | None:
    entry = graph.processes.get(process)
    node = entry.metadata.get("node") if entry is not None else None
    return None if node is None else str(node)


def to_dot(graph: Graph) -> str:
    """Render `graph` as a DOT digraph (left to right)."""
    lines = [
        f"digraph {_quote(graph.name or 'graph')} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10, labelfontsize=9, labeldistance=1.8];',
    ]
    hosts: dict[str | None, list[str]] = {}
    for process in graph.processes.values():
        label = f"{process.name}\n{process.component or '?'}"
        extra = {k: v for k, v in process.metadata.items() if k not in ("x", "y", "node")}
        if extra:
            label += "\n" + ",".join(f"{k}={v}" for k, v in extra.items())
        hosts.setdefault(_host(graph, process.name), []).append(
            f"{_quote(process.name)} [label={_quote(label)}];"
        )
    lines.extend(f"  {line}" for line in hosts.pop(None, []))
    for number, (host, nodes) in enumerate(hosts.items()):
        colour = HOST_COLOURS[number % len(HOST_COLOURS)]
        lines.append(f"  subgraph {_quote(f'cluster_host_{host}')} {{")
        lines.append(
            f'    label={_quote(f"host {host}")}; style="rounded,filled"; '
            f'fillcolor="{colour}"; color="#7f8c8d"; fontname="Helvetica";'
        )
        lines.append(f'    node [fillcolor="{colour}"];')
        lines.extend(f"    {line}" for line in nodes)
        lines.append("  }")
    for number, connection in enumerate(graph.connections):
        tgt = connection.tgt
        if connection.src is None:
            note = f"iip{number}"
            lines.append(
                f'  {note} [shape=note, style=filled, fillcolor="#fff8dc", '
                f"label={_quote(_iip_label(connection.data))}];"
            )
            head = _quote(_port(graph, tgt))
            lines.append(f"  {note} -> {_quote(tgt.process)} [headlabel={head}, style=dashed];")
            continue
        src = connection.src
        crossing = _host(graph, src.process) != _host(graph, tgt.process)
        style = ', penwidth=2.5, color="#c0392b"' if crossing else ""
        lines.append(
            f"  {_quote(src.process)} -> {_quote(tgt.process)} "
            f"[taillabel={_quote(_port(graph, src))}, headlabel={_quote(_port(graph, tgt))}"
            f"{style}];"
        )
    for kind, exports in (("in", graph.inports), ("out", graph.outports)):
        for name, export in exports.items():
            node = _quote(f"{kind}port:{name}")
            shown = name if graph.case_sensitive else name.upper()
            lines.append(f"  {node} [shape=oval, label={_quote(shown)}];")
            ref = _quote(export.process)
            port = _quote(export.port if graph.case_sensitive else export.port.upper())
            if kind == "in":
                lines.append(f"  {node} -> {ref} [headlabel={port}, style=dotted];")
            else:
                lines.append(f"  {ref} -> {node} [taillabel={port}, style=dotted];")
    lines.append("}")
    return "\n".join(lines) + "\n"
