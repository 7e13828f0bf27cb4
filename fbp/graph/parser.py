"""Parser for the `.fbp` language, faithful to the reference grammar (npm `fbp@1.8.0`).

The reference is a PEG: ordered choice with backtracking, greedy optionals, and actions
(declaring a process, counting anonymous processes) that run as soon as a rule matches. To
give exactly the same graph for every input it accepts, this parser follows the same rules in
the same order; it differs only where the documentation (docs/language.md) says so. Errors
are built by `fbp.graph.diagnose` from the furthest point the parse reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fbp.errors import GraphError
from fbp.graph import lexer
from fbp.graph.jsonvalue import JsonReader
from fbp.graph.lexer import SourceText
from fbp.graph.model import Export, Graph, Location, PortRef, Process
from fbp.graph.statements import Element, Statement, check_statements

_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")


@dataclass
class _Port:
    name: str
    index: int | None
    offset: int


@dataclass
class _ComponentSpec:
    component: str
    metadata_items: list[str] | None
    offset: int
    metadata_offset: int = 0
    end: int = 0


@dataclass
class _Failure:
    offset: int = -1
    expected: set[str] = field(default_factory=set)


def parse(text: str, *, file: str = "<string>", case_sensitive: bool = False) -> Graph:
    """Parse `.fbp` text into a Graph.

    Only syntax is checked here; structural problems (undefined processes, edges the
    reference would silently drop, ...) are collected in `graph.problems` and reported,
    together with the other checks, by `fbp.graph.validate`.

    Args:
        text: the `.fbp` source.
        file: name used in error messages.
        case_sensitive: keep port and export names as written; by default they are
            lower-cased like the reference parser does.

    Returns:
        The parsed Graph.

    Raises:
        GraphError: a syntax error, located at its line and column with a hint.
    """
    return _Parser(text, file, case_sensitive).run()


class _Parser:
    def __init__(self, text: str, file: str, case_sensitive: bool) -> None:
        self.source = SourceText(text, file)
        self.text = text
        self.case_sensitive = case_sensitive
        self.default_in = "IN"
        self.default_out = "OUT"
        self.graph = Graph(case_sensitive=case_sensitive, file=file)
        self.declared: dict[str, Location] = {}
        self.anonymous_names: dict[int, str] = {}
        self.anonymous_counts: dict[str, int] = {}
        self.statements: list[Statement] = []
        self.failure = _Failure()
        self.unterminated: tuple[int, str] | None = None
        self.json = JsonReader(text, self.expect, self._note_unterminated, self._error_at)

    # -- failure bookkeeping -------------------------------------------------------------

    def expect(self, offset: int, what: str) -> None:
        if offset > self.failure.offset:
            self.failure = _Failure(offset, {what})
        elif offset == self.failure.offset:
            self.failure.expected.add(what)

    def _note_unterminated(self, offset: int, what: str) -> None:
        if self.unterminated is None or offset < self.unterminated[0]:
            self.unterminated = (offset, what)

    def _error_at(self, offset: int, message: str, hint: str | None) -> GraphError:
        location = self.source.location(offset)
        return GraphError(
            message,
            file=location.file,
            line=location.line,
            col=location.col,
            source_line=location.source_line,
            hint=hint,
        )

    def location(self, offset: int) -> Location:
        return self.source.location(offset)

    # -- top level -----------------------------------------------------------------------

    def run(self) -> Graph:
        text = self.text
        pos = 0
        while pos < len(text):
            statement_start = pos
            end = self.line(pos)
            if end < 0 or end == pos:
                if text[pos:].strip(" ") == "":
                    break  # trailing spaces at the end of the file (reference: error)
                from fbp.graph.diagnose import syntax_error

                raise syntax_error(self, statement_start)
            pos = end
        check_statements(self)
        return self.graph

    # -- lines ---------------------------------------------------------------------------

    def spaces(self, pos: int) -> int:
        text = self.text
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos < len(text) and text[pos] != " ":
            self.expect(pos, "' '")
        return pos

    def spaces1(self, pos: int) -> int:
        end = self.spaces(pos)
        return end if end > pos else -1

    def newline(self, pos: int) -> int:
        if pos < len(self.text) and self.text[pos] in lexer.NEWLINES:
            return pos + 1
        self.expect(pos, "end of line")
        return -1

    def literal(self, pos: int, word: str, what: str | None = None) -> int:
        if self.text.startswith(word, pos):
            return pos + len(word)
        self.expect(pos, what or f"'{word}'")
        return -1

    def line(self, pos: int) -> int:
        for alternative in (
            self.export_line,
            self.default_port_line,
            self.annotation_line,
            self.comment_line,
            self.blank_line,
            self.connection_line,
        ):
            end = alternative(pos)
            if end >= 0:
                return end
        return -1

    def export_line(self, pos: int) -> int:
        start = self.spaces(pos)
        for keyword, exports in (
            ("INPORT=", self.graph.inports),
            ("OUTPORT=", self.graph.outports),
        ):
            p = self.literal(start, keyword)
            if p < 0:
                continue
            node_offset = p
            node, p = self.node(p)
            if node is None:
                return -1
            p = self.literal(p, ".")
            if p < 0:
                return -1
            port, p = self.port_name(p)
            if port is None:
                return -1
            p = self.literal(p, ":")
            if p < 0:
                return -1
            public, p = self.port_name(p)
            if public is None:
                return -1
            if not self.case_sensitive:
                port, public = port.lower(), public.lower()
            location = self.location(node_offset)
            previous = exports.get(public)
            if previous is not None:
                kind = keyword[:-1]
                self.graph.problems.append(
                    self.graph.error(
                        f"{kind} '{public}' is exported twice (first at line "
                        f"{_line_of(previous.location)}); the reference parser keeps only the last",
                        location,
                        hint="give each exported port its own public name after ':'",
                    )
                )
            exports[public] = Export(public, node, port, {}, location)
            return self.line_terminator(self.spaces(p))
        return -1

    def default_port_line(self, pos: int) -> int:
        start = self.spaces(pos)
        for keyword in ("DEFAULT_INPORT=", "DEFAULT_OUTPORT="):
            p = self.literal(start, keyword)
            if p < 0:
                continue
            name, p = self.port_name(p)
            if name is None:
                return -1
            if keyword == "DEFAULT_INPORT=":
                self.default_in = name
            else:
                self.default_out = name
            return self.line_terminator(self.spaces(p))
        return -1

    def annotation_line(self, pos: int) -> int:
        # Reference: `# @key value` only at the start of a line, values of [A-Za-z0-9-_ .] and
        # a line break after it. We also take indented annotations, any value, and the last
        # line of a file (documented deviations).
        text = self.text
        p = self.spaces(pos)
        if not text.startswith("#", p):
            return -1
        p = self.spaces1(p + 1)
        if p < 0 or not text.startswith("@", p):
            return -1
        key_start = p + 1
        p = key_start
        while p < len(text) and text[p] in lexer.ANNOTATION_KEY_CHARS:
            p += 1
        if p == key_start:
            return -1
        key = text[key_start:p]
        value_start = self.spaces1(p)
        if value_start < 0:
            return -1
        end = value_start
        while end < len(text) and text[end] not in lexer.NEWLINES:
            end += 1
        value = text[value_start:end]
        if value.strip() == "":
            return -1
        if key == "runtime":
            self.graph.properties["environment"] = {"type": value}
        else:
            self.graph.properties[key] = value
        return end + 1 if end < len(text) else end

    def comment(self, pos: int) -> int:
        p = self.spaces(pos)
        if not self.text.startswith("#", p):
            self.expect(p, "'#'")
            return -1
        p += 1
        while p < len(self.text) and self.text[p] not in lexer.NEWLINES:
            p += 1
        return p

    def comment_line(self, pos: int) -> int:
        p = self.comment(pos)
        if p < 0:
            return -1
        return p + 1 if p < len(self.text) else p

    def blank_line(self, pos: int) -> int:
        return self.newline(self.spaces(pos))

    def line_terminator(self, pos: int) -> int:
        p = self.spaces(pos)
        if self.text.startswith(",", p):
            p += 1
        else:
            self.expect(p, "','")
        q = self.comment(p)
        if q >= 0:
            p = q
        if p < len(self.text) and self.text[p] in lexer.NEWLINES:
            return p + 1
        if p < len(self.text):
            self.expect(p, "end of line")
        return p

    def connection_line(self, pos: int) -> int:
        start = self.spaces(pos)
        elements: list[Element] = []
        end = self.connection(start, elements)
        if end < 0:
            return -1
        self.statements.append(Statement(start, elements))
        return self.line_terminator(self.spaces(end))

    # -- connections ---------------------------------------------------------------------

    def connection(self, pos: int, out: list[Element]) -> int:
        # connection = source _ "->" _ connection / destination, unrolled into a loop so a
        # long chain cannot exhaust Python's recursion limit. On failure the reference
        # backtracks level by level, trying a destination where each source stood.
        levels: list[tuple[int, list[Element]]] = []
        p = pos
        while True:
            source: list[Element] = []
            end = self.source_elements(p, source)
            if end >= 0:
                arrow = self.spaces(end)
                after = self.literal(arrow, "->")
                if after >= 0:
                    for element in source:
                        element.arrow_offset = arrow
                    levels.append((p, source))
                    p = self.spaces(after)
                    continue
            break
        while True:
            destination: list[Element] = []
            end = self.destination_elements(p, destination)
            if end >= 0:
                for _, source in levels:
                    out.extend(source)
                out.extend(destination)
                return end
            if not levels:
                return -1
            p, _ = levels.pop()

    def source_elements(self, pos: int, out: list[Element]) -> int:
        end = self.bridge(pos, out)
        if end >= 0:
            return end
        end = self.outport(pos, out)
        if end >= 0:
            return end
        return self.iip(pos, out)

    def destination_elements(self, pos: int, out: list[Element]) -> int:
        end = self.inport(pos, out)
        if end >= 0:
            return end
        return self.bridge(pos, out)

    def bridge(self, pos: int, out: list[Element]) -> int:
        in_port, p = self.port_then_space(pos)
        if in_port is not None:
            node_offset = p
            node, p = self.node(p)
            if node is not None:
                out_port, q = self.space_then_port(p)
                if out_port is not None:
                    out.append(self.target(node, in_port, node_offset, "bridge"))
                    out.append(self.source_ref(node, out_port, node_offset, "bridge"))
                    return q
        # alternative 2: (port__)? nodeWithComponent (__port)?
        in_port, p = self.port_then_space(pos)
        node_offset = p
        node, p = self.node_with_component(p)
        if node is None:
            return -1
        out_port, q = self.space_then_port(p)
        if out_port is not None:
            p = q
        out.append(self.target(node, in_port, node_offset, "bridge"))
        out.append(self.source_ref(node, out_port, node_offset, "bridge"))
        return p

    def outport(self, pos: int, out: list[Element]) -> int:
        node, p = self.node(pos)
        if node is None:
            return -1
        port, q = self.space_then_port(p)
        if port is not None:
            p = q
        out.append(self.source_ref(node, port, pos, "outport"))
        return p

    def inport(self, pos: int, out: list[Element]) -> int:
        port, p = self.port_then_space(pos)
        node_offset = p
        node, p = self.node(p)
        if node is None:
            return -1
        out.append(self.target(node, port, node_offset, "inport"))
        return p

    def iip(self, pos: int, out: list[Element]) -> int:
        text = self.text
        if text.startswith("'", pos):
            p = pos + 1
            chars: list[str] = []
            while p < len(text):
                if text[p] == "\\" and text.startswith("'", p + 1):
                    chars.append("'")
                    p += 2
                    continue
                if text[p] == "'":
                    out.append(Element("iip", data="".join(chars), offset=pos))
                    return p + 1
                chars.append(text[p])
                p += 1
            self.expect(p, 'a closing quote "\'"')
            self._note_unterminated(pos, "string")
            return -1
        self.expect(pos, "an IIP ('text' or a JSON value)")
        result = self.json.json_text(pos)
        if result is None:
            return -1
        value, end = result
        out.append(Element("iip", data=value, offset=self.json.skip_ws(pos)))
        return end

    # -- element construction ------------------------------------------------------------

    def target(self, node: str, port: _Port | None, node_offset: int, kind: str) -> Element:
        if port is None:
            name = self.default_in if self.case_sensitive else self.default_in.lower()
            ref = PortRef(node, name)
            return Element(
                kind + "_in",
                ref=ref,
                offset=node_offset,
                explicit_port=False,
                node_offset=node_offset,
            )
        return Element(
            kind + "_in",
            ref=PortRef(node, port.name, port.index),
            offset=port.offset,
            explicit_port=True,
            node_offset=node_offset,
        )

    def source_ref(self, node: str, port: _Port | None, node_offset: int, kind: str) -> Element:
        if port is None:
            name = self.default_out if self.case_sensitive else self.default_out.lower()
            return Element(
                kind + "_out",
                ref=PortRef(node, name),
                offset=node_offset,
                explicit_port=False,
                node_offset=node_offset,
            )
        return Element(
            kind + "_out",
            ref=PortRef(node, port.name, port.index),
            offset=node_offset,
            explicit_port=True,
            node_offset=node_offset,
        )

    # -- names and ports -----------------------------------------------------------------

    def node(self, pos: int) -> tuple[str | None, int]:
        """nodeNameAndComponent / nodeName / nodeComponent."""
        name, p = self.node_name(pos)
        if name is not None:
            spec = self.component(p)
            if spec is not None:
                self.add_node(name, spec, pos)
                return name, spec.end
            return name, p
        spec = self.component(pos)
        if spec is None:
            return None, pos
        return self.add_anonymous_node(spec, pos), spec.end

    def node_with_component(self, pos: int) -> tuple[str | None, int]:
        name, p = self.node_name(pos)
        if name is not None:
            spec = self.component(p)
            if spec is not None:
                self.add_node(name, spec, pos)
                return name, spec.end
        spec = self.component(pos)
        if spec is None:
            return None, pos
        return self.add_anonymous_node(spec, pos), spec.end

    def node_name(self, pos: int) -> tuple[str | None, int]:
        text = self.text
        if pos >= len(text) or text[pos] not in lexer.NAME_START:
            self.expect(pos, "a process name")
            return None, pos
        end = pos + 1
        while end < len(text) and text[end] in lexer.NODE_CHARS:
            end += 1
        if end < len(text):
            self.expect(end, "a process name")
        return text[pos:end], end

    def component(self, pos: int) -> _ComponentSpec | None:
        text = self.text
        if not text.startswith("(", pos):
            self.expect(pos, "'('")
            return None
        p = pos + 1
        while p < len(text) and text[p] in lexer.COMPONENT_CHARS:
            p += 1
        component = text[pos + 1 : p]
        items = None
        metadata_offset = 0
        if text.startswith(":", p):
            metadata_offset = p + 1
            q = metadata_offset
            while q < len(text) and text[q] in lexer.METADATA_CHARS:
                q += 1
            if q > metadata_offset:
                items = text[metadata_offset:q].split(",")
                p = q
            else:
                self.expect(q, "metadata (key=value,...)")
        else:
            self.expect(p, "a component name")
        if not text.startswith(")", p):
            self.expect(p, "')'")
            if items is not None:
                self.expect(p, "metadata (key=value,...)")
            return None
        return _ComponentSpec(component, items, pos, metadata_offset, p + 1)

    def port_name(self, pos: int) -> tuple[str | None, int]:
        text = self.text
        if pos >= len(text) or text[pos] not in lexer.NAME_START:
            self.expect(pos, "a port name")
            return None, pos
        end = pos + 1
        while end < len(text) and text[end] in lexer.PORT_CHARS:
            end += 1
        return text[pos:end], end

    def port(self, pos: int) -> tuple[_Port | None, int]:
        name, p = self.port_name(pos)
        if name is None:
            return None, pos
        if not self.case_sensitive:
            name = name.lower()
        index = None
        text = self.text
        if text.startswith("[", p):
            q = p + 1
            while q < len(text) and text[q] in lexer.DIGITS:
                q += 1
            if q > p + 1 and text.startswith("]", q):
                index = int(text[p + 1 : q])
                p = q + 1
            else:
                self.expect(q, "a port index like [0]" if q == p + 1 else "']'")
        else:
            self.expect(p, "'['")
        return _Port(name, index, pos), p

    def port_then_space(self, pos: int) -> tuple[_Port | None, int]:
        port, p = self.port(pos)
        if port is None:
            return None, pos
        q = self.spaces1(p)
        if q < 0:
            return None, pos
        return port, q

    def space_then_port(self, pos: int) -> tuple[_Port | None, int]:
        p = self.spaces1(pos)
        if p < 0:
            return None, pos
        port, q = self.port(p)
        if port is None:
            return None, pos
        return port, q

    # -- declarations --------------------------------------------------------------------

    def add_node(self, name: str, spec: _ComponentSpec, offset: int) -> None:
        graph = self.graph
        process = graph.processes.get(name)
        location = self.location(offset)
        if process is None:
            process = Process(name, None, {}, location)
            graph.processes[name] = process
        # Backtracking may match the same declaration several times; report problems once.
        seen = self.declared.setdefault(f"{name}@{offset}", location)
        first_time_here = seen is location
        if spec.component:
            if first_time_here and process.component and process.component != spec.component:
                graph.problems.append(
                    graph.error(
                        f"process '{name}' is declared as '{spec.component}' here but as "
                        f"'{process.component}' at line {_line_of(process.location)}",
                        location,
                        hint="use a different name for a second process; a process has "
                        "one component",
                    )
                )
            if not process.component:
                process.location = location
            process.component = spec.component
        if spec.metadata_items is not None:
            metadata = self.metadata(spec, first_time_here)
            if first_time_here and process.metadata and process.metadata != metadata:
                graph.problems.append(
                    graph.error(
                        f"process '{name}' gets metadata {_show_metadata(metadata)} here but "
                        f"{_show_metadata(process.metadata)} at line {_line_of(process.location)}; "
                        "the reference parser keeps only the last",
                        location,
                        hint="give all metadata in one place",
                    )
                )
            process.metadata = metadata

    def add_anonymous_node(self, spec: _ComponentSpec, offset: int) -> str:
        name = self.anonymous_names.get(offset)
        if name is None:
            # Like the reference: only the FIRST run of non-alphanumerics becomes '_'.
            base = re.sub(r"[^a-zA-Z0-9]+", "_", spec.component, count=1)
            count = self.anonymous_counts.get(base, 0) + 1
            self.anonymous_counts[base] = count
            name = f"_{base}_{count}"
            self.anonymous_names[offset] = name
            self.add_node(name, spec, offset)
        return name

    def metadata(self, spec: _ComponentSpec, report: bool) -> dict[str, Any]:
        result: dict[str, Any] = {}
        offset = spec.metadata_offset
        for item in spec.metadata_items or []:
            parts = item.split("=")
            location = self.location(offset)
            if len(parts) == 1:
                key, value = "routes", parts[0]
            else:
                key, value = parts[0], parts[1]
                if len(parts) > 2 and report:
                    self.graph.problems.append(
                        self.graph.error(
                            f"metadata item '{item}' has more than one '='; the reference "
                            f"parser silently keeps only '{key}={value}'",
                            location,
                            hint="write metadata as key=value pairs separated by commas",
                        )
                    )
            if key in ("x", "y"):
                value = self.coordinate(key, value, location, report)
            result[key] = value
            offset += len(item) + 1
        return result

    def coordinate(self, key: str, value: str, location: Location, report: bool) -> Any:
        if _FLOAT.match(value):
            number = float(value)
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        if report:
            self.graph.problems.append(
                self.graph.error(
                    f"metadata '{key}={value}' is not a number; {key} is a position in "
                    "graph editors",
                    location,
                    hint=f"write a number such as {key}=120 or {key}=-40.5",
                )
            )
        return None


def _show_metadata(metadata: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in metadata.items()) or "(none)"


def _line_of(location: Location | None) -> int | str:
    return location.line if location is not None and location.line is not None else "?"
