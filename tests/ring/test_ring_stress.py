"""Two real processes, a million records: no loss, no duplicate, no corruption.

The producer (ring_peer.py produce) mixes send, send_many and reserve, with random
sizes from 0 B to 16 KiB and random pauses. The consumer here holds random records for a
while, releases them out of order, drops some by garbage collection and pauses at
random, so wrap-around, PAD records, back-pressure and both futex paths all happen.
"""

from __future__ import annotations

import random
import struct
import time
import zlib

import pytest

from fbp.errors import EndOfStream, RingEmpty
from fbp.ring import RecordKind, Ring

HEADER = struct.Struct("<QII")


def run_stress(make_ring, peer, count: int, capacity: int, seed: int) -> dict:
    ring = make_ring(capacity, hot_reuse_min=4096)
    consumer = Ring.attach(ring.name, "consumer")
    producer = peer("produce", ring.name, count, seed, 16384, 0.002)
    rng = random.Random(seed)
    expected = 0
    held = []
    eof = 0
    start = time.monotonic()
    while True:
        try:
            try:
                batch = consumer.recv_many(rng.choice((1, 8, 64)), timeout=0)
            except RingEmpty:
                # Held records pin the ring from the oldest one on, so a consumer that
                # waited while holding them could stall the producer: let go first.
                held.clear()
                batch = consumer.recv_many(rng.choice((1, 8, 64)), timeout=30)
        except EndOfStream:
            break
        for rec in batch:
            if rec.kind == RecordKind.EOF:
                eof += 1
                continue
            seq, size, crc = HEADER.unpack_from(rec)
            assert seq == expected, f"expected record {expected}, got {seq}"
            assert len(rec) == HEADER.size + size
            assert zlib.crc32(memoryview(rec)[HEADER.size :]) == crc, f"record {seq} corrupt"
            expected += 1
            if rng.random() < 0.05:
                held.append((seq, rec, crc))
        del batch, rec
        if len(held) > 20 or (held and rng.random() < 0.1):
            rng.shuffle(held)
            for seq, kept, crc in held[: rng.randrange(1, len(held) + 1)]:
                # a held view must still show its record: never overwritten
                assert zlib.crc32(memoryview(kept)[HEADER.size :]) == crc, f"held {seq} changed"
            del kept  # (a stray reference would pin the ring just like a held record)
            keep = rng.randrange(0, len(held))
            del held[keep:]
        if rng.random() < 0.001:
            time.sleep(0.003)
    elapsed = time.monotonic() - start
    assert producer.read()["sent"] == count
    assert producer.wait() == 0
    held.clear()
    stats = ring.stats()
    assert expected == count and eof == 1
    assert stats["packets"] == count + 1 and stats["packets_received"] == count + 1
    assert stats["fill_records"] == 0 and stats["fill_bytes"] == 0
    return {"elapsed": elapsed, **stats}


@pytest.mark.timeout(90)
def test_million_records_between_two_processes(make_ring, peer):
    stats = run_stress(make_ring, peer, 1_000_000, 256 * 1024, seed=1)
    # the scenario must have exercised both waiting paths, or it proved less than it claims
    assert stats["full_waits"] > 0 and stats["empty_waits"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_five_million_records_in_a_small_ring(make_ring, peer):
    run_stress(make_ring, peer, 5_000_000, 64 * 1024, seed=2)
