"""One end of a link as a supervised process (a supervisor's bridge instance).

`python -m fbp.runtime.child` runs this instead of a component when its spec has
`"bridge": "send" | "receive"`: the supervisor treats it like any other instance (control
pipe, heartbeats, stderr, exit status). A receiver binds first and reports its address:

    {"t": "bound", "link": "c3-0-1", "endpoint": "tcp://0.0.0.0:41234"}

SIGUSR1 (the far host is gone) ends it early: a receiver closes its ring, so the processes
downstream see end of stream; a sender stops, so its producer sees the link broken.
"""

from __future__ import annotations

import time

import zmq

from fbp.bridge.link import LinkReceiver, LinkSender
from fbp.ring import Ring

__all__ = ["run_bridge"]

LINGER = 0.5  # a receiver stays this long after end of stream so its last ack goes out


def run_bridge(spec: dict, control, stop, heartbeat) -> int:
    """Run one link end until its stream crossed (or SIGUSR1); return the exit status.

    0 when the whole stream crossed; 1 when it ended early (the supervisor then counts
    what was still in the ring as lost).
    """
    from fbp.cluster.keys import load_keys

    link_id = spec["link"]

    def report(text: str) -> None:
        control.send({"t": "log", "level": 30, "msg": f"link {link_id}: {text}"})

    keys = load_keys(spec.get("keys"))
    context = zmq.Context()
    authenticator = keys.authenticate(context) if keys and spec["bridge"] == "receive" else None
    try:
        if spec["bridge"] == "receive":
            counters = _receive(spec, context, keys, control, stop, heartbeat, report)
        else:
            counters = _send(spec, context, keys, control, stop, heartbeat, report)
    finally:
        if authenticator is not None:
            authenticator.stop()
        context.term()
    complete = counters.pop("complete")
    control.send({"t": "done", "processed": counters.pop("n"), "errors": 0, **counters})
    return 0 if complete else 1


def _receive(spec, context, keys, control, stop, heartbeat, report) -> dict:
    ring = Ring.attach(spec["ring"], "producer")
    link = LinkReceiver(
        ring,
        spec["endpoint"],
        context=context,
        peer_timeout=spec.get("peer_timeout", 5.0),
        keys=keys.server() if keys else None,
        report=report,
    )
    control.send({"t": "bound", "link": spec["link"], "endpoint": link.endpoint})
    heartbeat()
    control.send({"t": "state", "state": "running"})
    while not link.ended and not stop():
        link.step()
    complete = link.ended
    if not complete:
        ring.close()  # the far host is gone: what came is all that comes
        report("ended before its end of stream arrived (the sending host is gone)")
    deadline = time.monotonic() + LINGER
    while time.monotonic() < deadline and not stop():
        link.step(0.05)
    link.close()
    ring.close()
    return {"n": link.received, "duplicates": link.duplicates, "complete": complete}


def _send(spec, context, keys, control, stop, heartbeat, report) -> dict:
    ring = Ring.attach(spec["ring"], "consumer")
    # the link owns its ZeroMQ context: it ends it before the ring's memory can go
    link = LinkSender(
        ring,
        spec["endpoint"],
        peer_timeout=spec.get("peer_timeout", 5.0),
        keys=keys.client() if keys else None,
        report=report,
    )
    heartbeat()
    control.send({"t": "state", "state": "running"})
    while not link.done() and not stop():
        link.step()
        if link.ended and link.peer_lost:
            report("end of stream sent but never acknowledged: the receiving host is gone")
            break
    counters = {"n": link.sent, "resent": link.resent, "complete": link.done()}
    link.close()
    ring.close()
    return counters
