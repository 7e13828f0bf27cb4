"""`fbp components`: list the components fbp can find, with ports, types and docs."""

from __future__ import annotations

import argparse
import json
import sys

COMMAND = "components"
HELP = "list available components with their ports, types, defaults and documentation"
DESCRIPTION = """\
List every component found in the built-in libraries (`core`, ...), in installed packages
(entry-point group `fbp.components`) and in your folders (--path DIR, or FBP_PATH): each
DIR/NAME.py file is the library NAME.

With NAME (`core/Sequence`) or a library (`core`), show only those. --json prints the same
as JSON: name, kind, description, and every port's name, type, description, default,
config and array flags.

examples:
  fbp components
  fbp components core/Sequence
  fbp components --path ./my_components --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="a component (lib/Name) or a library (lib)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="folder with your own component libraries (also FBP_PATH)",
    )


def _port_line(port, inport: bool) -> str:
    flags = []
    if port.array:
        flags.append("array")
    if inport and port.config:
        flags.append("required" if port.required else f"default {port.default!r}")
    extra = f" [{', '.join(flags)}]" if flags else ""
    text = f"    {port.name:<12} {port.type!s:<24}{extra}"
    if port.description:
        text += f"\n        {port.description}"
    return text


def format_spec(spec) -> str:
    """The plain-text description of one component."""
    lines = [f"{spec.full_name}  ({spec.kind})"]
    if spec.doc:
        lines.extend(f"  {line}".rstrip() for line in spec.doc.splitlines())
    lines.append("  inports:" if spec.inports else "  inports: none")
    lines.extend(_port_line(port, True) for port in spec.inports)
    lines.append("  outports:")
    lines.extend(_port_line(port, False) for port in spec.outports)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from fbp.registry import Registry

    registry = Registry(args.path)
    errors = []
    if args.name and "/" in args.name:
        specs = [registry.get(args.name)]
    elif args.name:
        specs = [registry.library(args.name)[n] for n in sorted(registry.library(args.name))]
    else:
        specs, errors = registry.all()
    if args.json:
        json.dump([spec.describe() for spec in specs], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n\n".join(format_spec(spec) for spec in specs))
    for error in errors:
        print(f"warning: {error}", file=sys.stderr)
    return 0
