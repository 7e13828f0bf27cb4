"""The IPC peers of ring_peers.py: one class per transport, plus a tiny busy-polling ring.

Each peer has `open(payload, ctx)` and `close(spec)` (in the parent: create and remove the
channel; `spec` is what the children get), a `Sender` (`send(message)`, `end()`) and a
`Receiver` (`run(on_message)` until the end marker). ring_peers.py describes the settings
each peer runs with.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import secrets
import tempfile

import numpy as np

PAGE = 4096
SIZES = (64, 4096, 1 << 20, 8 << 20)
END_OF_RUN = b""  # zero-length message: the producer is done (all payloads are >= 64 B)


def size_label(nbytes: int) -> str:
    if nbytes >= 1 << 20:
        return f"{nbytes >> 20} MiB"
    if nbytes >= 1 << 10:
        return f"{nbytes >> 10} KiB"
    return f"{nbytes} B"


def touch_small(buf) -> int:
    """Read the first byte (messages up to one page)."""
    return memoryview(buf)[0]


def touch_pages(buf) -> int:
    """Read one byte per 4 KiB page, so a zero-copy receiver pays for the memory it gets."""
    return int(np.frombuffer(buf, np.uint8)[::PAGE].sum())


def toucher(payload: int):
    """The consumer's per-message work: the same for every peer."""
    return touch_small if payload <= PAGE else touch_pages


touch = touch_small  # ping-pong messages are 64 B


def buffer_bytes(payload: int) -> int:
    """Bytes of buffering every peer gets: at least 1 MiB, at least four messages."""
    return max(1 << 20, 4 * payload)


def buffer_depth(payload: int) -> int:
    """The same buffering expressed in messages, for peers that count messages."""
    return max(2, min(1024, buffer_bytes(payload) // payload))


def make_message(payload: int):
    """Small messages as bytes (what Python code sends), large ones as a numpy array."""
    array = np.full(payload, 7, np.uint8)
    return array.tobytes() if payload <= PAGE else array


def check_every(payload: int) -> int:
    """How many messages between clock checks, so the check costs nothing measurable."""
    return max(1, min(256, (1 << 20) // payload))


# ---------------------------------------------------------------------------------------
# peers: each has open (parent), sender/receiver (child) and close (parent)
# ---------------------------------------------------------------------------------------


class RingPeer:
    name = "ring"

    @staticmethod
    def open(payload: int, ctx) -> dict:
        from fbp.ring import Ring

        owner = Ring.create(buffer_bytes(payload) + 4096)
        return {"ring": owner.name, "_owner": owner}

    @staticmethod
    def close(spec: dict) -> None:
        owner = spec["_owner"]
        owner.close()
        owner.unlink()

    class Sender:
        def __init__(self, spec: dict):
            from fbp.ring import Ring

            self.ring = Ring.attach(spec["ring"], "producer")
            self.send = self.ring.send

        def end(self) -> None:
            self.ring.close()

    class Receiver:
        def __init__(self, spec: dict):
            from fbp.errors import EndOfStream
            from fbp.ring import Ring

            self.ring = Ring.attach(spec["ring"], "consumer")
            self.end_of_stream = EndOfStream

        def run(self, on_message) -> None:
            recv = self.ring.recv
            try:
                while True:
                    on_message(recv())
            except self.end_of_stream:
                pass


class QueuePeer:
    name = "mp.Queue"

    @staticmethod
    def open(payload: int, ctx) -> dict:
        return {"queue": ctx.Queue(buffer_depth(payload))}

    @staticmethod
    def close(spec: dict) -> None:
        spec["queue"].close()

    class Sender:
        def __init__(self, spec: dict):
            self.queue = spec["queue"]
            self.send = self.queue.put

        def end(self) -> None:
            self.queue.put(END_OF_RUN)
            self.queue.close()
            self.queue.join_thread()

    class Receiver:
        def __init__(self, spec: dict):
            self.queue = spec["queue"]

        def run(self, on_message) -> None:
            get = self.queue.get
            while len(message := get()):
                on_message(message)


class ZmqPeer:
    name = "zmq"

    @staticmethod
    def open(payload: int, ctx) -> dict:
        path = os.path.join(
            tempfile.gettempdir(), f"fbp-bench-{os.getpid()}-{secrets.token_hex(4)}"
        )
        # "done": the consumer got the end marker. libzmq may drop what is still in the
        # kernel's socket buffer when a PUSH socket with a peer's RCVHWM set closes, linger
        # or not (libzmq#4660), so the producer stays until the consumer says so.
        return {
            "address": f"ipc://{path}",
            "path": path,
            "depth": buffer_depth(payload),
            "done": ctx.Event(),
        }

    @staticmethod
    def close(spec: dict) -> None:
        if os.path.exists(spec["path"]):
            os.unlink(spec["path"])

    class Sender:
        def __init__(self, spec: dict):
            import zmq

            self.context = zmq.Context()
            self.socket = self.context.socket(zmq.PUSH)
            self.socket.sndhwm = spec["depth"]
            self.socket.linger = -1
            self.socket.bind(spec["address"])
            self.done = spec["done"]
            socket = self.socket

            def send(message):
                socket.send(message, copy=False)

            self.send = send

        def end(self) -> None:
            self.socket.send(END_OF_RUN)
            self.done.wait(60)
            self.socket.close()
            self.context.term()

    class Receiver:
        def __init__(self, spec: dict):
            import zmq

            self.context = zmq.Context()
            self.socket = self.context.socket(zmq.PULL)
            self.socket.rcvhwm = spec["depth"]
            self.socket.connect(spec["address"])
            self.done = spec["done"]

        def run(self, on_message) -> None:
            recv = self.socket.recv
            while True:
                # Frames for large messages (zero-copy); plain bytes are faster for small ones.
                frame = recv(copy=False)
                if len(frame) == 0:
                    self.done.set()
                    break
                on_message(frame.buffer if len(frame) > 65536 else frame.bytes)
            self.socket.close()
            self.context.term()


def _identity(value):
    return value


def _byte_view(view: memoryview) -> memoryview:
    return view.cast("B")  # faster-fifo hands out "<B" views, which cannot be indexed


def _as_bytes(message):
    # faster-fifo takes bytes only: an array costs one extra copy (pickle would too).
    return message if isinstance(message, bytes) else memoryview(message).tobytes()


class FasterFifoPeer:
    name = "faster-fifo"

    @staticmethod
    def open(payload: int, ctx) -> dict:
        import faster_fifo
        import faster_fifo_reduction  # noqa: F401  (lets spawn children receive the queue)

        queue = faster_fifo.Queue(
            max_size_bytes=buffer_bytes(payload) + 4096, loads=_byte_view, dumps=_as_bytes
        )
        return {"queue": queue, "payload": payload}

    @staticmethod
    def close(spec: dict) -> None:
        spec["queue"].close()

    class Sender:
        def __init__(self, spec: dict):
            import faster_fifo_reduction  # noqa: F401

            self.queue = spec["queue"]
            self.send = self.queue.put
            self.send_many = self.queue.put_many

        def end(self) -> None:
            self.queue.put(END_OF_RUN)

    class Receiver:
        def __init__(self, spec: dict):
            import faster_fifo_reduction  # noqa: F401

            self.queue = spec["queue"]
            # The receive buffer must hold the largest message.
            self.queue.reallocate_msg_buffer(spec["payload"] + 4096)

        def run(self, on_message) -> None:
            get = self.queue.get
            while len(message := get(timeout=1e9)):
                on_message(message)


class IceoryxPeer:
    name = "iceoryx2"

    @staticmethod
    def open(payload: int, ctx) -> dict:
        return {
            "service": f"fbp-bench/{os.getpid()}/{secrets.token_hex(4)}",
            "payload": payload,
            "depth": buffer_depth(payload),
            "ready": ctx.Event(),
        }

    @staticmethod
    def close(spec: dict) -> None:
        pass

    @staticmethod
    def service(spec: dict):
        import iceoryx2 as iox2

        iox2.set_log_level(iox2.LogLevel.Error)
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        service = (
            node.service_builder(iox2.ServiceName.new(spec["service"]))
            .publish_subscribe(iox2.Slice[ctypes.c_uint8])
            .enable_safe_overflow(False)  # lossless: the publisher waits instead
            .subscriber_max_buffer_size(spec["depth"])
            .history_size(0)
            .open_or_create()
        )
        return iox2, node, service

    class Sender:
        def __init__(self, spec: dict):
            iox2, self.node, service = IceoryxPeer.service(spec)
            self.publisher = (
                service.publisher_builder()
                .initial_max_slice_len(spec["payload"])
                .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
                .create()
            )
            # Samples published before the subscriber connects are lost (no history).
            spec["ready"].wait()
            self.publisher.update_connections()
            publisher = self.publisher

            def send(message):
                source = np.frombuffer(message, np.uint8)
                sample = publisher.loan_slice_uninit(source.size)
                ctypes.memmove(sample.payload_ptr, source.ctypes.data, source.size)
                sample.assume_init().send()

            self.send = send

        def end(self) -> None:
            sample = self.publisher.loan_slice_uninit(1)
            sample.assume_init().send()  # a one-byte sample marks the end
            self.publisher.delete()

    class Receiver:
        def __init__(self, spec: dict):
            _, self.node, service = IceoryxPeer.service(spec)
            self.subscriber = service.subscriber_builder().create()
            spec["ready"].set()

        def run(self, on_message) -> None:
            receive = self.subscriber.receive
            while True:
                sample = receive()
                if sample is None:
                    continue  # no blocking receive in the Python binding: poll
                view = sample.payload().as_memory_view().cast("B")
                if view.nbytes == 1:
                    sample.delete()
                    break
                on_message(view)
                del view
                sample.delete()
            self.subscriber.delete()


PEERS = {peer.name: peer for peer in (RingPeer, QueuePeer, ZmqPeer, FasterFifoPeer, IceoryxPeer)}


class SpinRing:
    """A tiny busy-polling SPSC ring in a shared file mapping: the latency reference.

    Per direction one page: the head counter at byte 0, the tail at byte 64 (own cache
    line), then 32 slots of 8-byte length + 120-byte payload. Pure Python with plain
    stores: correct on x86-64 only, whose total store order keeps the payload store ahead
    of the head store and the slot reads ahead of the tail store (checked at startup).
    """

    SLOTS = 32
    SLOT_BYTES = 128
    DIRECTION_BYTES = 128 + SLOTS * SLOT_BYTES

    @staticmethod
    def open(ctx) -> dict:
        path = f"/dev/shm/fbp-bench-spin-{os.getpid()}-{secrets.token_hex(4)}"
        with open(path, "wb") as file:
            file.truncate(2 * SpinRing.DIRECTION_BYTES)
        return {"path": path}

    @staticmethod
    def close(spec: dict) -> None:
        os.unlink(spec["path"])

    def __init__(self, spec: dict, role: str):
        with open(spec["path"], "r+b") as file:
            self.map = mmap.mmap(file.fileno(), 2 * SpinRing.DIRECTION_BYTES)
        whole = memoryview(self.map)
        size = SpinRing.DIRECTION_BYTES
        forward, backward = whole[:size], whole[size:]
        self.out = forward if role == "ping" else backward
        self.inc = backward if role == "ping" else forward
        self.out_counters = self.out[:128].cast("q")
        self.inc_counters = self.inc[:128].cast("q")
        self.out_slots = self.out[128:]
        self.inc_slots = self.inc[128:]
        self.out_lengths = self.out[128:].cast("q")
        self.inc_lengths = self.inc[128:].cast("q")

    @staticmethod
    def endpoints(spec: dict, role: str):
        ring = SpinRing(spec, role)
        return ring.send, ring.receive, ring

    def send(self, message) -> None:
        counters = self.out_counters
        head = counters[0]
        while head - counters[8] >= SpinRing.SLOTS:  # full: spin on the tail
            pass
        slot = head % SpinRing.SLOTS
        offset = slot * SpinRing.SLOT_BYTES
        self.out_slots[offset + 8 : offset + 8 + len(message)] = message
        self.out_lengths[slot * (SpinRing.SLOT_BYTES // 8)] = len(message)
        counters[0] = head + 1

    def receive_length(self) -> int:
        counters = self.inc_counters
        tail = counters[8]
        while counters[0] == tail:  # empty: spin on the head
            pass
        slot = tail % SpinRing.SLOTS
        offset = slot * SpinRing.SLOT_BYTES
        length = self.inc_lengths[slot * (SpinRing.SLOT_BYTES // 8)]
        if length:
            touch(self.inc_slots[offset + 8 : offset + 8 + length])
        counters[8] = tail + 1
        return length

    def receive(self) -> None:
        self.receive_length()
