"""From parsed statements to connections, and the edges the reference would silently drop.

The reference parser turns each statement into a flat list of half-edges (targets `{tgt}`,
sources `{src}`, IIPs `{data}`) and pairs each source with the target right after it,
silently discarding whatever does not pair. We pair the same way, so the connections are the
same, and report every discarded half-edge that was not a plain declaration as a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fbp.graph import lexer
from fbp.graph.model import Connection, PortRef

if TYPE_CHECKING:
    from fbp.graph.parser import _Parser


@dataclass
class Element:
    """One half-edge of a statement.

    kind: "bridge_in"/"bridge_out" (a process in a chain, with in- and outport),
    "outport_out" (a chain's source process), "inport_in" (its final target), "iip".
    """

    kind: str
    ref: PortRef | None = None
    data: Any = None
    offset: int = 0
    explicit_port: bool = False
    node_offset: int = 0
    arrow_offset: int | None = None
    paired: bool = False

    @property
    def port_ref(self) -> PortRef:
        """The port of a process half-edge (every kind but "iip" has one)."""
        assert self.ref is not None, self.kind
        return self.ref

    @property
    def is_source(self) -> bool:
        return self.kind.endswith("_out") or self.kind == "iip"

    @property
    def is_target(self) -> bool:
        return self.kind.endswith("_in")


@dataclass
class Statement:
    """A connection statement (one `line` of the grammar): where it starts and its parts."""

    offset: int
    elements: list[Element] = field(default_factory=list)


def check_statements(parser: _Parser) -> None:
    """Pair half-edges into `parser.graph.connections` and record dropped ones as problems."""
    flat = [element for statement in parser.statements for element in statement.elements]
    graph = parser.graph
    i = 1
    while i < len(flat):
        source, target = flat[i - 1], flat[i]
        if source.is_source and target.is_target:
            source.paired = target.paired = True
            graph.connections.append(
                Connection(
                    src=None if source.kind == "iip" else source.port_ref,
                    tgt=target.port_ref,
                    data=source.data,
                    location=parser.location(source.offset),
                    target_location=parser.location(target.node_offset),
                )
            )
            i += 1
        i += 1
    for statement in parser.statements:
        _report_dropped(parser, statement)


def _declares(parser: _Parser, element: Element) -> bool:
    """True when the process at this element is written with its component `Name(Comp)`."""
    text, p = parser.text, element.node_offset
    while p < len(text) and text[p] in lexer.NODE_CHARS:
        p += 1
    return text.startswith("(", p)


def _describe_source(parser: _Parser, element: Element) -> str:
    if element.kind == "iip":
        return "the IIP"
    ref = element.port_ref
    index = "" if ref.index is None else f"[{ref.index}]"
    return f"{ref.process} {ref.port.upper() if not parser.case_sensitive else ref.port}{index}"


def _report_dropped(parser: _Parser, statement: Statement) -> None:
    graph = parser.graph
    elements = statement.elements
    for k, element in enumerate(elements):
        if element.paired:
            continue
        following = elements[k + 1] if k + 1 < len(elements) else None
        if element.is_source and following is not None:
            _report_lost_step(parser, element, following)
            continue
        if not element.is_target:
            continue
        ref = element.port_ref
        node_location = parser.location(element.node_offset)
        if len(elements) == 1:
            if not element.explicit_port:
                if _declares(parser, element):
                    continue  # a declaration: `Name(lib/Component)`
                graph.problems.append(
                    graph.error(
                        f"'{ref.process}' on its own does nothing: it is neither a connection "
                        "nor a declaration",
                        node_location,
                        hint=f"declare a process with its component, `{ref.process}("
                        "library/Component)`; a port belongs inside a connection, "
                        "`A OUT -> IN B`",
                    )
                )
                continue
            graph.problems.append(
                graph.error(
                    f"inport {ref.port} of '{ref.process}' is not connected to anything",
                    parser.location(element.offset),
                    hint=f"connect a source to it, e.g. `Source OUT -> {ref.port} "
                    f"{ref.process}` or `'value' -> {ref.port} {ref.process}`",
                )
            )
            continue
        if k == 0 and element.kind == "bridge_in":
            if not element.explicit_port:
                continue  # `A(Comp) OUT -> ...`: the default inport is not part of the chain
            graph.problems.append(
                graph.error(
                    f"inport {ref.port} of '{ref.process}' at the start of a chain has no "
                    "source, so the reference parser drops it silently",
                    parser.location(element.offset),
                    hint=f"start the chain at the process, `{ref.process} OUT -> ...`, or "
                    f"connect a source to {ref.port}",
                )
            )
            continue
        graph.problems.append(
            graph.error(
                f"this part of the chain ({ref}) is not connected; the reference parser drops "
                "it silently",
                parser.location(element.offset),
                hint="write each connection as `Source OUTPORT -> INPORT Target`",
            )
        )


def _report_lost_step(parser: _Parser, source: Element, following: Element) -> None:
    graph = parser.graph
    lost = _describe_source(parser, source)
    if following.kind == "iip":
        graph.problems.append(
            graph.error(
                f"an IIP can only start a chain; after '->' it loses the connection from {lost}",
                parser.location(following.offset),
                hint="put the IIP in its own statement: `'value' -> PORT Process`",
            )
        )
        return
    ref = following.port_ref
    if following.explicit_port:
        read_as = (
            f"'{ref.process} {ref.port}' is read as process '{ref.process}' with outport "
            f"'{ref.port}' and no inport"
        )
    else:
        read_as = f"'{ref.process}' has no inport here"
    graph.problems.append(
        graph.error(
            f"in the middle of a chain {read_as}, so the connection from {lost} is lost "
            "(the reference parser drops it silently)",
            parser.location(following.node_offset),
            hint="in a chain write both ports, `-> INPORT Name OUTPORT ->`, or give the "
            "component there, `-> Name(library/Component) ->`, to use the default ports",
        )
    )
