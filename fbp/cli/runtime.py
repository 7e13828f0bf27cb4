"""`fbp runtime`: serve the FBP network protocol so FBP tools can edit and run graphs."""

from __future__ import annotations

import argparse
import signal
import sys

COMMAND = "runtime"
HELP = "serve the FBP network protocol (WebSocket) for noflo-ui/Flowhub-style tools"
DESCRIPTION = """\
Listen for FBP network protocol clients on a WebSocket (subprotocol `noflo`). Clients
list components, build and edit graphs, start and stop networks and watch packets on
their connections. Networks run on the real runtime: one process per component, shared
memory rings, as `fbp run` does. One line on stdout says where it listens.

Bound to 127.0.0.1 unless --host says otherwise: anyone who can connect can run
components, so give --secret when listening on a network.

examples:
  fbp runtime --port 3569
  fbp runtime --port 3569 --path ./my_components
  fbp runtime --host 0.0.0.0 --port 3569 --secret s3cret
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=3569, help="TCP port (default 3569; 0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--secret", default=None, help="require this secret in every request")
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        metavar="N",
        help="network:data samples sent per connection per second at most (default 20)",
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="folder with your own component libraries (also FBP_PATH)",
    )


def run(args: argparse.Namespace) -> int:
    from fbp.protocol.server import RuntimeServer
    from fbp.registry import Registry

    registry = Registry(args.path)
    registry.all()  # load the libraries now, so the first component:list is quick
    server = RuntimeServer(
        registry,
        host=args.host,
        port=args.port,
        paths=args.path,
        secret=args.secret,
        rate=args.rate,
    )
    try:
        thread = server.run_in_thread()
    except OSError as exc:
        print(f"fbp runtime: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    exiting = {"now": False}

    def on_signal(signum, frame) -> None:
        exiting["now"] = True

    # While no network runs, Ctrl-C and SIGTERM end the server; while one runs, the
    # supervisor's own handlers take over (graceful stop) and the server ends after it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    print(
        f"fbp runtime: listening on ws://{args.host}:{server.port}/ (subprotocol noflo)", flush=True
    )
    from fbp.protocol.output import OutputForwarder

    forwarder = OutputForwarder(server.emit)
    forwarder.start()
    try:
        server.networks.serve(lambda: exiting["now"])
    finally:
        forwarder.close()
        server.shutdown(thread)
    return 0
