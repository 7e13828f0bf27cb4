"""`fbp check`: parse and validate graph files; print every problem with its location."""

from __future__ import annotations

import importlib
import sys

from fbp.errors import GraphError
from fbp.graph import load, validate

COMMAND = "check"
HELP = "check graph files for syntax and structural errors"
DESCRIPTION = """\
Parse and validate each graph file without running anything.

Every problem is printed as `file:line:col: error: message`, followed by the source line, a
caret under the offending text and a hint. The exit status is 0 when every file is valid and
1 otherwise.

Checked now: syntax; processes used but never declared; processes without a component;
processes redeclared with another component or other metadata; exports to undefined
processes; connections the reference parser would silently drop (a bare name in the middle
of a chain, dangling ports, an IIP after '->'); x/y metadata that is not a number.

With --hosts (as `fbp run` takes it) it also shows where every process would run and
which connections cross hosts, and reports processes whose node= names no host.

examples:
  fbp check graphs/sx_hitfinding.fbp
  fbp check graphs/*.fbp
  fbp check split.fbp --hosts det=local,gpu=tcp://10.0.0.2:7000
"""

# Later layers (component registry, port types) add checks here without touching this file:
# a module `fbp.runtime.checks` that defines CHECKS, a sequence of `check(graph) -> errors`.
_EXTRA_CHECKS_MODULE = "fbp.runtime.checks"


def add_arguments(parser) -> None:
    """Declare the arguments of `fbp check`."""
    parser.add_argument("files", metavar="FILE", nargs="+", help="graph files (.fbp or .json)")
    parser.add_argument(
        "--case-sensitive", action="store_true", help="keep the case of port and export names"
    )
    parser.add_argument(
        "--hosts",
        metavar="NAME=local|NAME=tcp://HOST:PORT,...",
        help="also show the placement on these hosts (see `fbp run --hosts`)",
    )


def extra_checks():
    """Checks contributed by later layers (`fbp.runtime.checks.CHECKS`), if installed."""
    try:
        module = importlib.import_module(_EXTRA_CHECKS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (_EXTRA_CHECKS_MODULE, "fbp.runtime"):
            raise
        return ()
    return tuple(getattr(module, "CHECKS", ()))


def _show_placement(graph, hosts_text: str) -> int:
    """Print where each process runs; return the number of problems printed."""
    from fbp.cluster.placement import parse_hosts, place
    from fbp.registry import Registry
    from fbp.runtime.plan import make_plan

    try:
        placement = place(make_plan(graph, Registry()), parse_hosts(hosts_text))
    except ValueError as exc:
        print(f"fbp check: {exc}", file=sys.stderr)
        return 1
    except ExceptionGroup as group:
        for problem in group.exceptions:
            print(problem.format(), file=sys.stderr)
        return len(group.exceptions)
    for line in placement.describe().splitlines():
        print(f"  {line}")
    return 0


def run(args) -> int:
    """Check every file; returns 0 when all are valid, 1 otherwise.

    Raises:
        Nothing for problems in the graphs: they are printed and counted.
    """
    checks = extra_checks()
    failed = 0
    total = 0
    for path in args.files:
        try:
            graph = load(path, case_sensitive=args.case_sensitive)
            problems = validate(graph, extra_checks=checks)
        except GraphError as exc:
            problems = [exc]
        total += len(problems)
        if problems:
            failed += 1
            for problem in problems:
                print(problem.format(), file=sys.stderr)
        else:
            print(
                f"{path}: ok ({len(graph.processes)} processes, "
                f"{len(graph.connections)} connections)"
            )
            if args.hosts:
                placement_problems = _show_placement(graph, args.hosts)
                if placement_problems:
                    failed += 1
                    total += placement_problems
    if failed:
        noun = "problem" if total == 1 else "problems"
        print(f"{total} {noun} in {failed} of {len(args.files)} file(s)", file=sys.stderr)
        return 1
    return 0
