"""`fbp parse`: read a graph and print it as the reference JSON or as a readable summary."""

from __future__ import annotations

import json
import sys

from fbp.graph import load, validate
from fbp.graph.summary import summary

COMMAND = "parse"
HELP = "parse a .fbp (or JSON) graph and print it as JSON or a summary"
DESCRIPTION = """\
Parse a graph file and print it.

With --json the output is the JSON graph exactly as the reference parser (npm `fbp`) prints
it: processes, connections in textual order, inports, outports, groups, properties and
caseSensitive. Without --json a readable summary is printed. The graph is validated first;
any problem is printed as `file:line:col: error: ...` and the exit status is 1.

Port and export names are lower-cased, as the reference does, unless --case-sensitive.

examples:
  fbp parse graphs/sx_hitfinding.fbp
  fbp parse graphs/sx_hitfinding.fbp --json > sx.json
  fbp parse sx.json                       # JSON graphs load too
  cat net.fbp | fbp parse - --json --case-sensitive
"""


def add_arguments(parser) -> None:
    """Declare the arguments of `fbp parse`."""
    parser.add_argument("file", metavar="FILE", help="graph file (.fbp or .json), '-' for stdin")
    parser.add_argument("--json", action="store_true", help="print the reference JSON graph")
    parser.add_argument(
        "--case-sensitive",
        action="store_true",
        help="keep the case of port and export names (default: lower-case them)",
    )


def run(args) -> int:
    """Parse, validate and print; returns 0, or 1 when the graph has problems.

    Raises:
        GraphError: a syntax error (the CLI prints it and exits 1).
    """
    graph = load(args.file, case_sensitive=args.case_sensitive)
    problems = validate(graph)
    if problems:
        for problem in problems:
            print(problem.format(), file=sys.stderr)
        return 1
    if args.json:
        text = json.dumps(graph.to_json(), indent=2, ensure_ascii=False)
        sys.stdout.write(text + "\n")
    else:
        sys.stdout.write(summary(graph))
    return 0
