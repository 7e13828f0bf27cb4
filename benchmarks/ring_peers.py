"""fbp's shared-memory ring against the usual IPC peers, all measured in one run.

Usage:
    python benchmarks/ring_peers.py            # full run, a few minutes
    python benchmarks/ring_peers.py --quick    # smoke run, well under a minute
    python benchmarks/ring_peers.py --json results.json --repeats 5

Every measurement runs in fresh child processes started with `spawn` (producer and consumer,
or pinger and ponger), for a fixed duration, repeated; the best repeat goes into the ratio
table and the median is printed next to it in the raw table, because the machine is shared
and noisy. Peers, each in its fastest documented mode:

- ring: `fbp.ring.Ring` send/recv (copy once in, zero-copy view out), and the batch API
  `send_many`/`recv_many` at 64 B;
- mp.Queue: `multiprocessing.Queue(maxsize)` (pickles; that is what it does);
- zmq: pyzmq PUSH/PULL over `ipc://`, `send(copy=False)` (pyzmq itself copies below its
  64 KiB copy threshold), `recv(copy=False)` for large frames and `copy=True` for small;
- faster-fifo: `faster_fifo.Queue` with bytes serialisers (no pickle; an array is turned
  into bytes first, one extra copy, because `put` takes bytes only), and its `put_many`/`get_many` batch API at 64 B;
- iceoryx2: publish-subscribe on a `Slice[c_uint8]` service, publisher loans a sample, copies
  the frame in, sends; `RetryUntilDelivered` back-pressure, so nothing is dropped; its
  Python subscriber has no blocking receive, so it busy-polls `receive()`;
- memcpy: a single-thread numpy copy of the same size (the ceiling for a copy-once design).

Throughput: the consumer touches one byte per 4 KiB page of every message (one byte for
messages up to a page), so zero-copy peers cannot skip the memory. Latency: 64 B ping-pong
round trips, p50/p99. Our ping-pong is also compared with busy-polling: the same ring polled
with `recv(timeout=0)` and a tiny pure-Python spin ring in shared memory. Finally the CPU
an idle ring waiter burns (consumer on an empty ring, producer on a full one).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import secrets
import statistics
import sys
import tempfile
import time
import traceback

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
        path = os.path.join(tempfile.gettempdir(), f"fbp-bench-{os.getpid()}-{secrets.token_hex(4)}")
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


# ---------------------------------------------------------------------------------------
# child process bodies; each reports one JSON object through its pipe (no pickle)
# ---------------------------------------------------------------------------------------


def child(function, conn, *args) -> None:
    try:
        result = function(*args)
    except BaseException as error:  # the parent prints it; a benchmark must not hang
        result = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
    conn.send_bytes(json.dumps(result).encode())
    conn.close()


def produce(peer_name: str, spec: dict, payload: int, duration: float) -> dict:
    sender = PEERS[peer_name].Sender(spec)
    message = make_message(payload)
    send = sender.send
    every = check_every(payload)
    sent = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        for _ in range(every):
            send(message)
        sent += every
    sender.end()
    return {"sent": sent}


def consume(peer_name: str, spec: dict, payload: int) -> dict:
    receiver = PEERS[peer_name].Receiver(spec)
    touch = toucher(payload)
    count = 0
    first = last = 0.0
    perf_counter = time.perf_counter

    def on_message(message) -> None:
        nonlocal count, first, last
        touch(message)
        if count == 0:
            first = perf_counter()  # the clock starts with the first message
        count += 1
        last = perf_counter()

    receiver.run(on_message)
    return {"count": count, "seconds": last - first}


def produce_batches(peer_name: str, spec: dict, payload: int, duration: float, batch: int) -> dict:
    sender = PEERS[peer_name].Sender(spec)
    messages = [make_message(payload) for _ in range(batch)]
    send_many = sender.ring.send_many if peer_name == "ring" else sender.send_many
    sent = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        send_many(messages)
        sent += batch
    sender.end()
    return {"sent": sent}


def consume_batches(peer_name: str, spec: dict, batch: int, touching: bool) -> dict:
    receiver = PEERS[peer_name].Receiver(spec)
    count = 0
    first = last = 0.0
    perf_counter = time.perf_counter
    if peer_name == "ring":
        from fbp.errors import EndOfStream

        recv_many = receiver.ring.recv_many
        try:
            while True:
                records = recv_many(batch)
                if count == 0:
                    first = perf_counter()
                if touching:
                    for record in records:
                        memoryview(record)[0]
                count += len(records)
                del records
                last = perf_counter()
        except EndOfStream:
            pass
    else:
        get_many = receiver.queue.get_many
        done = False
        while not done:
            messages = get_many(timeout=1e9, max_messages_to_get=batch)
            if count == 0:
                first = perf_counter()
            for message in messages:
                if not len(message):
                    done = True
                    break
                if touching:
                    message[0]
                count += 1
            last = perf_counter()
    return {"count": count, "seconds": last - first}


def memcpy(payload: int, duration: float) -> dict:
    source = np.full(payload, 7, np.uint8)
    target = np.empty_like(source)
    copyto = np.copyto
    every = check_every(payload)
    count = 0
    start = time.perf_counter()
    deadline = start + duration
    while time.perf_counter() < deadline:
        for _ in range(every):
            copyto(target, source)
        count += every
    return {"count": count, "seconds": time.perf_counter() - start}


# ping-pong: the pinger times round trips, the ponger echoes ----------------------------


def pingpong_endpoints(variant: str, spec: dict, role: str):
    """(send, receive) callables for one side of a ping-pong pair."""
    if variant in ("ring", "ring busy-poll"):
        from fbp.errors import RingEmpty
        from fbp.ring import Ring

        outgoing = Ring.attach(spec["forward" if role == "ping" else "backward"], "producer")
        incoming = Ring.attach(spec["backward" if role == "ping" else "forward"], "consumer")
        send = outgoing.send
        recv = incoming.recv
        if variant == "ring":

            def receive():
                with recv() as record:
                    touch(record)

        else:

            def receive():
                while True:
                    try:
                        record = recv(0)  # try once, never sleep: the busy-polling reference
                    except RingEmpty:
                        continue
                    with record:
                        touch(record)
                    return

        return send, receive, (outgoing, incoming)
    if variant == "spin shm":
        return SpinRing.endpoints(spec, role)
    peer = PEERS[variant]
    forward = dict(spec["forward"])
    backward = dict(spec["backward"])
    if variant == "iceoryx2":
        # Each side subscribes first, then announces it, then publishes.
        receiver = peer.Receiver(backward if role == "ping" else forward)
        sender = peer.Sender(forward if role == "ping" else backward)
    elif role == "ping":
        sender, receiver = peer.Sender(forward), peer.Receiver(backward)
    else:
        receiver, sender = peer.Receiver(forward), peer.Sender(backward)
    send = sender.send
    if variant == "zmq":
        recv = receiver.socket.recv

        def receive():
            touch(recv())

    elif variant == "iceoryx2":
        poll = receiver.subscriber.receive

        def receive():
            while (sample := poll()) is None:
                pass
            view = sample.payload().as_memory_view().cast("B")
            touch(view)
            del view
            sample.delete()

    else:
        get = receiver.queue.get

        def receive():
            touch(get())

    return send, receive, (sender, receiver)


def ping(variant: str, spec: dict, duration: float, max_trips: int) -> dict:
    send, receive, keep = pingpong_endpoints(variant, spec, "ping")
    message = make_message(64)
    perf_counter_ns = time.perf_counter_ns
    for _ in range(min(2000, max_trips // 10)):  # warm-up: caches, spin budgets, lazy setup
        send(message)
        receive()
    trips = []
    append = trips.append
    deadline = time.perf_counter() + duration
    while len(trips) < max_trips:
        start = perf_counter_ns()
        send(message)
        receive()
        append(perf_counter_ns() - start)
        if len(trips) % 256 == 0 and time.perf_counter() > deadline:
            break
    if variant in PEERS and variant != "ring":
        keep[0].end()
    else:
        send(END_OF_RUN)
    trips.sort()
    return {
        "trips": len(trips),
        "p50_us": trips[len(trips) // 2] / 1e3,
        "p99_us": trips[int(len(trips) * 0.99)] / 1e3,
    }


def pong(variant: str, spec: dict) -> dict:
    send, _, keep = pingpong_endpoints(variant, spec, "pong")
    message = make_message(64)
    # The ponger's receive must see the end marker, so it reads lengths itself.
    trips = 0
    receive_length = pong_receiver(variant, keep, spec)
    while receive_length() > 0:
        send(message)
        trips += 1
    return {"trips": trips}


def pong_receiver(variant: str, keep, spec: dict):
    if variant in ("ring", "ring busy-poll"):
        from fbp.errors import RingEmpty

        recv = keep[1].recv
        busy = variant == "ring busy-poll"

        def receive_length():
            while True:
                try:
                    record = recv(0 if busy else None)
                except RingEmpty:
                    continue
                with record:
                    if not len(record):
                        return 0
                    touch(record)
                    return len(record)

        return receive_length
    if variant == "spin shm":
        return keep.receive_length
    receiver = keep[1]
    if variant == "zmq":
        recv = receiver.socket.recv

        def receive_length():
            message = recv()
            if not len(message):
                receiver.done.set()
                return 0
            touch(message)
            return len(message)

        return receive_length
    if variant == "iceoryx2":
        poll = receiver.subscriber.receive

        def receive_length():
            while (sample := poll()) is None:
                pass
            view = sample.payload().as_memory_view().cast("B")
            length = view.nbytes if view.nbytes > 1 else 0
            if length:
                touch(view)
            del view
            sample.delete()
            return length

        return receive_length
    get = receiver.queue.get

    def receive_length():
        message = get()
        if not len(message):
            return 0
        touch(message)
        return len(message)

    return receive_length


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


def idle_waiter(name: str, role: str, seconds: float) -> dict:
    """CPU time of one side blocked on an idle ring (empty for a consumer, full for a producer)."""
    from fbp.errors import RingEmpty, RingFull
    from fbp.ring import Ring

    ring = Ring.attach(name, role)
    if role == "producer":
        while True:  # fill the ring first, then the wait is on a full ring
            try:
                ring.send(b"x" * 1024, timeout=0)
            except RingFull:
                break
    # The waiting thread's own CPU time: the process may have other threads (numpy's
    # OpenBLAS pool spins for a while after import) that are not the ring's doing.
    threads = len(os.listdir("/proc/self/task"))
    before = resource.getrusage(resource.RUSAGE_SELF)
    thread_before = time.thread_time()
    start = time.perf_counter()
    try:
        if role == "consumer":
            ring.recv(timeout=seconds)
        else:
            ring.send(b"x" * 1024, timeout=seconds)
    except (RingEmpty, RingFull):
        pass
    wall = time.perf_counter() - start
    cpu = time.thread_time() - thread_before
    after = resource.getrusage(resource.RUSAGE_SELF)
    process_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ring.close()
    return {
        "wall": wall,
        "cpu": cpu,
        "percent": 100 * cpu / wall,
        "process_cpu": process_cpu,
        "threads": threads,
        "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
        "involuntary_switches": after.ru_nivcsw - before.ru_nivcsw,
    }


# ---------------------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------------------


def run_children(jobs: list[tuple], timeout: float) -> list[dict]:
    """Start one spawned child per (function, *args), wait for all, return their results."""
    ctx = multiprocessing.get_context("spawn")
    started = []
    for function, *args in jobs:
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=child, args=(function, writer, *args), daemon=True)
        process.start()
        writer.close()
        started.append((process, reader))
    results: list[dict | None] = [None] * len(started)
    waiting = {reader: index for index, (_, reader) in enumerate(started)}
    deadline = time.monotonic() + timeout
    while waiting:
        left = deadline - time.monotonic()
        ready = multiprocessing.connection.wait(list(waiting), timeout=max(0.0, left))
        if not ready:
            for index in waiting.values():
                results[index] = {"error": f"timed out after {timeout:.0f} s"}
            break
        for reader in ready:
            index = waiting.pop(reader)
            try:
                results[index] = json.loads(reader.recv_bytes())
            except EOFError:
                results[index] = {"error": f"child exited with status {started[index][0].exitcode}"}
            if "error" in results[index]:
                deadline = min(deadline, time.monotonic() + 2)  # the others may wait forever
    for _, reader in started:
        reader.close()
    deadline = max(deadline, time.monotonic() + 1)
    for process, _ in started:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return results


def checked(results: list[dict], what: str) -> list[dict] | None:
    for result in results:
        if "error" in result:
            print(f"  ! {what}: {result['error']}", file=sys.stderr, flush=True)
            if os.environ.get("FBP_BENCH_DEBUG") and "trace" in result:
                print(result["trace"], file=sys.stderr)
            return None
    return results


def measure_throughput(
    peer_name: str, payload: int, duration: float, batch: int = 0, touching: bool = True
):
    ctx = multiprocessing.get_context("spawn")
    peer = PEERS[peer_name]
    spec = peer.open(payload, ctx)
    child_spec = {key: value for key, value in spec.items() if not key.startswith("_")}
    try:
        if batch:
            jobs = [
                (consume_batches, peer_name, child_spec, batch, touching),
                (produce_batches, peer_name, child_spec, payload, duration, batch),
            ]
        else:
            jobs = [
                (consume, peer_name, child_spec, payload),
                (produce, peer_name, child_spec, payload, duration),
            ]
        results = checked(run_children(jobs, timeout=duration + 60), f"{peer_name} {payload} B")
    finally:
        peer.close(spec)
    if results is None:
        return None
    consumed, produced = results
    if consumed["count"] != produced["sent"]:
        print(
            f"  ! {peer_name} {payload} B: sent {produced['sent']}, received {consumed['count']}",
            file=sys.stderr,
        )
        return None
    return (consumed["count"] - 1) / consumed["seconds"] if consumed["seconds"] > 0 else None


def measure_memcpy(payload: int, duration: float):
    results = checked(run_children([(memcpy, payload, duration)], timeout=duration + 60), "memcpy")
    return results and results[0]["count"] / results[0]["seconds"]


def measure_pingpong(variant: str, duration: float, max_trips: int):
    ctx = multiprocessing.get_context("spawn")
    if variant in ("ring", "ring busy-poll"):
        from fbp.ring import Ring

        owners = [Ring.create(1 << 20), Ring.create(1 << 20)]
        spec = {"forward": owners[0].name, "backward": owners[1].name}
    elif variant == "spin shm":
        spec = SpinRing.open(ctx)
    else:
        spec = {"forward": PEERS[variant].open(64, ctx), "backward": PEERS[variant].open(64, ctx)}
    try:
        jobs = [(pong, variant, spec), (ping, variant, spec, duration, max_trips)]
        results = checked(run_children(jobs, timeout=duration + 60), f"ping-pong {variant}")
    finally:
        if variant in ("ring", "ring busy-poll"):
            for owner in owners:
                owner.close()
                owner.unlink()
        elif variant == "spin shm":
            SpinRing.close(spec)
        else:
            PEERS[variant].close(spec["forward"])
            PEERS[variant].close(spec["backward"])
    return results and results[1]


def measure_idle(role: str, seconds: float):
    from fbp.ring import Ring

    owner = Ring.create(1 << 16)
    try:
        results = checked(
            run_children([(idle_waiter, owner.name, role, seconds)], timeout=seconds + 60),
            f"idle {role}",
        )
    finally:
        owner.close()
        owner.unlink()
    return results and results[0]


def repeat(function, times: int, *args):
    values = []
    for _ in range(times):
        value = function(*args)
        if value is not None:
            values.append(value)
    return values


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------


def fmt_rate(value) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k"
    return f"{value:.0f}"


def fmt_ratio(ours, theirs) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: dict, peers: list[str]) -> str:
    others = [peer for peer in peers if peer != "ring"]
    through = results["throughput"]
    out = []

    header = ["payload"] + [f"ours / {peer}" for peer in others] + ["ours / best peer", "ours / memcpy"]
    rows = []
    for payload in results["sizes"] if through else []:
        key = str(payload)
        best = {peer: max(through.get(peer, {}).get(key, []), default=None) for peer in peers}
        ours = best.get("ring")
        best_peer = max((best.get(peer) or 0 for peer in others), default=0)
        memcpy_rate = max(results["memcpy"].get(key, []), default=None)
        rows.append(
            [size_label(payload)]
            + [fmt_ratio(ours, best.get(peer)) for peer in others]
            + [fmt_ratio(ours, best_peer), fmt_ratio(ours, memcpy_rate)]
        )
    batch = results.get("batch", {})
    if batch:
        ours = max(batch.get("ring", []), default=None)
        ff = max(batch.get("faster-fifo", []), default=None)
        row = ["64 B batch"] + [fmt_ratio(ours, ff) if peer == "faster-fifo" else "" for peer in others]
        rows.append(row + [fmt_ratio(ours, ff), ""])
    out.append("Throughput, msg/s ratio (best of repeats; > 1 means the ring is faster):\n")
    out.append(markdown_table(header, rows))

    latency = results.get("pingpong", {})
    if latency:
        out.append("\nPing-pong 64 B round trip (median of repeats; < 1 means the ring is faster):\n")
        ours = latency.get("ring")
        header = ["percentile"] + [f"ours / {v}" for v in latency if v != "ring"]
        rows = []
        for key in ("p50_us", "p99_us"):
            mine = ours and ours[key]
            rows.append(
                [key[:3]]
                + [fmt_ratio(mine, theirs and theirs[key]) for v, theirs in latency.items() if v != "ring"]
            )
        out.append(markdown_table(header, rows))

    if not through:
        out.append("\n(throughput skipped)")
    out.append("\nRaw throughput (msg/s and GB/s of payload; best and median of repeats):\n")
    header = ["peer"] + [size_label(p) for p in results["sizes"]]
    rows = []
    for peer in peers + ["memcpy"]:
        table = results["memcpy"] if peer == "memcpy" else through.get(peer, {})
        row = [peer]
        for payload in results["sizes"]:
            values = table.get(str(payload), [])
            if not values:
                row.append("-")
                continue
            best, median = max(values), statistics.median(values)
            row.append(
                f"{fmt_rate(best)}/s {best * payload / 1e9:.2f} GB/s (med {fmt_rate(median)})"
            )
        rows.append(row)
    for peer, values in batch.items():
        row = [f"{peer} batch"]
        if values:
            row.append(f"{fmt_rate(max(values))}/s (med {fmt_rate(statistics.median(values))})")
        rows.append(row + ["" for _ in results["sizes"][len(row) - 1 :]])
    out.append(markdown_table(header, rows))

    if latency:
        out.append("\nRaw ping-pong 64 B round trip, microseconds (median of repeats):\n")
        rows = [
            [variant, f"{value['p50_us']:.2f}", f"{value['p99_us']:.2f}", str(value["trips"])]
            for variant, value in latency.items()
            if value
        ]
        out.append(markdown_table(["variant", "p50 us", "p99 us", "trips"], rows))

    idle = results.get("idle", {})
    if idle:
        out.append("\nIdle ring waiter (blocked for the whole interval; median of repeats):\n")
        rows = [
            [
                role,
                f"{value['wall']:.2f}",
                f"{value['cpu'] * 1e3:.2f}",
                f"{value['percent']:.3f} %",
                f"{value['process_cpu'] * 1e3:.1f} ({value['threads']} threads)",
            ]
            for role, value in idle.items()
            if value
        ]
        header = ["side", "wall s", "waiting thread CPU ms", "CPU", "whole process CPU ms"]
        out.append(markdown_table(header, rows))
    return "\n".join(out)


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_facts() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, nproc {os.cpu_count()}, {model}, "
        f"Linux {platform.release()}, Python {platform.python_version()}, numpy {np.__version__}"
    )


def peer_versions(peers: list[str]) -> str:
    from importlib import metadata

    names = {"zmq": "pyzmq", "faster-fifo": "faster-fifo", "iceoryx2": "iceoryx2", "ring": "fbp-runtime"}
    parts = []
    for peer in peers:
        if peer in names:
            try:
                parts.append(f"{names[peer]} {metadata.version(names[peer])}")
            except metadata.PackageNotFoundError:
                parts.append(f"{names[peer]} (not installed)")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run: 0.2 s, 1 repeat")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 1.0)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 3)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers")
    parser.add_argument("--sizes", help="comma-separated payload sizes in bytes")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: throughput,batch,pingpong,idle")
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args(argv)

    duration = args.duration or (0.2 if args.quick else 1.0)
    repeats = args.repeats or (1 if args.quick else 3)
    peers = [peer for peer in args.peers.split(",") if peer]
    for peer in peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    if "ring" not in peers:
        peers.insert(0, "ring")
    sizes = [int(size) for size in args.sizes.split(",")] if args.sizes else list(SIZES)
    skip = set(args.skip.split(","))
    max_trips = 5_000 if args.quick else 100_000

    print(f"# ring_peers: {machine_facts()}", flush=True)
    print(f"# {peer_versions(peers)}; {duration:g} s x {repeats} repeats per measurement", flush=True)
    print(f"# {load_average()} at start (other busy processes distort everything here)\n", flush=True)
    started = time.perf_counter()
    results: dict = {"sizes": sizes, "throughput": {}, "memcpy": {}, "facts": machine_facts()}

    if "throughput" not in skip:
        for payload in sizes:
            for peer in peers:
                rates = repeat(measure_throughput, repeats, peer, payload, duration)
                results["throughput"].setdefault(peer, {})[str(payload)] = rates
                print(f"  {peer:12s} {size_label(payload):>7s}: {', '.join(fmt_rate(r) for r in rates)} msg/s", flush=True)
            rates = repeat(measure_memcpy, repeats, payload, duration)
            results["memcpy"][str(payload)] = rates
            print(f"  {'memcpy':12s} {size_label(payload):>7s}: {', '.join(fmt_rate(r) for r in rates)} copies/s", flush=True)

    if "batch" not in skip:
        results["batch"] = {}
        # The consumer touches one byte of every message like everywhere else; "ring, no
        # touch" shows what the batch API itself costs without that per-message Python work.
        for label, peer, touching in (
            ("ring", "ring", True),
            ("faster-fifo", "faster-fifo", True),
            ("ring, no touch", "ring", False),
        ):
            if peer not in peers:
                continue
            rates = repeat(measure_throughput, repeats, peer, 64, duration, 256, touching)
            results["batch"][label] = rates
            print(f"  {label + ' batch':22s} 64 B: {', '.join(fmt_rate(r) for r in rates)} msg/s", flush=True)

    if "pingpong" not in skip:
        results["pingpong"] = {}
        variants = peers + ["ring busy-poll"]
        if platform.machine() in ("x86_64", "AMD64"):
            variants.append("spin shm")
        for variant in variants:
            runs = repeat(measure_pingpong, repeats, variant, duration, max_trips)
            if runs:
                runs.sort(key=lambda run: run["p50_us"])
                results["pingpong"][variant] = runs[len(runs) // 2]
                summary = ", ".join(f"{run['p50_us']:.2f}/{run['p99_us']:.2f}" for run in runs)
                print(f"  ping-pong {variant:16s} p50/p99 us: {summary}", flush=True)
            else:
                results["pingpong"][variant] = None

    if "idle" not in skip:
        results["idle"] = {}
        for role in ("consumer", "producer"):
            runs = repeat(measure_idle, repeats, role, 0.5 if args.quick else 2.0)
            runs.sort(key=lambda run: run["cpu"])
            results["idle"][role] = runs[len(runs) // 2] if runs else None

    results["seconds"] = time.perf_counter() - started
    print()
    print(report(results, peers))
    print(f"\n(total {results['seconds']:.0f} s, {load_average()} at the end)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
