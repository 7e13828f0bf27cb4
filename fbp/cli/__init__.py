"""The `fbp` command line.

Each subcommand lives in its own module in this package and defines `COMMAND` (its name),
`HELP` (one line), `DESCRIPTION` (the full help text), `add_arguments(parser)` and
`run(args) -> int`; `ACCEPTS_UNKNOWN = True` hands options it does not declare to `run`
as `args.unknown` (for options passed on to another program). Modules are discovered,
so adding a subcommand touches no other file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from fbp import __version__
from fbp.errors import FBPError

# Order in `fbp --help`; commands not listed here follow alphabetically.
_ORDER = ["run", "check", "parse", "show", "components", "doctor"]


def _subcommand_modules():
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    modules = [m for m in modules if hasattr(m, "COMMAND")]

    def order(module):
        name = module.COMMAND
        return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)

    return sorted(modules, key=order)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="fbp",
        description=(
            "Flow-based programming runtime for light-source data pipelines. Wire components "
            "together in a .fbp graph file and run it: every component runs in its own "
            "process, linked by shared-memory rings."
        ),
        epilog="Run `fbp COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"fbp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _subcommand_modules():
        passes_on = getattr(module, "ACCEPTS_UNKNOWN", False)
        p = sub.add_parser(
            module.COMMAND,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            # an option passed on must not be taken for one of ours it abbreviates
            # (sbatch's --time is not `--timeout`)
            allow_abbrev=not passes_on,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _accepts_unknown=passes_on)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fbp` console script; returns the process exit status."""
    parser = build_parser()
    # A command that passes options on to another program (`fbp slurm submit` to sbatch)
    # sets ACCEPTS_UNKNOWN: options it does not declare, and everything after `--` (also
    # names it does declare), are passed on. For every other command they are errors.
    argv = list(sys.argv[1:] if argv is None else argv)
    passed: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        head, _ = parser.parse_known_args(argv[:cut])
        if getattr(head, "_accepts_unknown", False):
            argv, passed = argv[:cut], argv[cut + 1 :]
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "_accepts_unknown", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.unknown = unknown + passed
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except FBPError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `fbp components | head`: the reader left; say nothing more (and let Python's
        # own flush at exit not complain either)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
