"""One lossless link across hosts: ring -> ZeroMQ -> ring.

The sending end reads records from a local ring and sends each as a multipart message:
`[b"D", header, payload]`, the header a msgpack map {seq, kind, size, ack_bytes}, the
payload zero-copy straight from ring memory (a libzmq constant message, see
`_ConstantSend`; pyzmq `copy=False` frames where that is not available). The record
stays held (its ring slot not freed) until the receiving end acknowledges it, so it can be
sent again. ZeroMQ queues at most two windows on the sending side (SNDHWM): while the
link is down, sends beyond that are refused (`refused` counts them; heartbeats too) and
the records simply stay in flight.

The receiving end reads the header first, reserves a slot of `size` bytes in its local
ring and receives the payload straight into it (`recv_into`: libzmq's copy out of its
receive buffer is the only one on that side). It writes records strictly in `seq` order,
and only then acknowledges them: `[b"A", {acked, credit, blocked}]`, `acked` the highest
seq written, `credit` how many messages past it the sender may have in flight, `blocked`
true while the next record is in hand but its ring is full (its payload then waits in
ZeroMQ). So:
- back-pressure crosses the link: a full ring on the receiving side stops the acks, the
  sender runs out of credit, stops reading its ring, and its producer waits; `blocked`
  tells the sender that nothing is lost, so it does not send its window again meanwhile;
- a link cut for seconds loses nothing and duplicates nothing: ZeroMQ reconnects by
  itself; what was in flight and not acknowledged is sent again (go-back-N, after
  RESEND_AFTER seconds without progress), and the receiver drops what it already wrote
  (without copying it).
- heartbeats (`[b"H"]`) go both ways every HEARTBEAT seconds; a peer silent for
  `peer_timeout` seconds is reported (`peer_lost`), and the link goes on trying (the
  receiving end counts silence only while it reads, not while its ring is full).

Acknowledgements are cumulative, so the receiver sends one per ACK_EVERY records or
`ack_bytes` payload bytes written, and one as soon as nothing more is arriving
(ACK_DELAY): a stream costs the sender one wake-up per batch instead of one per record,
and a sender that stopped sending (its ring is empty, or its credit or its ring space is
used up) is answered at once. `ack_bytes` is the sender's: a quarter of its ring, at most
ACK_BYTES, since unacknowledged records hold that ring's space.

End of stream crosses as a record of kind EOF; brackets are records like any other.
Nothing here is ever unpickled: headers are msgpack, payloads raw bytes.
"""

from __future__ import annotations

import collections
import ctypes
import platform
import time

import msgpack
import zmq

from fbp.errors import BrokenConnection, EndOfStream, RingEmpty, RingFull
from fbp.ring import RecordKind

__all__ = ["LinkReceiver", "LinkSender"]

HEARTBEAT = 0.5
RESEND_AFTER = 1.0
WINDOW = 64  # messages in flight at most (the receiver's credit)
ACK_EVERY = 16  # records written between acknowledgements while a stream flows
ACK_BYTES = 8 << 20  # ... or this many payload bytes (fewer if the sender asks: its ring is small)
ACK_DELAY = 0.0005  # seconds without a new message after which the receiver acks anyway
RECEIVE_QUEUE = 4  # messages ZeroMQ may hold on the receiving side (RCVHWM)
ZERO_COPY_MIN = 65536  # smaller payloads are copied: a zero-copy frame costs more
_EOF = int(RecordKind.EOF)
# plain ints: pyzmq's enum members cost an enum operation at every use on the hot path
_EVENTS, _RCVMORE = int(zmq.EVENTS), int(zmq.RCVMORE)
_POLLIN, _POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)
_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)
_NOTHING = bytearray()


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


def _poll(socket: zmq.Socket, events: int, timeout: float) -> bool:
    # zmq_poll directly: Socket.poll builds a Poller object on every call
    return bool(zmq.zmq_poll([(socket, events)], int(timeout * 1000)))


def _keep_freed_memory() -> None:
    """Stop glibc from giving libzmq's freed receive buffers back to the kernel.

    libzmq mallocs every large incoming message (1 MiB -> 1 MiB buffer) in its I/O
    thread; we free it after copying it into the ring. glibc's defaults serve such sizes
    with mmap, or trim them off the heap once two of them are free, so the next message
    lands on fresh pages: measured 150 000-330 000 page faults per 3 000 MiB received and
    about a third of the receiving process's CPU (benchmarks/README.md, bridge). Keeping
    up to M_MMAP_THRESHOLD-sized blocks on the heap and not trimming it makes the next
    message reuse the warm buffer the last one left. Process-wide, and bounded: what
    stays allocated is the peak of what ZeroMQ held at once (RECEIVE_QUEUE messages).
    """
    if platform.libc_ver()[0] != "glibc":
        return
    mallopt = ctypes.CDLL(None).mallopt
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: glibc's maximum (HEAP_MAX_SIZE / 2)
    mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD


class _ConstantSend:
    """Send ring memory zero-copy without pyzmq's per-frame garbage-collector round trip.

    A `zmq.Frame(record, copy=False)` makes libzmq call back when it is done with the
    memory, and pyzmq turns that call into a message to its garbage-collector thread,
    which then takes the GIL from the link to drop a reference: two wake-ups and a GIL
    hand-over per record. The link needs none of it: it holds every record until the far
    end acknowledged it, and a record the far end has is one libzmq finished sending. So
    the payload goes as a libzmq *constant* message (`zmq_msg_init_data` without a free
    function), through pyzmq's own libzmq. A resend still queued when its record is
    acknowledged may read bytes the producer has reused meanwhile; the receiver drops
    such a duplicate unread, by its seq. What must hold is that the ring stays mapped
    while libzmq may read it: LinkSender terminates its ZeroMQ context before it lets go
    of the ring.

    `available()` is False where pyzmq's libzmq cannot be reached with ctypes; the link
    then sends `zmq.Frame`s.
    """

    def __init__(self) -> None:
        from zmq.backend.cython import _zmq

        library = ctypes.CDLL(_zmq.__file__, use_errno=True)
        self._init = library.zmq_msg_init_data
        self._init.argtypes = [ctypes.c_void_p] * 5
        self._init.restype = ctypes.c_int
        self._send = library.zmq_msg_send
        self._send.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        self._send.restype = ctypes.c_int
        self._close = library.zmq_msg_close
        self._close.argtypes = [ctypes.c_void_p]
        self._close.restype = ctypes.c_int
        self._message = (ctypes.c_void_p * 8)()  # a zmq_msg_t: 64 bytes, pointer-aligned
        self._pointer = ctypes.addressof(self._message)

    @staticmethod
    def available() -> bool:
        try:
            _ConstantSend()
        except (ImportError, OSError, AttributeError):
            return False
        return True

    def __call__(self, socket: zmq.Socket, address: int, size: int, flags: int) -> bool:
        """Queue `size` bytes at `address` as the next part; False if ZeroMQ refused (EAGAIN)."""
        if self._init(self._pointer, address, size, None, None) != 0:
            raise zmq.ZMQError(ctypes.get_errno())
        if self._send(self._pointer, socket.underlying, flags) >= 0:
            return True
        errno = ctypes.get_errno()
        self._close(self._pointer)
        if errno == zmq.EAGAIN:
            return False
        raise zmq.ZMQError(errno)


_CONSTANT_SEND = _ConstantSend.available()


class LinkSender:
    """Read a ring, send every record across, keep each until it is acknowledged.

    Args:
        ring: consumer handle of the local ring.
        endpoint: the receiving end's address, e.g. "tcp://10.200.0.2:7100".
        context: ZeroMQ context, or None for one of its own (ended in close(); only then
            are payloads sent as constant messages, see _ConstantSend).
        peer_timeout: seconds of silence after which `peer_lost` is set and reported.
        keys: socket options for CurveZMQ (zmq.CURVE_SERVERKEY, ...), or None.
        report: callable(str) for link events (peer lost / back).
    """

    def __init__(self, ring, endpoint, context=None, peer_timeout=5.0, keys=None, report=None):
        self.ring = ring
        # Its own context, terminated in close() before the ring can be unmapped: libzmq
        # may still be reading records it was given as constant messages (_ConstantSend).
        self.context = context or zmq.Context()
        self._owns_context = context is None
        # only then: with a caller's context, nothing here can wait for libzmq to finish
        self._constant = _ConstantSend() if _CONSTANT_SEND and self._owns_context else None
        self.socket = _socket(self.context, zmq.DEALER, keys)
        self.socket.connect(endpoint)
        self.peer_timeout = peer_timeout
        self.report = report or (lambda text: None)
        # Room for the window and one resend of it. While the link is down the resends
        # pile up here (references into the ring, not copies); more room would only mean
        # more repeats to flush if the connection survives the cut (3 windows with
        # 4 * WINDOW: up to 192 MiB for 1 MiB records). Sends past it are refused
        # (counted in `refused`): the records stay in flight and go with the next resend.
        self.socket.setsockopt(zmq.SNDHWM, 2 * WINDOW)
        # Records in flight hold this ring's space, so the far end is asked to acknowledge
        # at least every quarter of it: a small ring is freed in time, a large one with few acks.
        self.ack_bytes = max(1, min(ACK_BYTES, ring.capacity // 4))
        self._pack = msgpack.Packer().pack
        self.next_seq = 0
        self.acked = -1
        self.credit = WINDOW
        # (seq, packed header, payload, record or None), oldest first; seqs are consecutive
        self.in_flight: collections.deque[tuple[int, bytes, object, object]] = collections.deque()
        self.sent = self.resent = 0
        self.refused = 0  # sends ZeroMQ refused because its queue was full (link down or slow)
        self.ended = False  # the local ring ended: EOF is queued
        self.peer_lost = False
        self.last_heard = self.last_progress = self.last_beat = time.monotonic()

    def done(self) -> bool:
        """True once the end of stream went across and everything was acknowledged."""
        return self.ended and not self.in_flight

    def step(self, timeout: float = 0.05) -> None:
        """Do what can be done now: read and send within the credit, handle acks, resend.

        Waits up to `timeout` seconds when nothing can be done: for an acknowledgement
        while records are in flight, else for a record in the local ring.
        """
        self._take_acks()
        if not self._fill():
            queue_full = not self.socket.get(_EVENTS) & _POLLOUT
            if self.in_flight or self.ended or queue_full:
                # an ack (or space in ZeroMQ's queue) is what lets us go on
                events = _POLLIN | (_POLLOUT if queue_full else 0)
                if _poll(self.socket, events, timeout):
                    self._take_acks()
                    self._fill()
            else:
                self._fill(wait=timeout)  # nothing in flight: wait for the producer
        now = time.monotonic()
        if now - self.last_beat >= HEARTBEAT:
            try:
                self.socket.send(b"H", _NOBLOCK)
            except zmq.Again:
                self.refused += 1  # the queue is full of data: the link is down, or slow
            self.last_beat = now
        if self.in_flight and now - self.last_progress >= RESEND_AFTER:
            self._resend()
            self.last_progress = now
        if not self.peer_lost and now - self.last_heard > self.peer_timeout:
            self.peer_lost = True
            self.report(f"link to the receiving end silent for {self.peer_timeout:g} s")

    def _fill(self, wait: float = 0.0) -> int:
        """Send records from the ring while the credit lasts; how many went."""
        sent = 0
        socket, ring, in_flight = self.socket, self.ring, self.in_flight
        while not self.ended and len(in_flight) < self.credit:
            if not socket.get(_EVENTS) & _POLLOUT:
                break  # ZeroMQ's queue is full: read the ring again when it drains
            try:
                record = ring.recv(wait)
            except RingEmpty:
                break
            except EndOfStream:
                header = self._header(self.next_seq, _EOF, 0)
                self._send(header, b"")
                in_flight.append((self.next_seq, header, b"", None))
                self.next_seq += 1
                self.ended = True
                sent += 1
                break
            wait = 0.0
            size = len(record)
            # zero-copy: ZeroMQ sends from the ring slot; the record stays held until acked
            payload: object
            if size < ZERO_COPY_MIN:
                payload = bytes(record)
            elif self._constant is not None:
                payload = (record.address, size)
            else:
                payload = zmq.Frame(record, copy=False)
            header = self._header(self.next_seq, int(record.kind), size)
            in_flight.append((self.next_seq, header, payload, record))
            self._send(header, payload)
            self.next_seq += 1
            self.sent += 1
            sent += 1
        return sent

    def _header(self, seq: int, kind: int, size: int) -> bytes:
        return self._pack({"seq": seq, "kind": kind, "size": size, "ack_bytes": self.ack_bytes})

    def _send(self, header: bytes, payload) -> bool:
        socket = self.socket
        try:
            if type(payload) is not tuple:
                socket.send_multipart([b"D", header, payload], _NOBLOCK, copy=False)
                return True
            # ZeroMQ takes the rest of a message once it took its first part
            socket.send(b"D", _NOBLOCK | _SNDMORE)
        except zmq.Again:
            self.refused += 1
            return False  # the next resend brings it
        socket.send(header, _NOBLOCK | _SNDMORE)
        return self._constant(socket, payload[0], payload[1], _NOBLOCK)

    def _resend(self) -> None:
        for _seq, header, payload, _record in self.in_flight:
            if not self._send(header, payload):
                return
            self.resent += 1

    def _take_acks(self) -> None:
        """Read every message waiting (acks, heartbeats); free what was acknowledged."""
        acked = self.acked
        heard = blocked = False
        while self.socket.get(_EVENTS) & _POLLIN:
            parts = self.socket.recv_multipart(_NOBLOCK)
            heard = True
            if parts[0] == b"A":
                ack = msgpack.unpackb(parts[1])
                acked = max(acked, int(ack["acked"]))
                self.credit = int(ack["credit"])
                blocked = blocked or bool(ack.get("blocked"))
        if not heard:
            return
        self.last_heard = time.monotonic()
        if self.peer_lost:
            self.peer_lost = False
            self.report("link to the receiving end is back")
        if blocked:
            # the far end holds the next record and waits for ring space: slow, not lost
            self.last_progress = self.last_heard
        if acked > self.acked:
            self.acked = acked
            self.last_progress = self.last_heard
            while self.in_flight and self.in_flight[0][0] <= acked:
                record = self.in_flight.popleft()[3]
                if record is not None:
                    record.release()  # the ring slot is free now

    def close(self) -> None:
        """Let go of the socket, then of every record still held.

        In that order: a record freed while libzmq still sends it could reach the far end
        with bytes the producer wrote over it.
        """
        self.socket.close(0)
        if self._owns_context:
            self.context.term()  # libzmq is done with the ring's memory once this returns
        for _seq, _header, _payload, record in self.in_flight:
            if record is not None:
                try:
                    record.release()
                except BufferError:
                    pass  # a zmq.Frame still exports it: freed when pyzmq drops the frame
        self.in_flight.clear()


class LinkReceiver:
    """Receive records in `seq` order and write them into a local ring, then acknowledge.

    Each payload is received straight into a reserved ring slot (`recv_into`), so the
    only copy on this side is libzmq's, out of its receive buffer into the ring.

    Args:
        ring: producer handle of the local ring.
        endpoint: where to bind, e.g. "tcp://0.0.0.0:7100".
        context: ZeroMQ context.
        peer_timeout: seconds of silence after which `peer_lost` is set and reported.
        keys: socket options for CurveZMQ (zmq.CURVE_SERVER, ...), or None.
        report: callable(str) for link events.
        keep_freed_memory: tune this process's glibc malloc so libzmq's receive buffers
            are reused instead of page-faulted in anew for every large message (see
            `_keep_freed_memory`); process-wide, so False where the process is shared.
    """

    def __init__(
        self,
        ring,
        endpoint,
        context=None,
        peer_timeout=5.0,
        keys=None,
        report=None,
        *,
        keep_freed_memory=True,
    ):
        if keep_freed_memory:
            _keep_freed_memory()
        self.ring = ring
        self.socket = _socket(context or zmq.Context.instance(), zmq.ROUTER, keys)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting sender takes over
        # What is in flight waits in the TCP buffers and on the sending side (as
        # references into its ring), not here as malloc'd copies: bounded memory, and the
        # few buffers in use stay warm in the cache.
        self.socket.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peer_timeout = peer_timeout
        self.report = report or (lambda text: None)
        self.expected = 0
        # (kind, size) of the record whose header was read but whose payload is still in
        # ZeroMQ, waiting for space in the ring
        self.pending: tuple[int, int] | None = None
        self.peer: bytes | None = None
        self.received = self.duplicates = 0
        self.unacked = self.unacked_bytes = 0  # written (or dropped) since the last ack
        self.ack_bytes = ACK_BYTES  # the sender says how much of its ring it can spare
        self.ended = False
        self.peer_lost = False
        self.last_heard = self.last_beat = time.monotonic()

    def step(self, timeout: float = 0.05) -> None:
        """Receive what arrived, write it in order, acknowledge, beat.

        Raises:
            ValueError: the sending end speaks another version of the link (a header
                without seq, kind, size and ack_bytes, or a payload of another size).
            RecordTooLarge: a record can never fit in the local ring.
        """
        if self.pending is not None:
            # the ring was full: wait for space here, reading nothing more meanwhile (the
            # sender runs out of credit: back-pressure)
            self._write_pending(wait=timeout)
        elif self._waiting() or _poll(self.socket, _POLLIN, timeout):
            deadline = time.monotonic() + timeout
            while self.pending is None and time.monotonic() < deadline:
                while self.pending is None and self._waiting():
                    self._receive()
                    if self.unacked >= ACK_EVERY or self.unacked_bytes >= self.ack_bytes:
                        self._ack()
                # nothing more queued: wait a moment for the next message of the stream
                # before acknowledging, so a flowing stream gets one ack per batch
                if not self.unacked or not _poll(self.socket, _POLLIN, ACK_DELAY):
                    break
        now = time.monotonic()
        blocked = self.pending is not None  # said at every step: keeps the sender from resending
        if self.peer is not None and (self.unacked or blocked or now - self.last_beat >= HEARTBEAT):
            self._ack()
            self.last_beat = now
        if blocked:
            # nothing is read while the next record waits for ring space, heartbeats
            # neither: silence counts only while we listen
            self.last_heard = now
        elif not self.peer_lost and now - self.last_heard > self.peer_timeout:
            self.peer_lost = True
            self.report(f"link from the sending end silent for {self.peer_timeout:g} s")

    def _waiting(self) -> bool:
        return bool(self.socket.get(_EVENTS) & _POLLIN)

    def _receive(self) -> None:
        """Read one message part by part; start writing it if it is the next record.

        ZeroMQ delivers a multipart message whole or not at all, so once its first part
        is here the others are too. The payload part is left in ZeroMQ until its ring slot
        is reserved (`pending` while the ring is full).
        """
        socket = self.socket
        self.peer = socket.recv(_NOBLOCK)  # the ROUTER's routing id of the sender
        self.last_heard = time.monotonic()
        if self.peer_lost:
            self.peer_lost = False
            self.report("link from the sending end is back")
        if not socket.get(_RCVMORE) or socket.recv(_NOBLOCK) != b"D":
            self._discard_rest()  # a heartbeat
            return
        header = msgpack.unpackb(socket.recv(_NOBLOCK))
        try:
            seq, kind, size = int(header["seq"]), int(header["kind"]), int(header["size"])
            self.ack_bytes = max(1, min(ACK_BYTES, int(header["ack_bytes"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"bridge link: a record header must hold seq, kind, size and ack_bytes, not "
                f"{header!r}; both ends must run the same fbp version"
            ) from exc
        if not socket.get(_RCVMORE):
            raise ValueError(
                "bridge link: a data message must be [b'D', header, payload], this one has "
                "no payload; both ends must run the same fbp version"
            )
        if seq < self.expected:
            self.duplicates += 1
            self.unacked += 1  # already written: the ack tells the sender
            self._discard_rest()
            return
        if seq > self.expected or self.ended:
            self._discard_rest()
            return  # a gap: the sender goes back and resends in order
        if kind == _EOF:
            self._discard_rest()
            self.ring.close()
            self.ended = True
            self._written(0)
            return
        self.pending = (kind, size)
        self._write_pending()

    def _write_pending(self, wait: float = 0.0) -> None:
        """Receive the pending payload into a ring slot, once the ring has space for it."""
        kind, size = self.pending
        try:
            slot = self.ring.reserve(size, wait, kind)
        except RingFull:
            return  # still pending: tried again at the next step
        except BrokenConnection:
            self.pending = None
            self._discard_rest()
            self.ended = True
            return
        self.pending = None
        try:
            received = self.socket.recv_into(slot, flags=_NOBLOCK)
        except BaseException:
            slot.abandon()
            raise
        if received != size:
            slot.abandon()
            raise ValueError(
                f"bridge link: a record's header said {size} bytes but its payload has "
                f"{received}; both ends must run the same fbp version"
            )
        slot.commit()
        self._written(size)

    def _written(self, size: int) -> None:
        self.expected += 1
        self.received += 1
        self.unacked += 1
        self.unacked_bytes += size

    def _discard_rest(self) -> None:
        # receiving into an empty buffer drops a part without copying it
        while self.socket.get(_RCVMORE):
            self.socket.recv_into(_NOTHING, flags=_NOBLOCK)

    def _ack(self) -> None:
        self.unacked = self.unacked_bytes = 0
        ack = {"acked": self.expected - 1, "credit": WINDOW, "blocked": self.pending is not None}
        ack = msgpack.packb(ack)
        try:
            self.socket.send_multipart([self.peer, b"A", ack], _NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            pass

    def close(self) -> None:
        """Close the socket (the ring is closed at the end of stream, or by the caller)."""
        self.socket.close(0)
