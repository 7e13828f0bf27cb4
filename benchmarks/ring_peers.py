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
  into bytes first, one extra copy, because `put` takes bytes only), and its
  `put_many`/`get_many` batch API at 64 B;
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
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import sys
import time
import traceback

import numpy as np
from ipc_peers import (
    END_OF_RUN,
    PEERS,
    SIZES,
    SpinRing,
    check_every,
    make_message,
    size_label,
    touch,
    toucher,
)
from ring_peers_report import fmt_rate, load_average, machine_facts, peer_versions, report

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
    ponger = spec["ponger_pid"].value
    same_cpu = samples = 0
    deadline = time.perf_counter() + duration
    while len(trips) < max_trips:
        start = perf_counter_ns()
        send(message)
        receive()
        append(perf_counter_ns() - start)
        if len(trips) % 256 == 0:
            if time.perf_counter() > deadline:
                break
            if len(trips) % 4096 == 0:  # outside the timed part
                samples += 1
                same_cpu += last_cpu(os.getpid()) == last_cpu(ponger)
    if variant in PEERS and variant != "ring":
        keep[0].end()
    else:
        send(END_OF_RUN)
    trips.sort()
    return {
        "trips": len(trips),
        "p50_us": trips[len(trips) // 2] / 1e3,
        "p99_us": trips[int(len(trips) * 0.99)] / 1e3,
        # Both ends on one CPU turn every hand-over into a context switch (README, "Ping-pong").
        "same_cpu": f"{same_cpu}/{samples}",
    }


def last_cpu(pid: int) -> int:
    """The CPU a process last ran on (field 39 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as file:
        return int(file.read().rsplit(")", 1)[1].split()[36])


def pong(variant: str, spec: dict) -> dict:
    spec["ponger_pid"].value = os.getpid()
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
    spec["ponger_pid"] = ctx.Value("i", 0, lock=False)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run: 0.2 s, 1 repeat")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 1.0)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 3)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers")
    parser.add_argument("--sizes", help="comma-separated payload sizes in bytes")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: throughput,batch,pingpong,idle"
    )
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
    print(
        f"# {peer_versions(peers)}; {duration:g} s x {repeats} repeats per measurement", flush=True
    )
    print(
        f"# {load_average()} at start (other busy processes distort everything here)\n", flush=True
    )
    started = time.perf_counter()
    results: dict = {"sizes": sizes, "throughput": {}, "memcpy": {}, "facts": machine_facts()}

    if "throughput" not in skip:
        for payload in sizes:
            for peer in peers:
                rates = repeat(measure_throughput, repeats, peer, payload, duration)
                results["throughput"].setdefault(peer, {})[str(payload)] = rates
                shown = ", ".join(fmt_rate(rate) for rate in rates)
                print(f"  {peer:12s} {size_label(payload):>7s}: {shown} msg/s", flush=True)
            rates = repeat(measure_memcpy, repeats, payload, duration)
            results["memcpy"][str(payload)] = rates
            shown = ", ".join(fmt_rate(rate) for rate in rates)
            print(f"  {'memcpy':12s} {size_label(payload):>7s}: {shown} copies/s", flush=True)

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
            print(
                f"  {label + ' batch':22s} 64 B: {', '.join(fmt_rate(r) for r in rates)} msg/s",
                flush=True,
            )

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
                summary = ", ".join(
                    f"{run['p50_us']:.2f}/{run['p99_us']:.2f} (same CPU {run['same_cpu']})"
                    for run in runs
                )
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
