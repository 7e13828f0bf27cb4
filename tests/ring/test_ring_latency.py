"""The ring's latency histogram: how long records waited between commit and take.

Waits are made long with sleeps (tens of ms) and compared with generous margins: the
machine is shared, so only lower bounds on a wait are exact.
"""

from __future__ import annotations

import time

import pytest

from fbp.ring import LATENCY_BOUNDS, Ring


def pair(ring: Ring) -> tuple[Ring, Ring]:
    return Ring.attach(ring.name, "producer"), Ring.attach(ring.name, "consumer")


def bucket_of(seconds: float) -> int:
    return next((i for i, bound in enumerate(LATENCY_BOUNDS) if seconds <= bound), -1)


def test_the_bounds_span_ten_microseconds_to_ten_seconds_in_1_2_5_steps():
    assert LATENCY_BOUNDS[0] == pytest.approx(10e-6) and LATENCY_BOUNDS[-1] == 10.0
    assert list(LATENCY_BOUNDS) == sorted(LATENCY_BOUNDS)
    ratios = {round(b / a, 1) for a, b in zip(LATENCY_BOUNDS, LATENCY_BOUNDS[1:], strict=False)}
    assert ratios == {2.0, 2.5}


def test_a_record_counts_its_wait_from_commit_to_take(make_ring):
    ring = make_ring()
    producer, consumer = pair(ring)
    assert ring.latency() == {"count": 0, "sum": 0.0, "counts": (0,) * (len(LATENCY_BOUNDS) + 1)}
    producer.send(b"early")
    time.sleep(0.06)
    producer.send(b"late")  # committed just before the take: waits microseconds
    taken = consumer.recv_many(10, 0)
    assert len(taken) == 2
    latency = ring.latency()
    assert latency["count"] == 2 == ring.stats()["packets_received"]
    assert sum(latency["counts"]) == 2
    # the early one waited >= 60 ms (clock ticks are ~1 us); the late one far less
    assert latency["sum"] >= 0.059
    assert latency["counts"][bucket_of(0.06)] + sum(latency["counts"][bucket_of(0.06) + 1 :]) >= 1
    assert sum(latency["counts"][: bucket_of(0.02) + 1]) == 1


def test_every_record_of_a_batch_and_every_kind_is_stamped(make_ring):
    ring = make_ring()
    producer, consumer = pair(ring)
    producer.send_many([b"a" * 64] * 50)
    with producer.reserve(100, kind=1) as slot:
        slot[:] = b"b" * 100
    time.sleep(0.03)
    records = []
    while len(records) < 51:
        records += consumer.recv_many(64, 1)
    latency = ring.latency()
    assert latency["count"] == 51 == ring.stats()["packets_received"]
    assert latency["sum"] >= 51 * 0.029  # each waited the 30 ms, none counted as zero
    assert sum(latency["counts"][: bucket_of(0.02) + 1]) == 0


def test_a_pad_is_not_counted_and_the_wait_is_right_across_wrap_around(make_ring):
    ring = make_ring(4096)
    producer, consumer = pair(ring)
    for _ in range(200):  # 200 x 48 bytes: the ring wraps, with PADs at the lap ends
        producer.send(b"x" * 30)
        consumer.recv(1).release()
    assert ring.latency()["count"] == 200 == ring.stats()["packets_received"]


def test_a_new_consumer_goes_on_counting_and_counts_a_redelivery_again(make_ring):
    ring = make_ring()
    producer, first = pair(ring)
    producer.send(b"held")
    kept = first.recv(1)  # taken, never released: delivered again after a takeover
    assert ring.latency()["count"] == 1
    first.close()
    time.sleep(0.05)
    second = Ring.attach(ring.name, "consumer")
    again = second.recv(1)
    assert bytes(again) == b"held"
    latency = ring.latency()
    # the redelivery waited since its commit (>= 50 ms), like packets_received counts twice
    assert latency["count"] == 2 == ring.stats()["packets_received"]
    assert latency["sum"] >= 0.05
    del kept, again
