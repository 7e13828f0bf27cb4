"""Sharing one detector stream among several consumers.

A DECTRIS detector hands each message to one connected client only (PUSH round-robin), so
two programs cannot both watch a stream. The tee is the one client: it pulls every message
and pushes a copy to each of its own PUSH endpoints, where any number of DECTRIS-stream
clients (this package's receiver, or any other) connect. Copies are zero-copy: the same
ZeroMQ frames are queued on every output.

Each output is either reliable (a full output makes the tee wait, so the slowest reliable
consumer sets the pace, and nothing is lost) or lossy (a full output drops the message for
that consumer only, and the drop is counted), e.g. for a live viewer.
"""

from __future__ import annotations

import collections
import threading

import zmq

__all__ = ["StreamTee"]

_POLL_MS = 100


class StreamTee:
    """Pull from `source` and push every message to each of `outputs`.

    Args:
        source: the detector's (or another tee's) PUSH endpoint to connect to.
        outputs: endpoints to bind, one per consumer.
        lossy: endpoints among `outputs` that drop messages when their consumer lags.
        context: ZeroMQ context (default: the process's shared instance).
        hwm: messages queued per output before it counts as full.

    Attributes:
        counts: "received", and per output "sent:<endpoint>" and "dropped:<endpoint>".

    Raises:
        ValueError: no outputs, or a lossy endpoint that is not an output.
    """

    def __init__(
        self,
        source: str,
        outputs: list[str],
        *,
        lossy: tuple[str, ...] | list[str] = (),
        context: zmq.Context | None = None,
        hwm: int = 100,
    ) -> None:
        if not outputs:
            raise ValueError("a tee needs at least one output endpoint")
        unknown = set(lossy) - set(outputs)
        if unknown:
            raise ValueError(f"lossy endpoints {sorted(unknown)} are not among the outputs")
        context = context or zmq.Context.instance()
        self.input = context.socket(zmq.PULL)
        self.input.setsockopt(zmq.RCVHWM, hwm)
        self.input.setsockopt(zmq.LINGER, 0)
        self.input.connect(source)
        self.outputs: list[tuple[str, zmq.Socket, bool]] = []
        for endpoint in outputs:
            socket = context.socket(zmq.PUSH)
            socket.setsockopt(zmq.SNDHWM, hwm)
            socket.bind(endpoint)
            self.outputs.append((endpoint, socket, endpoint in lossy))
        self.counts: collections.Counter[str] = collections.Counter()

    def pump(self, timeout: float = 0.1, stop: threading.Event | None = None) -> bool:
        """Forward at most one message, waiting up to `timeout` s for it; True if one came."""
        if not self.input.poll(int(timeout * 1000), zmq.POLLIN):
            return False
        frames = self.input.recv_multipart(copy=False)
        self.counts["received"] += 1
        for endpoint, socket, lossy in self.outputs:
            if lossy:
                try:
                    socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    self.counts[f"dropped:{endpoint}"] += 1
                    continue
            else:
                while not socket.poll(_POLL_MS, zmq.POLLOUT):
                    if stop is not None and stop.is_set():
                        self.counts[f"dropped:{endpoint}"] += 1
                        break
                else:
                    socket.send_multipart(frames, copy=False)
                    self.counts[f"sent:{endpoint}"] += 1
                continue
            self.counts[f"sent:{endpoint}"] += 1
        return True

    def run(self, stop: threading.Event, idle_timeout: float | None = None) -> dict:
        """Forward until `stop` is set (or nothing came for `idle_timeout` s); the counts."""
        idle = 0.0
        while not stop.is_set():
            if self.pump(0.1, stop):
                idle = 0.0
            else:
                idle += 0.1
                if idle_timeout is not None and idle >= idle_timeout:
                    break
        return dict(self.counts)

    def close(self, linger: float = 2.0) -> None:
        """Close every socket, giving queued copies `linger` seconds to leave."""
        self.input.close(linger=0)
        for _, socket, _ in self.outputs:
            socket.close(linger=int(linger * 1000))

    def __enter__(self) -> StreamTee:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
