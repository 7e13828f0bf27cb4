"""One end of a bridge link as a process: `python -m fbp.bridge send|receive RING ENDPOINT`.

Runs until the end of stream has crossed (and, sending, was acknowledged), then prints
its counters as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from fbp.bridge.link import LinkReceiver, LinkSender
from fbp.ring import Ring


def main(argv: list[str]) -> int:
    """Run one end of a link; 0 when the stream crossed completely."""
    parser = argparse.ArgumentParser(prog="python -m fbp.bridge", description=__doc__)
    parser.add_argument("role", choices=["send", "receive"])
    parser.add_argument("ring", help="the local ring's shared-memory name")
    parser.add_argument("endpoint", help="tcp://HOST:PORT (receive binds, send connects)")
    parser.add_argument("--peer-timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def report(text: str) -> None:
        print(f"bridge {args.role}: {text}", file=sys.stderr, flush=True)

    if args.role == "send":
        ring = Ring.attach(args.ring, "consumer")
        link = LinkSender(ring, args.endpoint, peer_timeout=args.peer_timeout, report=report)
        while not link.done() and not stopping:
            link.step()
        stats = {
            "sent": link.sent,
            "resent": link.resent,
            "refused": link.refused,
            "acked": link.acked,
        }
    else:
        ring = Ring.attach(args.ring, "producer")
        link = LinkReceiver(ring, args.endpoint, peer_timeout=args.peer_timeout, report=report)
        while not link.ended and not stopping:
            link.step()
        # let the last acknowledgement go out before leaving
        for _ in range(10):
            link.step(0.05)
        stats = {"received": link.received, "duplicates": link.duplicates}
    link.close()
    ring.close()
    print(json.dumps(stats), flush=True)
    return 0 if not stopping else 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
