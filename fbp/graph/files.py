"""Reading and writing graph files: `.fbp` text or the reference JSON."""

from __future__ import annotations

import json
import os
import sys

from fbp.errors import GraphError
from fbp.graph.jsonio import graph_from_json
from fbp.graph.model import Graph
from fbp.graph.parser import parse


def _is_json(path: str, text: str) -> bool:
    if path.endswith(".json"):
        return True
    if path.endswith(".fbp"):
        return False
    return text.lstrip().startswith("{") and '"processes"' in text


def load(path: str | os.PathLike, *, case_sensitive: bool = False) -> Graph:
    """Load a graph from a `.fbp` file or a reference JSON file (`.json`); "-" reads stdin.

    Args:
        path: the file.
        case_sensitive: for `.fbp`, keep port names as written (JSON says for itself).

    Returns:
        The Graph (syntax checked; call `validate` for structural problems).

    Raises:
        GraphError: the file cannot be read, or has a syntax error (with line and column).
    """
    name = os.fspath(path)
    try:
        if name == "-":
            text = sys.stdin.read()
            name = "<stdin>"
        else:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphError(
            f"cannot read graph file: {exc}", file=name, hint="check the path and that it is UTF-8"
        ) from None
    if _is_json(name, text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            lines = text.splitlines()
            source = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else None
            raise GraphError(
                f"invalid JSON: {exc.msg}",
                file=name,
                line=exc.lineno,
                col=exc.colno,
                source_line=source,
                hint="a JSON graph is what `fbp parse --json` prints",
            ) from None
        return graph_from_json(data, file=name)
    return parse(text, file=name, case_sensitive=case_sensitive)


def save(graph: Graph, path: str | os.PathLike) -> None:
    """Write `graph` to `path`: reference JSON for `.json`, `.fbp` text otherwise.

    Raises:
        GraphError: the graph cannot be written in `.fbp` (see `Graph.to_fbp`).
        OSError: the file cannot be written.
    """
    name = os.fspath(path)
    if name.endswith(".json"):
        text = json.dumps(graph.to_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = graph.to_fbp()
    with open(name, "w", encoding="utf-8") as handle:
        handle.write(text)
