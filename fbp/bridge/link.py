"""One lossless link across hosts: ring -> ZeroMQ -> ring.

The sending end reads records from a local ring and sends each as a multipart message:
`[b"D", header, payload]`, the header a msgpack map {seq, kind}, the payload a zero-copy
frame straight from ring memory (pyzmq `copy=False`). The record stays held (its ring slot
not freed) until the receiving end acknowledges it, so it can be sent again.

The receiving end writes records into its local ring strictly in `seq` order, and only
then acknowledges them: `[b"A", {acked, credit}]`, `acked` the highest seq written,
`credit` how many messages past it the sender may have in flight. So:
- back-pressure crosses the link: a full ring on the receiving side stops the acks, the
  sender runs out of credit, stops reading its ring, and its producer waits;
- a link cut for seconds loses nothing and duplicates nothing: ZeroMQ reconnects by
  itself; what was in flight and not acknowledged is sent again (go-back-N, after
  RESEND_AFTER seconds without progress), and the receiver drops what it already wrote.
- heartbeats (`[b"H"]`) go both ways every HEARTBEAT seconds; a peer silent for
  `peer_timeout` seconds is reported (`peer_lost`), and the link goes on trying.

End of stream crosses as a record of kind EOF; brackets are records like any other.
Nothing here is ever unpickled: headers are msgpack, payloads raw bytes.
"""

from __future__ import annotations

import collections
import time

import msgpack
import zmq

from fbp.errors import BrokenConnection, EndOfStream, RingEmpty, RingFull
from fbp.ring import RecordKind

__all__ = ["LinkReceiver", "LinkSender"]

HEARTBEAT = 0.5
RESEND_AFTER = 1.0
WINDOW = 64  # messages in flight at most (the receiver's credit)
_EOF = int(RecordKind.EOF)


def _socket(context: zmq.Context, kind: int, keys: dict | None) -> zmq.Socket:
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RECONNECT_IVL, 100)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
    socket.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
    if keys:
        for option, value in keys.items():
            socket.setsockopt(option, value)
    return socket


class LinkSender:
    """Read a ring, send every record across, keep each until it is acknowledged.

    Args:
        ring: consumer handle of the local ring.
        endpoint: the receiving end's address, e.g. "tcp://10.200.0.2:7100".
        context: ZeroMQ context.
        peer_timeout: seconds of silence after which `peer_lost` is set and reported.
        keys: socket options for CurveZMQ (zmq.CURVE_SERVERKEY, ...), or None.
        report: callable(str) for link events (peer lost / back).
    """

    def __init__(self, ring, endpoint, context=None, peer_timeout=5.0, keys=None, report=None):
        self.ring = ring
        self.socket = _socket(context or zmq.Context.instance(), zmq.DEALER, keys)
        self.socket.connect(endpoint)
        self.peer_timeout = peer_timeout
        self.report = report or (lambda text: None)
        self.socket.setsockopt(zmq.SNDHWM, 4 * WINDOW)
        self.next_seq = 0
        self.acked = -1
        self.credit = WINDOW
        self.in_flight: collections.OrderedDict[int, tuple[int, object]] = collections.OrderedDict()
        self.sent = self.resent = 0
        self.ended = False  # the local ring ended: EOF is queued
        self.peer_lost = False
        self.last_heard = self.last_progress = self.last_beat = time.monotonic()

    def done(self) -> bool:
        """True once the end of stream went across and everything was acknowledged."""
        return self.ended and not self.in_flight

    def step(self, timeout: float = 0.05) -> None:
        """Do what can be done now: read and send within the credit, handle acks, resend."""
        self._fill()
        if self.socket.poll(int(timeout * 1000), zmq.POLLIN):
            while self.socket.poll(0, zmq.POLLIN):
                self._handle(self.socket.recv_multipart(copy=False))
        now = time.monotonic()
        if now - self.last_beat >= HEARTBEAT:
            try:
                self.socket.send(b"H", zmq.NOBLOCK)
            except zmq.Again:
                pass  # cut off with a full queue: the data itself says we are alive
            self.last_beat = now
        if self.in_flight and now - self.last_progress >= RESEND_AFTER:
            self._resend()
            self.last_progress = now
        if not self.peer_lost and now - self.last_heard > self.peer_timeout:
            self.peer_lost = True
            self.report(f"link to the receiving end silent for {self.peer_timeout:g} s")

    def _fill(self) -> None:
        while not self.ended and len(self.in_flight) < self.credit:
            if not self.socket.poll(0, zmq.POLLOUT):
                return  # ZeroMQ's queue is full: read the ring again when it drains
            try:
                record = self.ring.recv(0)
            except RingEmpty:
                return
            except EndOfStream:
                self._send(self.next_seq, _EOF, b"")
                self.in_flight[self.next_seq] = (_EOF, b"")
                self.next_seq += 1
                self.ended = True
                return
            kind = int(record.kind)
            # zero-copy: ZeroMQ sends from the ring slot; the record stays held until acked
            frame = zmq.Frame(record, copy=False) if len(record) >= 65536 else bytes(record)
            self.in_flight[self.next_seq] = (kind, (frame, record))
            self._send(self.next_seq, kind, frame)
            self.next_seq += 1
            self.sent += 1

    def _send(self, seq: int, kind: int, payload) -> bool:
        header = msgpack.packb({"seq": seq, "kind": kind})
        try:
            self.socket.send_multipart([b"D", header, payload], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False  # the next resend brings it
        return True

    def _resend(self) -> None:
        for seq, (kind, held) in self.in_flight.items():
            payload = held[0] if isinstance(held, tuple) else held
            if not self._send(seq, kind, payload):
                return
            self.resent += 1

    def _handle(self, parts) -> None:
        self.last_heard = time.monotonic()
        if self.peer_lost:
            self.peer_lost = False
            self.report("link to the receiving end is back")
        if bytes(parts[0]) != b"A":
            return
        ack = msgpack.unpackb(bytes(parts[1]))
        acked, self.credit = int(ack["acked"]), int(ack["credit"])
        if acked > self.acked:
            self.acked = acked
            self.last_progress = time.monotonic()
            while self.in_flight and next(iter(self.in_flight)) <= acked:
                _, (kind, held) = self.in_flight.popitem(last=False)
                if isinstance(held, tuple):
                    held[1].release()  # the ring slot is free now

    def close(self) -> None:
        """Let go of the socket and of every record still held."""
        for _kind, held in self.in_flight.values():
            if isinstance(held, tuple):
                held[1].release()
        self.in_flight.clear()
        self.socket.close(0)


class LinkReceiver:
    """Receive records in `seq` order and write them into a local ring, then acknowledge.

    Args:
        ring: producer handle of the local ring.
        endpoint: where to bind, e.g. "tcp://0.0.0.0:7100".
        context: ZeroMQ context.
        peer_timeout: seconds of silence after which `peer_lost` is set and reported.
        keys: socket options for CurveZMQ (zmq.CURVE_SERVER, ...), or None.
        report: callable(str) for link events.
    """

    def __init__(self, ring, endpoint, context=None, peer_timeout=5.0, keys=None, report=None):
        self.ring = ring
        self.socket = _socket(context or zmq.Context.instance(), zmq.ROUTER, keys)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting sender takes over
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peer_timeout = peer_timeout
        self.report = report or (lambda text: None)
        self.expected = 0
        self.pending = None  # a message waiting for space in the ring
        self.peer: bytes | None = None
        self.received = self.duplicates = 0
        self.ended = False
        self.peer_lost = False
        self.last_heard = self.last_beat = time.monotonic()

    def step(self, timeout: float = 0.05) -> None:
        """Receive what arrived, write it in order, acknowledge, beat."""
        progressed = False
        if self.pending is not None:
            # the ring was full: wait for space here, reading nothing more meanwhile (the
            # sender runs out of credit: back-pressure)
            parts, self.pending = self.pending, None
            progressed = self._handle(parts, wait=timeout)
        elif self.socket.poll(int(timeout * 1000), zmq.POLLIN):
            while self.pending is None and self.socket.poll(0, zmq.POLLIN):
                progressed |= self._handle(self.socket.recv_multipart(copy=False))
        now = time.monotonic()
        if self.peer is not None and (progressed or now - self.last_beat >= HEARTBEAT):
            self._ack()
            self.last_beat = now
        if not self.peer_lost and now - self.last_heard > self.peer_timeout:
            self.peer_lost = True
            self.report(f"link from the sending end silent for {self.peer_timeout:g} s")

    def _handle(self, parts, wait: float = 0.0) -> bool:
        self.peer = bytes(parts[0])
        self.last_heard = time.monotonic()
        if self.peer_lost:
            self.peer_lost = False
            self.report("link from the sending end is back")
        if bytes(parts[1]) != b"D":
            return False
        header = msgpack.unpackb(bytes(parts[2]))
        seq, kind = int(header["seq"]), int(header["kind"])
        if seq < self.expected:
            self.duplicates += 1
            return True  # already written: the ack tells the sender
        if seq > self.expected or self.ended:
            return False  # a gap: the sender goes back and resends in order
        if kind == _EOF:
            self.ring.close()
            self.ended = True
        else:
            try:
                self.ring.send(parts[3].buffer, wait, kind)
            except RingFull:
                self.pending = parts  # written once there is space
                return False
            except BrokenConnection:
                self.ended = True
                return False
        self.expected += 1
        self.received += 1
        return True

    def _ack(self) -> None:
        free = WINDOW
        ack = msgpack.packb({"acked": self.expected - 1, "credit": free})
        try:
            self.socket.send_multipart([self.peer, b"A", ack], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            pass

    def close(self) -> None:
        """Close the socket (the ring is closed at the end of stream, or by the caller)."""
        self.socket.close(0)
