"""`fbp run`: run a graph until every process has finished."""

from __future__ import annotations

import argparse
import sys

from fbp.errors import GraphError

COMMAND = "run"
HELP = "run a graph: one process per component, shared-memory rings between them"
DESCRIPTION = """\
Run a .fbp (or JSON) graph. Every connection and IIP is checked first (as `fbp check`
does); then each process runs in its own OS process (`workers=N` runs N), linked by
shared-memory rings. The run ends when every process has finished: sources end, end of
stream flows downstream, each process finishes once all its inputs are drained.

Runtime messages and the final summary go to stderr; stdout carries only what components
print. On a terminal a live status table shows each process and connection.

Exit status: 0 when everything finished cleanly; 1 when a process died or packets failed
(a summary says which); 124 after --timeout; 130 after Ctrl-C (sources stop, the rest
drains; a second Ctrl-C kills everything at once).

While it runs, the network serves a web dashboard, a JSON API and Prometheus metrics on
127.0.0.1 (token-protected): `--ui` prints the dashboard's URL; `fbp ui` prints it for a
network already running, `fbp top` shows it in the terminal (docs/dashboard.md).

Across hosts: with --hosts, processes run on the host their `node=NAME` metadata names
(the others here); start `fbp agent` on every other host first. Connections between
hosts become lossless ZeroMQ links; Ctrl-C, end of stream and failures reach every host
(docs/hosts.md).

examples:
  fbp run graphs/count.fbp
  fbp run graphs/count.fbp --set Seq.COUNT=10
  fbp run pipeline.fbp --path ./my_components --timeout 60 --quiet
  fbp run graphs/sx_hitfinding.fbp --set Sim.FRAMES=0 --ui
  fbp run graphs/sx_hitfinding.fbp --ui 0.0.0.0:8765     # reachable from other hosts
  fbp run split.fbp --hosts det=local,gpu=tcp://10.0.0.2:7000 --keys ~/.fbp/keys
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the graph: .fbp or reference JSON")
    add_run_options(parser)
    parser.add_argument("--no-status", action="store_true", help="no live table even on a terminal")
    parser.add_argument(
        "--ui",
        nargs="?",
        const="127.0.0.1:0",
        default=None,
        metavar="HOST:PORT",
        help="serve the web dashboard (default 127.0.0.1, a free port) and print its URL",
    )
    parser.add_argument(
        "--observe",
        default=None,
        metavar="HOST:PORT",
        help="where the run's dashboard, JSON API and /metrics listen (default 127.0.0.1, "
        "a free port; `fbp ui` and `fbp top` find it)",
    )
    parser.add_argument(
        "--hosts",
        metavar="NAME=local|NAME=tcp://HOST:PORT,...",
        help="run across hosts: a process with node=NAME runs on that host (`local`: here, "
        "else the `fbp agent` listening at that address); processes without node= run here",
    )
    parser.add_argument(
        "--no-observe",
        action="store_true",
        help="no dashboard, metrics endpoint or previews for this run",
    )


def add_run_options(parser: argparse.ArgumentParser, keys_help: str | None = None) -> None:
    """The options of a run wherever it starts (`fbp run`, `fbp slurm submit`)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PROC.PORT=VALUE",
        help="give PROC's inport PORT this IIP (replaces one in the file); repeatable",
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="folder with your own component libraries (also FBP_PATH)",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="print only what components print (and failures)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="stop the sources after S seconds and exit 124",
    )
    parser.add_argument(
        "--hang-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="a process silent for S seconds (stopped or hung) is killed, then its restart "
        "policy applies; 0 never (default 10; per process: hang_timeout=S)",
    )
    parser.add_argument(
        "--ledger",
        metavar="FILE",
        help="write the loss ledger (packets failed, replayed, dropped, lost) as JSON",
    )
    parser.add_argument(
        "--keys",
        metavar="DIR",
        help=keys_help
        or "CurveZMQ key folder (`fbp keys generate DIR`), the same on every host: "
        "encrypts and authenticates the agents and links of --hosts",
    )
    parser.add_argument(
        "--host-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="a host silent for S seconds is lost: reported, its links end, and the run "
        "stops or goes on as --on-host-loss says (default 10)",
    )
    parser.add_argument(
        "--on-host-loss",
        choices=["stop", "continue"],
        default="stop",
        help="when a host is lost: stop the run (default), or continue without it: what "
        "it held and what is sent to it afterwards is counted as lost; exit status 1",
    )


def run_option_list(args: argparse.Namespace) -> list[str]:
    """`add_run_options` values as `fbp run` arguments again, except --set, --path and
    --keys (for a run started elsewhere: the batch step of `fbp slurm submit`)."""
    import os

    options = [
        "--hang-timeout",
        f"{args.hang_timeout:g}",
        "--host-timeout",
        f"{args.host_timeout:g}",
        "--on-host-loss",
        args.on_host_loss,
    ]
    if args.timeout is not None:
        options += ["--timeout", f"{args.timeout:g}"]
    if args.ledger:
        options += ["--ledger", os.path.abspath(args.ledger)]
    if args.quiet:
        options.append("--quiet")
    return options


def apply_sets(graph, sets: list[str]) -> None:
    """Replace or add IIPs from `--set PROC.PORT=VALUE` options.

    Raises:
        GraphError: a malformed option or an unknown process.
    """
    from fbp.graph import Connection, Location, PortRef

    for number, text in enumerate(sets, 1):
        where = Location("<--set>", number, 1, text)
        target, sep, value = text.partition("=")
        process, dot, port = target.rpartition(".")
        if not sep or not dot or not process or not port:
            raise GraphError(
                f"--set {text!r} must look like PROC.PORT=VALUE",
                file="<--set>",
                line=number,
                hint="e.g. --set Seq.COUNT=10",
            )
        if process not in graph.processes:
            raise GraphError(
                f"--set {text!r}: the graph has no process {process!r} "
                f"(processes: {', '.join(graph.processes)})",
                file="<--set>",
                line=number,
            )
        key = port if graph.case_sensitive else port.lower()
        graph.connections = [
            c
            for c in graph.connections
            if not (
                c.src is None
                and c.tgt.process == process
                and (c.tgt.port == key or c.tgt.port.lower() == port.lower())
            )
        ]
        graph.connections.append(Connection(None, PortRef(process, key), value, {}, where))


def _across_hosts(args, graph, plan, log) -> dict | None:
    """Supervisor arguments for a run across hosts, or None after printing why not."""
    import os

    from fbp.cluster.coordinator import ClusterError, RemoteHosts
    from fbp.cluster.keys import load_keys
    from fbp.cluster.placement import parse_hosts, place
    from fbp.graph.jsonio import graph_to_json

    try:
        placement = place(plan, parse_hosts(args.hosts))
        load_keys(args.keys)
    except ValueError as exc:
        print(f"fbp run: {exc}", file=sys.stderr)
        return None
    except ExceptionGroup as group:
        for problem in group.exceptions:
            print(problem.format(), file=sys.stderr)
        return None
    options = {"placement": placement, "keys": args.keys}
    if not placement.remote_hosts:
        return options
    remote = RemoteHosts(
        placement,
        graph_json=graph_to_json(graph),
        file=str(args.file),
        paths=[os.path.abspath(p) for p in args.path],
        keys=args.keys,
        host_timeout=args.host_timeout,
        hang_timeout=args.hang_timeout,
        on_host_loss=args.on_host_loss,
        log=log,
        err=lambda text: (sys.stderr.write(text), sys.stderr.flush()),
    )
    try:
        remote.connect()
    except ClusterError as exc:
        print(f"fbp run: nothing was started:\n{exc}", file=sys.stderr)
        return None
    return {**options, "remote": remote, "link_bind": remote.bind_address}


def run(args: argparse.Namespace) -> int:
    from fbp.graph import load
    from fbp.registry import Registry
    from fbp.runtime.display import LiveDisplay, PlainLog, stderr_console
    from fbp.runtime.plan import make_plan
    from fbp.runtime.supervisor import Supervisor

    graph = load(args.file)
    apply_sets(graph, args.set)
    registry = Registry(args.path)
    try:
        plan = make_plan(graph, registry)
    except ExceptionGroup as group:
        for problem in group.exceptions:
            print(problem.format() if isinstance(problem, GraphError) else problem, file=sys.stderr)
        print(f"fbp run: {len(group.exceptions)} problem(s); nothing was started", file=sys.stderr)
        return 1
    live = not args.quiet and not args.no_status and sys.stdout.isatty() and sys.stderr.isatty()
    display = LiveDisplay() if live else None
    log = None if args.quiet else (display.log if display else PlainLog())
    across = {}
    if args.hosts:
        across = _across_hosts(args, graph, plan, log)
        if across is None:
            return 1
    elif any("node" in p.metadata for p in graph.processes.values()) and log:
        log("fbp: processes name a node= but no --hosts was given: every process runs here")
    supervisor = Supervisor(
        plan,
        paths=args.path,
        log=log,
        display=display,
        timeout=args.timeout,
        hang_timeout=args.hang_timeout,
        on_host_loss=args.on_host_loss,
        **across,
    )
    if across.get("remote") is not None:
        across["remote"].attach(supervisor)
    observer = None
    if not args.no_observe:
        from fbp.observe import Observer

        try:
            observer = Observer(supervisor, args.ui or args.observe)
            observer.start()
        except (OSError, ValueError) as exc:
            print(f"fbp run: cannot serve the dashboard: {exc}", file=sys.stderr)
            return 1
        if args.ui is not None:
            print(f"fbp: dashboard at {observer.url}", file=sys.stderr, flush=True)
    try:
        status = supervisor.run()
    finally:
        if observer is not None:
            observer.close()
    if args.ledger:
        try:
            supervisor.ledger.write(args.ledger)
        except OSError as exc:
            print(f"fbp run: cannot write the ledger to {args.ledger}: {exc}", file=sys.stderr)
            status = status or 1
    console = stderr_console()
    if not args.quiet:
        console.print(supervisor.summary())
    if status != 0:
        console.print(
            f"fbp run: exit status {status}:\n{supervisor.failure_report()}", markup=False
        )
    return status
