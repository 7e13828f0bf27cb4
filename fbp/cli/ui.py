"""`fbp ui`: the dashboard of a network that is already running."""

from __future__ import annotations

import argparse
import sys

from fbp.errors import FBPError

COMMAND = "ui"
HELP = "print (or open) the web dashboard URL of a running network"
DESCRIPTION = """\
Every `fbp run` serves a web dashboard (the graph with live rates and fill levels,
per-process state, CPU and errors, and live previews of any connection) on 127.0.0.1,
protected by a random token. `fbp ui` finds the run in your run folder and prints the
dashboard's URL, token included, or opens it in a browser with --open.

With several runs, name one by its pid or graph name (`fbp ui --list` shows them). To
reach a run on another machine, start it with `fbp run FILE --ui 0.0.0.0:PORT` (the token
still protects it) or forward the port: ssh -L PORT:127.0.0.1:PORT host.

examples:
  fbp ui                       # the only running network
  fbp ui sx_hitfinding --open  # by graph name, in the default browser
  fbp ui --list
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `fbp ui`."""
    parser.add_argument(
        "run", nargs="?", help="pid or graph name of the run (default: the only one)"
    )
    parser.add_argument("--open", action="store_true", help="open the dashboard in a browser")
    parser.add_argument("--list", action="store_true", help="list running networks and exit")


def run(args: argparse.Namespace) -> int:
    """Print (or open) a running network's dashboard URL."""
    from fbp.observe.client import endpoint_for
    from fbp.observe.runs import list_runs

    if args.list:
        runs = list_runs()
        for entry in runs:
            print(f"{entry['pid']:>8}  {entry.get('graph')}  {entry.get('file')}  {entry['url']}")
        if not runs:
            print("no fbp run is running for this user", file=sys.stderr)
        return 0
    try:
        endpoint = endpoint_for(args.run)
        endpoint.snapshot()  # reachable, token accepted
    except FBPError as exc:
        print(f"fbp ui: {exc}", file=sys.stderr)
        return 1
    print(endpoint.dashboard)
    if args.open:
        import webbrowser

        webbrowser.open(endpoint.dashboard)
    return 0
