"""In-process costs of the ring's calls, with pytest-benchmark. Run only on request:

    .venv/bin/pytest benchmarks/test_bench_ring.py --benchmark-columns=min,median,ops

The project's test suite never collects this file (its testpaths is `tests/`). Producer and
consumer are two handles in one process, so each number is the CPU cost of the calls
themselves, without any cross-core traffic or waiting (ring_peers.py measures that).
"""

from __future__ import annotations

import numpy as np
import pytest

from fbp.ring import Ring

pytest.importorskip("pytest_benchmark")


@pytest.fixture
def ring():
    owner = Ring.create(32 << 20)
    producer = Ring.attach(owner.name, "producer")
    consumer = Ring.attach(owner.name, "consumer")
    yield producer, consumer
    producer.close()
    consumer.close()
    owner.close()
    owner.unlink()


@pytest.mark.parametrize("size", [64, 4096, 1 << 20, 8 << 20], ids=["64B", "4KiB", "1MiB", "8MiB"])
def test_send_then_recv(benchmark, ring, size):
    producer, consumer = ring
    message = bytes(size) if size <= 4096 else np.ones(size, np.uint8)

    def round_trip():
        producer.send(message)
        with consumer.recv() as record:
            return len(record)

    assert benchmark(round_trip) == size


def test_reserve_commit_recv_4KiB(benchmark, ring):
    producer, consumer = ring

    def round_trip():
        with producer.reserve(4096) as slot:
            slot[0] = 1
        with consumer.recv() as record:
            return len(record)

    assert benchmark(round_trip) == 4096


@pytest.mark.parametrize("batch", [16, 256])
def test_send_many_recv_many_64B(benchmark, ring, batch):
    producer, consumer = ring
    messages = [bytes(64)] * batch

    def round_trip():
        producer.send_many(messages)
        records = consumer.recv_many(batch)
        count = len(records)
        del records
        return count

    assert benchmark(round_trip) == batch
    benchmark.extra_info["records_per_round"] = batch


def test_try_recv_empty(benchmark, ring):
    """recv(timeout=0) on an empty ring: the cost of one miss when polling."""
    from fbp.errors import RingEmpty

    _, consumer = ring

    def miss():
        try:
            consumer.recv(timeout=0)
        except RingEmpty:
            return True
        return False

    assert benchmark(miss)


def test_stats(benchmark, ring):
    producer, _ = ring
    assert benchmark(producer.stats)["capacity"] >= 32 << 20
