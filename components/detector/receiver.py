"""Receiving a DECTRIS stream (V1 or V2) from a ZeroMQ PULL socket.

A detector binds a PUSH socket (V1 port 9999, V2 port 31001) and clients connect with PULL.
The receiver decodes each message, repairs series brackets (`SeriesTracker`) and never
raises on a bad message: it counts it, keeps the reason, and moves on.
"""

from __future__ import annotations

import collections
import logging

import zmq

from . import stream_v1, stream_v2
from .messages import MalformedMessage
from .series import SeriesTracker

__all__ = ["PROTOCOLS", "StreamReceiver", "detect_protocol"]

PROTOCOLS = ("auto", "v1", "v2")
log = logging.getLogger(__name__)


def detect_protocol(parts: list[bytes]) -> str:
    """ "v1" for JSON multipart messages, "v2" for single CBOR maps."""
    head = bytes(parts[0][:1]) if parts and len(parts[0]) else b""
    return "v1" if head == b"{" else "v2"


class StreamReceiver:
    """A PULL socket and a decoder for one detector stream.

    Args:
        endpoint: where the detector's PUSH socket is, e.g. "tcp://dcu:31001".
        protocol: "v1", "v2", or "auto" (per message: JSON first part means V1).
        bind: bind instead of connect (when the sender connects to us).
        context: ZeroMQ context (default: the process's shared instance).
        receive_hwm: messages queued in this socket at most (back-pressure to the sender).

    Attributes:
        tracker: series bookkeeping and its counts.
        counts: messages, bytes, malformed.
        errors: the reasons of the last 20 malformed messages.

    Raises:
        ValueError: unknown protocol.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        protocol: str = "auto",
        bind: bool = False,
        context: zmq.Context | None = None,
        receive_hwm: int = 1000,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.protocol = protocol
        self.endpoint = endpoint
        self.socket = (context or zmq.Context.instance()).socket(zmq.PULL)
        self.socket.setsockopt(zmq.RCVHWM, receive_hwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        (self.socket.bind if bind else self.socket.connect)(endpoint)
        self.tracker = SeriesTracker()
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: collections.deque[str] = collections.deque(maxlen=20)

    def receive(self, timeout: float | None = None) -> list:
        """Wait up to `timeout` seconds (None: forever) for one message; its events.

        Returns:
            SeriesStart / Image / SeriesEnd events (empty after a timeout or a bad message).
        """
        wait_ms = -1 if timeout is None else max(0, int(timeout * 1000))
        if not self.socket.poll(wait_ms, zmq.POLLIN):
            return []
        parts = self.socket.recv_multipart()
        return self.handle(parts)

    def handle(self, parts: list[bytes]) -> list:
        """Decode one received message (a list of parts) into events; count bad ones."""
        self.counts["messages"] += 1
        self.counts["bytes"] += sum(len(p) for p in parts)
        protocol = detect_protocol(parts) if self.protocol == "auto" else self.protocol
        try:
            if protocol == "v1":
                message = stream_v1.decode(parts)
            else:
                if len(parts) != 1:
                    raise MalformedMessage(f"a Stream V2 message has 1 part, got {len(parts)}")
                message = stream_v2.decode(parts[0])
        except MalformedMessage as exc:
            self.counts["malformed"] += 1
            reason = f"message {self.counts['messages']}: {exc}"
            self.errors.append(reason)
            log.warning("skipped malformed stream message from %s: %s", self.endpoint, reason)
            return []
        return self.tracker.feed(message)

    def close(self) -> list:
        """Close the socket; returns the events that end a series left open."""
        self.socket.close(linger=0)
        return self.tracker.close()

    def stats(self) -> dict:
        """Counts of messages, bytes, malformed messages and series bookkeeping."""
        return {**self.counts, **self.tracker.counts, "last_errors": list(self.errors)}

    def __enter__(self) -> StreamReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
