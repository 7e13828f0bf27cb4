"""`fbp top`: a live terminal view of a running network."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from rich.console import Group
from rich.table import Table
from rich.text import Text

from fbp.errors import FBPError
from fbp.runtime.latency import format_latency

SCRIPT_WIDTH = 200  # columns of a frame written to a pipe or file

COMMAND = "top"
HELP = "live terminal view of a running network: processes, connections, rates, fill"
DESCRIPTION = """\
Show a running network in the terminal, refreshed every second: each process's state,
CPU %, memory, packets in and out, rate, errors and restarts, and each connection's
packets/s, MB/s, fill level, drops and latency (how long packets waited in its ring, p50
and p99 over the last 2 s). q or Ctrl-C leaves (the network goes on).

The network is found in your run folder (every `fbp run` registers there): the only one,
or the one named by pid or graph name. A run on another host: --url and --token (from
the URL its `fbp run --ui` or `fbp ui` printed).

examples:
  fbp top
  fbp top sx_hitfinding
  fbp top --once                                   # one frame, for scripts
  fbp top --url http://beamline-node:8765 --token abc123
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `fbp top`."""
    parser.add_argument(
        "run", nargs="?", help="pid or graph name of the run (default: the only one)"
    )
    parser.add_argument("--url", help="endpoint of a run elsewhere, e.g. http://host:8765")
    parser.add_argument("--token", help="that run's token (with --url)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes"
    )


def _bar(fraction: float, width: int = 10) -> Text:
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    style = "red" if fraction > 0.8 else "cyan"
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style="dim")


def render(snapshot: dict) -> Group:
    """The two tables of one snapshot (rich renderable)."""
    header = Text(
        f"{snapshot['graph']}  {snapshot['state']}  {snapshot['elapsed']:.0f} s  "
        f"pid {snapshot.get('pid', '')}",
        style="bold",
    )
    processes = Table(title="processes", title_justify="left", expand=False)
    for column in ("process", "component", "state", "CPU %", "RSS MiB", "in", "out", "rate/s",
                   "errors", "restarts"):  # fmt: skip
        processes.add_column(
            column, justify="left" if column in ("process", "component", "state") else "right"
        )
    for p in snapshot["processes"]:
        processes.add_row(
            p["name"],
            p["component"],
            p["state"],
            f"{p.get('cpu_percent', 0):.0f}",
            "" if p.get("rss") is None else f"{p['rss'] / 2**20:.0f}",
            f"{p.get('packets_in', 0):,}",
            f"{p.get('packets_out', 0):,}",
            f"{p.get('rate', 0):,.1f}",
            str(p.get("errors", 0)),
            str(p.get("restarts", 0)),
        )
    connections = Table(title="connections", title_justify="left", expand=False)
    for column in ("connection", "packets", "packets/s", "MB/s", "fill", "full waits", "drops",
                   "latency p50", "p99"):  # fmt: skip
        connections.add_column(
            column, justify="left" if column in ("connection", "fill") else "right"
        )
    for c in snapshot["connections"]:
        fraction = c["fill_bytes"] / c["capacity"] if c["capacity"] else 0.0
        mean_size = c["bytes"] / c["packets"] if c["packets"] else 0.0
        connections.add_row(
            c["label"],
            f"{c['packets']:,}",
            f"{c.get('throughput', 0):,.1f}",
            f"{c.get('throughput', 0) * mean_size / 1e6:,.1f}",
            _bar(fraction) + Text(f" {100 * fraction:3.0f}%"),
            f"{c.get('full_waits', 0):,}",
            f"{c.get('drops', 0):,}",
            format_latency(c.get("latency_p50")),
            format_latency(c.get("latency_p99")),
        )
    return Group(header, processes, connections)


@contextlib.contextmanager
def _keys():
    """Yield `pressed(timeout) -> str` (a key, or "" after timeout) for the `q` key.

    The terminal is put in cbreak mode (keys arrive unbuffered, Ctrl-C still interrupts)
    and restored on exit; without a terminal on stdin, `pressed` only waits.
    """
    if not sys.stdin.isatty():
        yield lambda timeout: time.sleep(timeout) or ""
        return
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def pressed(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode(errors="replace") if ready else ""

    tty.setcbreak(fd)
    try:
        yield pressed
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(args: argparse.Namespace) -> int:
    """Show the network until q or Ctrl-C (or once)."""
    from rich.console import Console
    from rich.live import Live

    from fbp.observe.client import endpoint_for

    # Piped into a script or a file, rich would squeeze the tables into 80 columns and
    # cut names ("core/Thr…"); a reader there wants whole names, so allow wide lines.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=SCRIPT_WIDTH if piped else None)
    try:
        endpoint = endpoint_for(args.run, args.url, args.token)
        snapshot = endpoint.snapshot()
    except FBPError as exc:
        print(f"fbp top: {exc}", file=sys.stderr)
        return 1
    if args.once:
        console.print(render(snapshot))
        return 0
    try:
        with (
            _keys() as pressed,
            Live(render(snapshot), console=console, auto_refresh=False, screen=False) as live,
        ):
            while snapshot["state"] != "finished":
                if pressed(args.interval) in ("q", "Q"):
                    return 0
                try:
                    snapshot = endpoint.snapshot()
                except FBPError:
                    console.print("the run has ended")
                    return 0
                live.update(render(snapshot), refresh=True)
    except KeyboardInterrupt:
        return 0
    return 0
