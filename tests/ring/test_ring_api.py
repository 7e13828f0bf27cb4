"""The ring's public API in one process: records, zero-copy views, errors, stats."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time

import numpy as np
import pytest

import fbp.ring
from fbp.errors import (
    BrokenConnection,
    ClosedPort,
    EndOfStream,
    FBPError,
    RecordTooLarge,
    RingEmpty,
    RingFull,
)
from fbp.ring import Record, RecordKind, Ring


def pair(ring: Ring) -> tuple[Ring, Ring]:
    """A producer and a consumer handle on the owner's ring (same process)."""
    return Ring.attach(ring.name, "producer"), Ring.attach(ring.name, "consumer")


def test_public_exports_are_stable():
    assert set(fbp.ring.__all__) == {
        "LATENCY_BOUNDS",
        "Record",
        "RecordKind",
        "Reservation",
        "Ring",
        "SegmentInfo",
        "list_segments",
        "new_segment_name",
        "remove_stale_segments",
        "remove_segments_of",
        "wait_any",
    }
    assert [k.name for k in RecordKind] == ["DATA", "OPEN", "CLOSE", "EOF", "CONTROL"]


def test_segment_name_follows_the_shared_contract(make_ring):
    ring = make_ring(4096)
    tag = os.environ.get("FBP_SHM_TAG", "")
    assert ring.name.startswith(f"fbp{tag}-{os.getpid()}-")
    assert os.path.exists(f"/dev/shm/{ring.name}")
    assert ring.capacity == 4096
    named = fbp.ring.new_segment_name("Src.OUT")
    assert named.endswith("-Src.OUT") and named.startswith(f"fbp{tag}-{os.getpid()}-")


def test_capacity_rounds_up_to_pages(make_ring):
    assert make_ring(5000).capacity == 8192


def test_send_and_recv_keep_bytes_kind_and_order(make_ring):
    producer, consumer = pair(make_ring())
    payloads = [b"", b"a", b"hello world", bytes(range(256)) * 10]
    kinds = [RecordKind.OPEN, RecordKind.DATA, RecordKind.CONTROL, RecordKind.CLOSE]
    for payload, kind in zip(payloads, kinds, strict=False):
        producer.send(payload, kind=kind)
    for payload, kind in zip(payloads, kinds, strict=False):
        rec = consumer.recv(timeout=1)
        assert isinstance(rec, Record)
        assert bytes(rec) == payload and len(rec) == len(payload)
        assert rec.kind is kind


def test_send_accepts_any_contiguous_buffer(make_ring):
    producer, consumer = pair(make_ring())
    array = np.arange(12, dtype=np.float64).reshape(3, 4)
    producer.send(array)
    producer.send(bytearray(b"ba"))
    producer.send(memoryview(b"mv"))
    producer.send(np.asfortranarray(array))
    assert np.array_equal(np.frombuffer(consumer.recv(), np.float64).reshape(3, 4), array)
    assert bytes(consumer.recv()) == b"ba"
    assert bytes(consumer.recv()) == b"mv"
    assert len(consumer.recv()) == array.nbytes
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        producer.send(array[:, ::2])


def test_received_record_is_a_read_only_zero_copy_view(make_ring):
    producer, consumer = pair(make_ring())
    producer.send(np.arange(100, dtype=np.uint32))
    rec = consumer.recv()
    array = np.frombuffer(rec, dtype=np.uint32)
    assert not array.flags.writeable
    assert array.base is not None  # a view, not a copy
    with pytest.raises((BufferError, ValueError, TypeError)):
        memoryview(rec).cast("B")[0:1] = b"x"
    # Two views of the same record share memory: they are windows into the ring.
    again = np.frombuffer(rec, dtype=np.uint32)
    assert again.__array_interface__["data"][0] == array.__array_interface__["data"][0]
    assert array.sum() == sum(range(100))


def test_record_address_is_where_its_bytes_are_until_released(make_ring):
    producer, consumer = pair(make_ring())
    producer.send(b"abcdef")
    rec = consumer.recv()
    view = np.frombuffer(rec, dtype=np.uint8)
    assert rec.address == view.__array_interface__["data"][0]
    assert ctypes.string_at(rec.address, len(rec)) == b"abcdef"
    del view
    rec.release()
    with pytest.raises(ValueError, match="released"):
        _ = rec.address


def test_reserve_writes_in_place_and_commits_on_exit(make_ring):
    producer, consumer = pair(make_ring())
    with producer.reserve(800, kind=RecordKind.DATA) as buf:
        np.frombuffer(buf, dtype=np.float64)[:] = np.linspace(0, 1, 100)
        with pytest.raises(RingEmpty):
            consumer.recv(timeout=0)  # nothing visible before commit
    rec = consumer.recv(timeout=1)
    assert np.array_equal(np.frombuffer(rec, np.float64), np.linspace(0, 1, 100))


def test_the_reserved_view_dies_with_the_block(make_ring):
    producer, consumer = pair(make_ring())
    with producer.reserve(4) as buf:
        buf[:] = b"once"
    with pytest.raises(ValueError, match="released"):
        buf[:] = b"late"
    assert bytes(consumer.recv(timeout=1)) == b"once"


def test_reserve_abandons_on_exception(make_ring):
    producer, consumer = pair(make_ring())
    with pytest.raises(RuntimeError, match="writer failed"), producer.reserve(16) as buf:
        buf[:] = b"0123456789abcdef"
        raise RuntimeError("writer failed")
    producer.send(b"after")
    assert bytes(consumer.recv(timeout=1)) == b"after"
    with pytest.raises(RingEmpty):
        consumer.recv(timeout=0)


def test_reservation_commit_can_shrink_and_blocks_other_sends(make_ring):
    producer, consumer = pair(make_ring())
    reservation = producer.reserve(100)
    memoryview(reservation)[:5] = b"short"
    with pytest.raises(FBPError, match="reservation is still open"):
        producer.send(b"no")
    with pytest.raises(ValueError, match="0..100 bytes"):
        reservation.commit(101)
    reservation.commit(5)
    with pytest.raises(ValueError, match="already committed"):
        reservation.commit()
    assert bytes(consumer.recv(timeout=1)) == b"short"


def test_record_larger_than_the_ring_fails_at_once(make_ring):
    producer, _ = pair(make_ring(4096))
    start = time.monotonic()
    with pytest.raises(RecordTooLarge, match="record of 5000 bytes can never fit.*at most 4080"):
        producer.send(bytes(5000))
    with pytest.raises(RecordTooLarge):
        producer.reserve(4081)
    with pytest.raises(RecordTooLarge):
        producer.send_many([b"ok", bytes(5000)])
    assert time.monotonic() - start < 1.0
    assert isinstance(RecordTooLarge("x"), ValueError)


def test_largest_record_fits_an_empty_ring_wherever_the_cursor_is(make_ring):
    producer, consumer = pair(make_ring(4096))
    for filler in (0, 16, 100, 2000, 4000):
        producer.send(bytes(filler))
        consumer.recv(timeout=1).release()
        try:
            producer.send(b"\x07" * 4080, timeout=0)
        except RingFull:
            # The record did not fit before the end: a PAD went out first, and its space
            # returns once the consumer passes it (another process would do so at once).
            with pytest.raises(RingEmpty):
                consumer.recv(timeout=0)
            producer.send(b"\x07" * 4080, timeout=0)
        rec = consumer.recv(timeout=1)
        assert bytes(rec) == b"\x07" * 4080
        rec.release()


def test_timeouts_raise_ring_empty_and_ring_full(make_ring):
    producer, consumer = pair(make_ring(4096))
    for timeout in (0, 0.05):
        start = time.monotonic()
        with pytest.raises(RingEmpty, match=f"timeout={timeout} s"):
            consumer.recv(timeout=timeout)
        assert time.monotonic() - start >= timeout
    sent = 0
    with pytest.raises(RingFull, match="no space for a 100-byte record"):
        while True:
            producer.send(bytes(100), timeout=0)
            sent += 1
    assert sent == 4096 // 128
    start = time.monotonic()
    with pytest.raises(RingFull):
        producer.send(bytes(100), timeout=0.05)
    assert time.monotonic() - start >= 0.05
    assert isinstance(RingFull("x"), TimeoutError)


def test_held_views_are_back_pressure_never_overwritten(make_ring):
    producer, consumer = pair(make_ring(4096))
    producer.send(b"A" * 1000)
    held = consumer.recv()
    while True:
        try:
            producer.send(b"B" * 1000, timeout=0)
        except RingFull:
            break
        consumer.recv().release()
    assert bytes(held) == b"A" * 1000
    del held
    producer.send(b"C" * 1000, timeout=0)  # space came back when the view went


def test_out_of_order_release_frees_only_the_released_prefix(make_ring):
    producer, consumer = pair(make_ring(4096))
    for i in range(3):
        producer.send(bytes([i]) * 100)
    first, second, third = consumer.recv(), consumer.recv(), consumer.recv()
    second.release()
    third.release()
    assert producer.stats()["fill_records"] == 3  # the tail waits for `first`
    first.release()
    stats = producer.stats()
    assert stats["fill_records"] == 0 and stats["fill_bytes"] == 0


def test_record_release_refuses_while_exported(make_ring):
    producer, consumer = pair(make_ring())
    producer.send(b"12345678")
    rec = consumer.recv()
    array = np.frombuffer(rec, np.uint8)
    with pytest.raises(BufferError, match="still exported by 1 view"):
        rec.release()
    del array
    rec.release()
    with pytest.raises(ValueError, match="released"):
        memoryview(rec)
    with pytest.raises(RingEmpty):
        consumer.recv(timeout=0)


def test_record_context_manager_releases(make_ring):
    producer, consumer = pair(make_ring())
    producer.send(b"x")
    with consumer.recv() as rec:
        assert bytes(rec) == b"x"
    assert rec.released
    assert producer.stats()["fill_records"] == 0


def test_batch_api_round_trip(make_ring):
    producer, consumer = pair(make_ring(1 << 16))
    assert producer.send_many([i.to_bytes(4, "little") for i in range(1000)]) == 1000
    got = []
    while len(got) < 1000:
        got += [int.from_bytes(bytes(r), "little") for r in consumer.recv_many(300, timeout=1)]
    assert got == list(range(1000))
    with pytest.raises(ValueError, match="max_count must be >= 1"):
        consumer.recv_many(0)


def test_send_many_reports_how_many_went_on_timeout(make_ring):
    producer, _ = pair(make_ring(4096))
    with pytest.raises(RingFull) as info:
        producer.send_many([bytes(100)] * 100, timeout=0)
    assert info.value.sent == 4096 // 128


def test_close_gives_end_of_stream_after_draining(make_ring):
    producer, consumer = pair(make_ring())
    producer.send(b"last")
    producer.close()
    producer.close()  # idempotent
    assert bytes(consumer.recv(timeout=1)) == b"last"
    with pytest.raises(EndOfStream):
        consumer.recv(timeout=1)
    with pytest.raises(EndOfStream):
        consumer.recv_many(10)
    with pytest.raises(ClosedPort, match="was closed"):
        producer.send(b"more")


def test_consumer_close_breaks_the_producer(make_ring):
    producer, consumer = pair(make_ring())
    consumer.close()
    with pytest.raises(BrokenConnection, match="consumer closed"):
        producer.send(b"x")
    with pytest.raises(ClosedPort):
        consumer.recv(timeout=0)


def test_roles_are_enforced(make_ring):
    ring = make_ring()
    producer, consumer = pair(ring)
    with pytest.raises(FBPError, match="producer handle cannot receive"):
        producer.recv(timeout=0)
    with pytest.raises(FBPError, match="consumer handle cannot send"):
        consumer.send(b"x")
    with pytest.raises(ValueError, match="role must be"):
        Ring.attach(ring.name, "owner")
    observer = Ring.attach(ring.name, "observer")
    assert observer.stats()["capacity"] == ring.capacity


def test_attach_errors_are_clear(make_ring, tmp_path):
    with pytest.raises(FileNotFoundError):
        Ring.attach(fbp.ring.new_segment_name("missing"), "consumer")
    ring = make_ring()
    with pytest.raises(FileExistsError):
        Ring.create(4096, name=ring.name)
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        Ring.create(0)
    with pytest.raises(ValueError, match="not an fbp name.*new_segment_name"):
        Ring.create(4096, name="my-ring")


def test_a_non_ring_segment_is_refused():
    name = fbp.ring.new_segment_name("junk")
    with open(f"/dev/shm/{name}", "wb") as f:
        f.write(b"\0" * 16384)
    try:
        with pytest.raises(FBPError, match="not an fbp ring"):
            Ring.attach(name, "consumer")
    finally:
        os.unlink(f"/dev/shm/{name}")


def test_stats_count_packets_bytes_waits_and_fill(make_ring):
    ring = make_ring(4096)
    producer, consumer = pair(ring)
    producer.send(bytes(10))
    producer.send(bytes(30))
    consumer.recv()
    consumer.recv()
    with pytest.raises(RingEmpty):
        consumer.recv(timeout=0.01)
    stats = Ring.attach(ring.name, "observer").stats()
    assert stats["packets"] == 2 and stats["bytes"] == 40
    assert stats["packets_received"] == 2 and stats["bytes_received"] == 40
    assert stats["empty_waits"] == 1 and stats["full_waits"] == 0
    assert stats["fill_records"] == 0 and stats["fill_bytes"] == 0
    assert stats["owner_pid"] == os.getpid() and stats["capacity"] == 4096
    producer.send(bytes(100))
    assert ring.stats()["fill_bytes"] == 128 and ring.stats()["fill_records"] == 1


def test_large_frames_reuse_the_start_of_the_ring(make_ring):
    ring = make_ring(1 << 20, hot_reuse_min=64 * 1024)
    producer, consumer = pair(ring)
    addresses = set()
    for _ in range(20):
        producer.send(bytes(100_000))
        rec = consumer.recv()
        addresses.add(np.frombuffer(rec, np.uint8).__array_interface__["data"][0])
        del rec
    assert len(addresses) == 1  # every frame landed on the same, cache-hot bytes
    cold = make_ring(1 << 20, hot_reuse_min=0)
    producer, consumer = pair(cold)
    addresses = set()
    for _ in range(20):
        producer.send(bytes(100_000))
        addresses.add(np.frombuffer(consumer.recv(), np.uint8).__array_interface__["data"][0])
    assert len(addresses) == 10  # a plain FIFO byte ring marches through the segment


def test_records_outlive_their_ring_handle(make_ring):
    producer, consumer = pair(make_ring())
    producer.send(b"kept")
    rec = consumer.recv()
    consumer.close()
    del consumer
    gc.collect()
    assert bytes(rec) == b"kept"


def test_a_second_thread_is_refused_while_one_waits_and_close_stops_the_wait(make_ring):
    producer, consumer = pair(make_ring())
    outcome = []

    def wait_for_a_record():
        try:
            consumer.recv(timeout=10)
        except Exception as exc:  # noqa: BLE001 - the type is what we check
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_a_record)
    waiter.start()
    time.sleep(0.2)
    with pytest.raises(FBPError, match="another thread is blocked in this consumer handle"):
        consumer.recv(timeout=0)
    start = time.monotonic()
    consumer.close()  # the one call allowed from another thread: it ends the wait
    waiter.join(5)
    assert not waiter.is_alive() and time.monotonic() - start < 2
    assert len(outcome) == 1 and isinstance(outcome[0], ClosedPort)
    with pytest.raises(BrokenConnection):
        producer.send(b"x")


def test_a_replaced_consumer_handle_cannot_move_the_tail(make_ring):
    producer, old = pair(make_ring())
    for i in range(3):
        producer.send(bytes([i]))
    held = old.recv()
    new = Ring.attach(old.name, "consumer")  # takes over (same process: no liveness check)
    with pytest.raises(ClosedPort, match="newer consumer attached"):
        old.recv(timeout=0)
    held.release()  # late release by the stale handle: ignored
    assert producer.stats()["tail"] == 0
    assert [bytes(new.recv(timeout=0)) for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]
    assert producer.stats()["fill_records"] == 0


def test_a_corrupt_record_header_is_refused_not_read(make_ring):
    ring = make_ring(4096)
    producer, consumer = pair(ring)
    producer.send(b"fine")
    with open(f"/dev/shm/{ring.name}", "r+b") as segment:
        segment.seek(4096)  # first record header: uint64 length
        segment.write((1 << 40).to_bytes(8, "little"))
    with pytest.raises(FBPError, match="header at byte position 0 is impossible"):
        consumer.recv(timeout=0)
