"""`fbp agent`: serve coordinators' runs on this host."""

from __future__ import annotations

import signal
import sys

COMMAND = "agent"
HELP = "run on each extra host of a multi-host network; `fbp run --hosts` sends it work"
DESCRIPTION = """\
Listen for coordinators (`fbp run FILE --hosts NAME=tcp://THIS-HOST:PORT,...`) and run the
processes they place on this host (metadata node=NAME), with their rings, and a bridge
process for every connection to another host. Process output and failures are reported
to the coordinator, which prints them prefixed with the host name. Components (and any
--path folders) must be installed here as on the coordinator, in the same fbp version.

The agent keeps running between runs; Ctrl-C or SIGTERM stops it and kills what it runs.
If a coordinator goes silent (killed, network gone) for its --host-timeout, the agent
kills that run's processes and removes its shared memory.

Security: without --keys anyone who can reach the port can run components here, so
listen on a private network only; with --keys DIR (`fbp keys generate DIR`, the same
folder on every host) every connection is CurveZMQ-encrypted and peers without the key
are refused (and reported here).

examples:
  fbp agent --listen tcp://0.0.0.0:7000
  fbp agent --listen tcp://10.0.0.2:7000 --keys ~/.fbp/keys
  fbp agent --listen tcp://0.0.0.0:0 --announce /shared/job/agents/{node}.json  # as Slurm jobs do
"""


def add_arguments(parser) -> None:
    """Declare the arguments of `fbp agent`."""
    parser.add_argument(
        "--listen",
        required=True,
        metavar="tcp://ADDR:PORT",
        help="where coordinators connect (port 0: a free port, printed and announced)",
    )
    parser.add_argument(
        "--keys", metavar="DIR", help="CurveZMQ key folder (the same as the coordinator's)"
    )
    parser.add_argument(
        "--announce",
        metavar="FILE",
        help='once listening, write {"node", "endpoint", "pid"} as JSON to FILE (atomically); '
        "{node} in FILE becomes this node's name (Slurm's, else the hostname)",
    )


def run(args) -> int:
    """Serve until SIGINT/SIGTERM; 0 then."""
    from fbp.cluster.agent import Agent, announce_address, node_name, write_announcement

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        agent = Agent(args.listen, keys=args.keys, log=log)
    except Exception as exc:  # zmq errors: address in use, bad endpoint
        import zmq

        if isinstance(exc, zmq.ZMQError):
            print(f"fbp agent: cannot listen on {args.listen}: {exc}", file=sys.stderr)
            return 1
        raise
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: agent.stop())
    if args.announce:
        write_announcement(args.announce.replace("{node}", node_name()), agent.endpoint)
    secure = f", keys {agent.keys_folder}" if agent.keys else ", no keys (plain TCP)"
    print(
        f"fbp agent: listening on {announce_address(agent.endpoint)} (node {node_name()}{secure})",
        flush=True,
    )
    agent.serve()
    return 0
