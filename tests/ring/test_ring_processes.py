"""The ring between real processes: crashes (kill -9), closing, waiting, cleanup."""

from __future__ import annotations

import os
import pathlib
import resource
import signal
import threading
import time

import pytest

from fbp.errors import BrokenConnection, EndOfStream, FBPError, RingEmpty
from fbp.ring import Ring, remove_stale_segments, wait_any

SHM = pathlib.Path("/dev/shm")


def seq_of(record) -> int:
    return int.from_bytes(bytes(record)[:8], "little")


# -- crashes ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_new_consumer_sees_unreleased_records_again_after_kill_9(make_ring, peer):
    ring = make_ring(1 << 16)
    producer = Ring.attach(ring.name, "producer")
    for seq in range(20):
        producer.send(seq.to_bytes(8, "little") + b"payload")
    # The first consumer releases records 0-4 and 6-9 but still holds 5 when it dies.
    first = peer("consume-hold", ring.name, 10, "[0, 1, 2, 3, 4, 6, 7, 8, 9]")
    assert first.read()["seqs"] == list(range(10))
    with pytest.raises(FBPError, match=f"held by live process {first.pid}"):
        Ring.attach(ring.name, "consumer")
    first.kill()
    # The rule: a new consumer starts at the oldest record not released, so 5 comes
    # back, and so do 6-9 (released after 5, so the tail could not pass them yet).
    second = Ring.attach(ring.name, "consumer")
    assert [seq_of(second.recv(timeout=1)) for _ in range(15)] == list(range(5, 20))
    with pytest.raises(RingEmpty):
        second.recv(timeout=0)
    stats = ring.stats()
    assert stats["consumer_attaches"] == 2
    # redelivered records count once as freed, however often they were released
    assert stats["packets_released"] == 20 and stats["fill_records"] == 0
    assert stats["packets_received"] == 25  # 10 + 15: deliveries, duplicates included


@pytest.mark.timeout(60)
def test_consumer_killed_mid_stream_loses_nothing(make_ring, peer):
    """A busy stream; the consumer dies at a random moment; its successor continues."""
    count = 200_000
    ring = make_ring(64 * 1024)
    first = peer("consume-log", ring.name, 0.01, 7)
    assert first.read()["ready"]
    producer = peer("produce", ring.name, count, 5, 4096, 0.0)
    logged = []
    deadline = time.monotonic() + 30
    while len(logged) < 20_000 and time.monotonic() < deadline:
        logged.append(int(first.readline()))
    first.kill()
    try:  # lines it wrote before dying may still be in the pipe
        while True:
            logged.append(int(first.readline(timeout=5)))
    except EOFError:
        pass
    assert logged == list(range(len(logged)))
    second = Ring.attach(ring.name, "consumer")
    got = []
    try:
        while True:
            for rec in second.recv_many(64, timeout=30):
                if len(rec) >= 8:
                    got.append(seq_of(rec))
    except EndOfStream:
        pass
    assert producer.read()["sent"] == count
    if not got:  # (a slow machine: the first consumer got through everything in time)
        assert logged == list(range(count))
        return
    # at-least-once: the successor starts at or before the first record not logged as
    # released, and from there everything arrives once, in order
    assert got[0] <= len(logged)
    assert got == list(range(got[0], count))


@pytest.mark.timeout(60)
def test_producer_killed_between_reserve_and_commit_leaves_nothing_visible(make_ring, peer):
    ring = make_ring(1 << 16)
    consumer = Ring.attach(ring.name, "consumer")
    dying = peer("reserve-and-hang", ring.name, 3)
    assert dying.read()["ready"]
    dying.kill()
    assert [seq_of(consumer.recv(timeout=1)) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(RingEmpty):
        consumer.recv(timeout=0.2)
    # A restarted producer continues where the committed records end.
    successor = Ring.attach(ring.name, "producer")
    successor.send(b"next")
    assert bytes(consumer.recv(timeout=1)) == b"next"


@pytest.mark.timeout(60)
def test_owner_killed_then_fbp_doctor_leaves_dev_shm_clean(peer, run_fbp, make_ring):
    live = make_ring(4096)  # owned by this (live) process: doctor must keep it
    orphan_owner = peer("own", 8192)
    name = orphan_owner.read()["name"]
    assert (SHM / name).exists()
    # The owner is also the producer; a consumer attached, then the owner dies.
    consumer = Ring.attach(name, "consumer")
    assert bytes(consumer.recv(timeout=1)) == b"orphan"
    orphan_owner.kill()
    del consumer
    listing = run_fbp("doctor", "--dry-run")
    assert listing.returncode == 1
    assert name in listing.stdout and "owner dead: stale" in listing.stdout
    assert (SHM / name).exists()
    cleaned = run_fbp("doctor")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"{name}" in cleaned.stdout and "removed" in cleaned.stdout
    assert not (SHM / name).exists()
    assert (SHM / live.name).exists()
    assert "owner alive" in cleaned.stdout


def test_doctor_reports_an_empty_dev_shm(run_fbp):
    out = run_fbp("doctor", check=True).stdout
    assert "no fbp shared-memory segments" in out


def test_remove_stale_segments_removes_only_dead_owners(peer, make_ring):
    live = make_ring(4096)
    owner = peer("own", 4096)
    name = owner.read()["name"]
    owner.kill()
    assert remove_stale_segments() == [name]
    assert remove_stale_segments() == []
    assert (SHM / live.name).exists() and not (SHM / name).exists()


@pytest.mark.timeout(60)
def test_killed_peers_leave_nothing_once_the_owner_unlinks(peer):
    ring = Ring.create(1 << 16)
    try:
        producer = peer("produce", ring.name, 10_000_000, 1, 1024, 0.0)
        consumer = peer("consume-log", ring.name, 0.0, 1)
        assert consumer.read()["ready"]
        consumer.readline()
        producer.kill()
        consumer.kill()
    finally:
        ring.unlink()
    assert not (SHM / ring.name).exists()


# -- closing wakes the peer, timeouts, idle CPU -----------------------------------------


@pytest.mark.timeout(30)
def test_producer_close_wakes_a_blocked_consumer_with_end_of_stream(make_ring, peer):
    ring = make_ring()
    producer = Ring.attach(ring.name, "producer")
    blocked = peer("block-recv", ring.name, "null")  # timeout=None: waits forever
    assert blocked.read()["ready"]
    time.sleep(0.3)
    producer.close()
    result = blocked.read()
    assert result["outcome"] == "EndOfStream"
    assert result["seconds"] < 5


@pytest.mark.timeout(30)
def test_consumer_close_wakes_a_blocked_producer_with_broken_connection(make_ring, peer):
    ring = make_ring(4096)
    consumer = Ring.attach(ring.name, "consumer")
    blocked = peer("block-send", ring.name, "null")
    assert blocked.read()["filled"] == 4096 // 128
    time.sleep(0.3)
    consumer.close()
    result = blocked.read()
    assert result["outcome"] == "BrokenConnection" and result["seconds"] < 5


@pytest.mark.timeout(30)
def test_blocked_consumer_receives_a_late_record(make_ring, peer):
    ring = make_ring()
    producer = Ring.attach(ring.name, "producer")
    blocked = peer("block-recv", ring.name, "5")
    assert blocked.read()["ready"]
    time.sleep(0.3)
    producer.send(b"late")
    assert blocked.read()["outcome"] == "record:late"


@pytest.mark.timeout(30)
def test_idle_waiting_costs_almost_no_cpu(make_ring, peer):
    ring = make_ring()
    Ring.attach(ring.name, "producer")  # a live producer that never sends
    waiting = peer("block-recv", ring.name, "1.0")
    assert waiting.read()["ready"]
    result = waiting.read()
    assert result["outcome"] == "RingEmpty"
    assert 0.99 <= result["seconds"] < 3
    # one bounded spin (<= 50 us), then asleep in the kernel: far below 1 % of a core
    assert result["cpu"] < 0.01, f"waiting 1 s used {result['cpu'] * 1000:.1f} ms of CPU"


@pytest.mark.timeout(30)
def test_idle_full_producer_costs_almost_no_cpu(make_ring, peer):
    ring = make_ring(4096)
    Ring.attach(ring.name, "consumer")
    waiting = peer("block-send", ring.name, "1.0")
    assert waiting.read()["ready"]
    result = waiting.read()
    assert result["outcome"] == "RingFull" and 0.99 <= result["seconds"] < 3
    assert result["cpu"] < 0.01


class Interrupted(Exception):
    pass


def _interrupt(signum, frame):
    raise Interrupted(signum)


@pytest.mark.timeout(30)
def test_signals_are_handled_while_waiting(make_ring):
    """A Python signal handler runs during a blocking recv (as Ctrl-C's would)."""
    ring = make_ring()
    consumer = Ring.attach(ring.name, "consumer")
    # An explicit handler: SIGINT may be ignored when the suite runs in the background.
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        start = time.monotonic()
        with pytest.raises(Interrupted):
            consumer.recv(timeout=10)
        assert time.monotonic() - start < 5
    finally:
        timer.join()
        signal.signal(signal.SIGUSR1, previous)


# -- waiting on several rings ----------------------------------------------------------


@pytest.mark.timeout(30)
def test_wait_any_wakes_a_fan_in_consumer_for_the_ring_that_got_data(make_ring, peer):
    rings = [make_ring(4096) for _ in range(3)]
    consumers = [Ring.attach(r.name, "consumer") for r in rings]
    sender = peer("send-later", rings[1].name, 0.5, "hello")
    assert sender.read()["ready"]
    cpu_before = resource.getrusage(resource.RUSAGE_THREAD)
    start = time.monotonic()
    ready = wait_any(consumers, timeout=10)
    waited = time.monotonic() - start
    cpu_after = resource.getrusage(resource.RUSAGE_THREAD)
    assert ready == [consumers[1]]
    assert 0.3 < waited < 5
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    assert cpu < 0.02, f"wait_any burnt {cpu * 1000:.1f} ms CPU while waiting {waited:.2f} s"
    assert bytes(consumers[1].recv(timeout=0)) == b"hello"
    # the sender closed: its ring stays ready (recv raises EndOfStream, never blocks)
    assert wait_any(consumers, timeout=5) == [consumers[1]]
    with pytest.raises(EndOfStream):
        consumers[1].recv(timeout=0)


def test_wait_any_times_out_with_an_empty_list(make_ring):
    consumers = [Ring.attach(make_ring(4096).name, "consumer") for _ in range(2)]
    assert wait_any(consumers, timeout=0) == []
    start = time.monotonic()
    assert wait_any(consumers, timeout=0.2) == []
    assert time.monotonic() - start >= 0.2


@pytest.mark.timeout(30)
def test_wait_any_wakes_a_producer_when_any_worker_ring_has_space(make_ring, peer):
    rings = [make_ring(4096) for _ in range(2)]
    producers = [Ring.attach(r.name, "producer") for r in rings]
    for producer in producers:
        producer.send_many([bytes(1000)] * 4, timeout=0)  # 4 x 1024 bytes: full
    assert wait_any(producers, timeout=0, nbytes=1000) == []
    drainer = peer("drain-later", rings[0].name, 0.4)
    assert drainer.read()["ready"]
    start = time.monotonic()
    assert wait_any(producers, timeout=10, nbytes=1000) == [producers[0]]
    assert time.monotonic() - start > 0.2
    producers[0].send(bytes(1000), timeout=0)
    assert drainer.read()["drained"] >= 1


def test_wait_any_rejects_ambiguous_handles(make_ring):
    with pytest.raises(ValueError, match="both or neither"):
        wait_any([make_ring(4096)], timeout=0)
    with pytest.raises(ValueError, match="at least one ring"):
        wait_any([], timeout=0)


def test_wait_any_also_works_past_the_futex_waitv_limit(make_ring):
    rings = [make_ring(4096) for _ in range(130)]
    consumers = [Ring.attach(r.name, "consumer") for r in rings]
    Ring.attach(rings[129].name, "producer").send(b"x")
    assert wait_any(consumers, timeout=5) == [consumers[129]]


@pytest.mark.timeout(30)
def test_owner_shutdown_wakes_both_sides(make_ring, peer):
    ring = make_ring(4096)
    blocked_consumer = peer("block-recv", ring.name, "null")
    assert blocked_consumer.read()["ready"]
    time.sleep(0.2)
    ring.shutdown()
    assert blocked_consumer.read()["outcome"] == "EndOfStream"
    producer = Ring.attach(ring.name, "producer")
    with pytest.raises(BrokenConnection):
        producer.send(b"x", timeout=0)


@pytest.mark.timeout(30)
def test_a_dead_unreaped_consumer_does_not_block_a_takeover(make_ring, peer):
    ring = make_ring()
    Ring.attach(ring.name, "producer").send(b"\x00" * 8)
    first = peer("consume-hold", ring.name, 1, "[]")
    assert first.read()["ready"]
    os.kill(first.pid, 9)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait until it is a zombie, but do not reap it
        state = pathlib.Path(f"/proc/{first.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.01)
    assert state == "Z"
    successor = Ring.attach(ring.name, "consumer")  # the supervisor closing a dead child's end
    assert bytes(successor.recv(timeout=1)) == b"\x00" * 8


@pytest.mark.timeout(120)
def test_a_busy_producer_and_a_releasing_consumer_never_lose_a_wake_up(make_ring, peer):
    """Regression: a waiter that raised its flag before reading the futex word could sleep
    forever when the other side cleared the flag and bumped the word in between. This
    pattern (small ring, consumer releasing one record at a time) hung ~1 run in 8."""
    for trial in range(24):
        ring = make_ring(64 * 1024)
        consumer = peer("consume-log", ring.name, 0.01, trial)
        assert consumer.read()["ready"]
        peer("produce", ring.name, 1_000_000, trial, 4096, 0.0)
        for expected in range(20_000):
            # a lost wake-up stalls both sides (the producer waits without a timeout)
            assert int(consumer.readline(timeout=10)) == expected, f"trial {trial}"
        consumer.kill()
        ring.shutdown()
