"""Structural validation of a Graph, and the hook later layers use to add their checks.

A check is a function `check(graph) -> iterable of GraphError`. `validate` runs the
structural checks here and any `extra_checks` a caller passes (the runtime adds component,
port and type checks this way), and returns every problem sorted by position, so a user sees
all of them at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

from fbp.errors import GraphError
from fbp.graph.model import Graph, Location

Check = Callable[[Graph], Iterable[GraphError]]


def parser_problems(graph: Graph) -> Iterable[GraphError]:
    """Problems the parser noticed: dropped edges, dangling ports, conflicting redeclarations."""
    return list(graph.problems)


def processes_have_components(graph: Graph) -> Iterable[GraphError]:
    """Every process names its component."""
    for process in graph.processes.values():
        if not process.component:
            yield graph.error(
                f"process '{process.name}' has no component",
                process.location,
                hint=f"declare it once with its component, e.g. `{process.name}(core/Repeat)`",
            )


def _undefined(graph: Graph, name: str, message: str, location: Location | None) -> GraphError:
    close = difflib.get_close_matches(name, list(graph.processes), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    hint += f"declare it with its component where it is first used: `{name}(library/Component)`"
    return graph.error(message, location, hint=hint)


def connections_use_defined_processes(graph: Graph) -> Iterable[GraphError]:
    """Both ends of every connection (and every IIP's target) are declared processes."""
    for connection in graph.connections:
        if connection.src is not None and connection.src.process not in graph.processes:
            name = connection.src.process
            yield _undefined(
                graph, name, f"source process '{name}' is not defined", connection.location
            )
        if connection.tgt.process not in graph.processes:
            where = connection.target_location or connection.location
            role = "IIP target" if connection.src is None else "target"
            name = connection.tgt.process
            yield _undefined(graph, name, f"{role} process '{name}' is not defined", where)


def exports_use_defined_processes(graph: Graph) -> Iterable[GraphError]:
    """INPORT=/OUTPORT= name declared processes."""
    for kind, exports in (("INPORT", graph.inports), ("OUTPORT", graph.outports)):
        for export in exports.values():
            if export.process not in graph.processes:
                message = (
                    f"{kind} '{export.name}' exports port {export.port} of process "
                    f"'{export.process}', which is not defined"
                )
                yield _undefined(graph, export.process, message, export.location)


STRUCTURAL_CHECKS: tuple[Check, ...] = (
    parser_problems,
    processes_have_components,
    connections_use_defined_processes,
    exports_use_defined_processes,
)


def validate(
    graph: Graph,
    *,
    checks: Sequence[Check] = STRUCTURAL_CHECKS,
    extra_checks: Sequence[Check] = (),
) -> list[GraphError]:
    """Run `checks` and then `extra_checks` on `graph`.

    Args:
        graph: the graph to check.
        checks: the structural checks (default: all of this module's).
        extra_checks: more checks from later layers, e.g. component and port types.

    Returns:
        Every problem found, ordered by file position (problems without one come last).
        An empty list means the graph is valid.

    Raises:
        Nothing for problems in the graph; a check that crashes propagates its exception.
    """
    problems: list[GraphError] = []
    seen: set[str] = set()
    for check in (*checks, *extra_checks):
        for problem in check(graph):
            text = problem.format()
            if text not in seen:
                seen.add(text)
                problems.append(problem)

    def position(problem: GraphError) -> tuple[int, int, int]:
        if problem.line is None:
            return (1, 0, 0)
        return (0, problem.line, problem.col or 0)

    return sorted(problems, key=position)
