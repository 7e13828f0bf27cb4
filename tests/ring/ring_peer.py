"""The other process of the ring tests, run as a script: `python ring_peer.py MODE ...`.

A script (not a multiprocessing target) so the child imports the installed fbp by a
plain name under pytest's importlib mode. Every mode prints JSON lines on stdout; the
test reads them to synchronise ("ready") and to check the outcome.
"""

from __future__ import annotations

import json
import random
import resource
import struct
import sys
import time
import zlib

from fbp.errors import BrokenConnection, EndOfStream, RingEmpty, RingFull
from fbp.ring import RecordKind, Ring

# Stress record: sequence number, body length, crc32 of the body; then the body.
STRESS_HEADER = struct.Struct("<QII")
POOL = random.Random(1234).randbytes(1 << 17)


def say(**fields):
    print(json.dumps(fields), flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stress_body(seq: int, size: int) -> bytes:
    start = (seq * 7919) % (len(POOL) - size) if size < len(POOL) else 0
    return POOL[start : start + size]


def stress_size(rng: random.Random, max_size: int) -> int:
    roll = rng.random()
    if roll < 0.7:
        return rng.randrange(0, 64)
    if roll < 0.97:
        return rng.randrange(64, 2048)
    return rng.randrange(2048, max_size)


def produce(name: str, count: int, seed: int, max_size: int, slow: float) -> None:
    """Send `count` stress records mixing send, send_many and reserve; randomly pause."""
    ring = Ring.attach(name, "producer")
    rng = random.Random(seed)
    seq = 0
    while seq < count:
        mode = rng.random()
        if rng.random() < slow:
            time.sleep(rng.random() * 0.002)
        if mode < 0.4:
            size = stress_size(rng, max_size)
            body = stress_body(seq, size)
            ring.send(STRESS_HEADER.pack(seq, size, zlib.crc32(body)) + body)
            seq += 1
        elif mode < 0.8:
            batch = []
            for _ in range(min(rng.randrange(1, 64), count - seq)):
                size = stress_size(rng, max_size)
                body = stress_body(seq, size)
                batch.append(STRESS_HEADER.pack(seq, size, zlib.crc32(body)) + body)
                seq += 1
            ring.send_many(batch)
        else:
            size = stress_size(rng, max_size)
            body = stress_body(seq, size)
            with ring.reserve(STRESS_HEADER.size + size) as buf:
                STRESS_HEADER.pack_into(buf, 0, seq, size, zlib.crc32(body))
                buf[STRESS_HEADER.size :] = body
            seq += 1
    ring.send(b"", kind=RecordKind.EOF)
    ring.close()
    say(sent=seq)


def consume_hold(name: str, count: int, release: list[int]) -> None:
    """Receive `count` records, release those at the given indexes, hold the rest, hang."""
    ring = Ring.attach(name, "consumer")
    held = [ring.recv(timeout=10) for _ in range(count)]
    seqs = [int.from_bytes(bytes(rec)[:8], "little") for rec in held]
    for index in release:
        held[index].release()
    say(ready=True, seqs=seqs)
    time.sleep(60)


def consume_log(name: str, slow: float, seed: int) -> None:
    """Receive stress records forever, printing each sequence number after releasing it."""
    ring = Ring.attach(name, "consumer")
    rng = random.Random(seed)
    say(ready=True)
    while True:
        rec = ring.recv(timeout=30)
        if rec.kind == RecordKind.EOF:
            break
        seq = STRESS_HEADER.unpack_from(rec)[0]
        rec.release()
        print(seq, flush=True)
        if rng.random() < slow:
            time.sleep(0.001)
    del rec
    time.sleep(60)  # the whole stream went through before the kill: wait for it anyway


def reserve_and_hang(name: str, before: int) -> None:
    """Send `before` records, then reserve space, fill it, and hang before committing."""
    ring = Ring.attach(name, "producer")
    for seq in range(before):
        ring.send(seq.to_bytes(8, "little"))
    reservation = ring.reserve(1000)
    with memoryview(reservation) as buf:
        buf[:] = b"\xee" * 1000
    say(ready=True)
    time.sleep(60)


def own(capacity: int) -> None:
    """Create a ring (this process owns it), report its name, hang until killed."""
    ring = Ring.create(capacity)
    ring.send(b"orphan")
    say(ready=True, name=ring.name)
    time.sleep(60)


def block_recv(name: str, timeout: float | None) -> None:
    """Block in recv; report how it ended, how long it took and the CPU it used."""
    ring = Ring.attach(name, "consumer")
    say(ready=True)
    cpu, start = cpu_seconds(), time.monotonic()
    try:
        rec = ring.recv(timeout=timeout)
        outcome = f"record:{bytes(rec).decode()}"
    except (EndOfStream, RingEmpty) as exc:
        outcome = type(exc).__name__
    say(outcome=outcome, seconds=time.monotonic() - start, cpu=cpu_seconds() - cpu)


def block_send(name: str, timeout: float | None) -> None:
    """Fill the ring, then block in send; report how it ended."""
    ring = Ring.attach(name, "producer")
    filled = 0
    try:
        while True:
            ring.send(b"x" * 100, timeout=0)
            filled += 1
    except RingFull:
        pass
    say(ready=True, filled=filled)
    cpu, start = cpu_seconds(), time.monotonic()
    try:
        ring.send(b"y" * 100, timeout=timeout)
        outcome = "sent"
    except (BrokenConnection, RingFull) as exc:
        outcome = type(exc).__name__
    say(outcome=outcome, seconds=time.monotonic() - start, cpu=cpu_seconds() - cpu)


def send_later(name: str, delay: float, payload: str) -> None:
    """Attach as producer, wait, send one record, close."""
    ring = Ring.attach(name, "producer")
    say(ready=True)
    time.sleep(delay)
    ring.send(payload.encode())
    ring.close()


def drain_later(name: str, delay: float) -> None:
    """Attach as consumer, wait, receive and release everything available."""
    ring = Ring.attach(name, "consumer")
    say(ready=True)
    time.sleep(delay)
    count = 0
    try:
        while True:
            ring.recv(timeout=0).release()
            count += 1
    except RingEmpty:
        pass
    say(drained=count)
    time.sleep(0.5)


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "produce":
        produce(args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4]))
    elif mode == "consume-hold":
        consume_hold(args[0], int(args[1]), json.loads(args[2]))
    elif mode == "consume-log":
        consume_log(args[0], float(args[1]), int(args[2]))
    elif mode == "reserve-and-hang":
        reserve_and_hang(args[0], int(args[1]))
    elif mode == "own":
        own(int(args[0]))
    elif mode == "block-recv":
        block_recv(args[0], json.loads(args[1]))
    elif mode == "block-send":
        block_send(args[0], json.loads(args[1]))
    elif mode == "send-later":
        send_later(args[0], float(args[1]), args[2])
    elif mode == "drain-later":
        drain_later(args[0], float(args[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
