"""`fbp show`: draw a graph with Graphviz (DOT text, or SVG through the `dot` program)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from fbp.errors import FBPError
from fbp.graph import load
from fbp.graph.dot import to_dot

COMMAND = "show"
HELP = "draw a graph as Graphviz DOT or SVG"
DESCRIPTION = """\
Draw a graph: processes as boxes (name and component), connections as arrows labelled with
their ports (OUT -> IN, with array indices), IIPs as notes, exported ports as ovals.

--format dot prints Graphviz DOT text (no extra software needed); --format svg runs the
Graphviz `dot` program, which must be installed (Debian/Ubuntu: `apt-get install graphviz`,
conda: `conda install graphviz`).

examples:
  fbp show graphs/sx_hitfinding.fbp --format dot > sx.dot
  fbp show graphs/sx_hitfinding.fbp --format svg -o sx.svg
"""


def add_arguments(parser) -> None:
    """Declare the arguments of `fbp show`."""
    parser.add_argument("file", metavar="FILE", help="graph file (.fbp or .json)")
    parser.add_argument("--format", choices=("dot", "svg"), default="dot", help="output format")
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    parser.add_argument(
        "--case-sensitive", action="store_true", help="keep the case of port and export names"
    )


def run(args) -> int:
    """Render the graph; returns 0.

    Raises:
        GraphError: the graph has a syntax error.
        FBPError: SVG was asked for but Graphviz `dot` is missing or failed.
    """
    graph = load(args.file, case_sensitive=args.case_sensitive)
    dot_text = to_dot(graph)
    if args.format == "dot":
        data = dot_text.encode()
    else:
        program = shutil.which("dot")
        if program is None:
            raise FBPError(
                "fbp show --format svg needs the Graphviz `dot` program, which is not "
                "installed; install it (Debian/Ubuntu: `apt-get install graphviz`, conda: "
                "`conda install graphviz`) or use --format dot and render elsewhere"
            )
        result = subprocess.run(
            [program, "-Tsvg"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise FBPError(f"Graphviz dot failed: {result.stderr.decode(errors='replace')}")
        data = result.stdout
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
