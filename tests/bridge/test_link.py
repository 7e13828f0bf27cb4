"""Bridge links with real processes, rings and ZeroMQ sockets: order, integrity, link cuts.

Records carry a sequence number and a CRC; the consumer at the far end checks every one
arrives once, in order, intact. The link-cut test uses two network namespaces joined by a
veth pair (10.200.0.0/24, existing only inside them) and takes the link down for 4 s.
The back-pressure tests use rings far smaller than what crosses them, records large enough
to take the zero-copy path, and a consumer that stops for longer than a resend period.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fbp.bridge.link import RESEND_AFTER, ZERO_COPY_MIN, LinkReceiver, LinkSender
from fbp.errors import EndOfStream, RingEmpty
from fbp.ring import Ring

RECORDS = 20_000


def _payload(seq: int) -> bytes:
    body = struct.pack("<Q", seq) + bytes((seq * 7 + i) % 251 for i in range(56 + seq % 200))
    return body + struct.pack("<I", zlib.crc32(body))


def _sized_payload(seq: int, size: int) -> bytes:
    """`size` bytes: the seq, bytes that differ per seq, and a CRC of both."""
    body = struct.pack("<Q", seq) + random.Random(seq).randbytes(max(size - 12, 0))
    return body + struct.pack("<I", zlib.crc32(body))


def _produce(
    ring_name: str, count: int, pace: float = 0.0, sizes=None, pace_every=100, patience=30.0
) -> None:
    producer = Ring.attach(ring_name, "producer")
    for seq in range(count):
        payload = _payload(seq) if sizes is None else _sized_payload(seq, sizes[seq])
        producer.send(payload, patience)
        if pace and seq % pace_every == 0:
            time.sleep(pace)
    producer.close()


def _consume(ring_name: str, seen: list, timeout: float, pause_at=None, pause=0.0) -> None:
    consumer = Ring.attach(ring_name, "consumer")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(seen) == pause_at:
            time.sleep(pause)  # the ring fills up behind us: back-pressure across the link
        try:
            with consumer.recv(1.0) as record:
                data = bytes(record)
        except RingEmpty:
            continue
        except EndOfStream:
            break
        body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
        seen.append((struct.unpack("<Q", body[:8])[0], zlib.crc32(body) == crc))
    consumer.close()


def _bridge(role: str, ring: Ring, endpoint: str, namespace: str | None = None):
    command = [sys.executable, "-P", "-m", "fbp.bridge", role, ring.name, endpoint]
    command += ["--peer-timeout", "2"]
    if namespace:
        command = ["ip", "netns", "exec", namespace, *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _loopback_endpoint() -> str:
    """A free loopback port: a fixed one collides with the same tests run from another
    checkout on this machine, and then one sender feeds the other's receiver."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _check(seen: list, count: int) -> None:
    assert [seq for seq, _ in seen] == list(range(count)), "lost, duplicated or reordered"
    assert all(intact for _, intact in seen), "corrupted payload"


def _run(
    endpoint_bind,
    endpoint_connect,
    count,
    namespaces=(None, None),
    during=None,
    pace=0.002,
    sizes=None,
    capacities=(1 << 20, 1 << 20),
    pause_at=None,
    pause=0.0,
    pace_every=100,
    source_hot_reuse=True,
    patience=90.0,
):
    source = Ring.create(capacities[0], **({} if source_hot_reuse else {"hot_reuse_min": 0}))
    target = Ring.create(capacities[1])
    seen: list = []
    try:
        receiver = _bridge("receive", target, endpoint_bind, namespaces[1])
        sender = _bridge("send", source, endpoint_connect, namespaces[0])
        producer = threading.Thread(
            target=_produce,
            args=(source.name, count, pace, sizes, pace_every, min(patience, 30.0)),
        )
        consumer = threading.Thread(
            target=_consume, args=(target.name, seen, patience, pause_at, pause)
        )
        producer.start()
        consumer.start()
        if during:
            during(sender)
        producer.join(patience)
        consumer.join(patience)
        out_s, err_s = sender.communicate(timeout=30)
        if sender.returncode != 0:
            receiver.terminate()  # its end of stream will never come
        out_r, err_r = receiver.communicate(timeout=30)
    finally:
        for process in ("sender", "receiver"):
            proc = locals().get(process)
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
        for ring in (source, target):
            ring.close()
            ring.unlink()
    assert sender.returncode == 0 and receiver.returncode == 0, err_s + err_r
    return seen, json.loads(out_s), json.loads(out_r), err_s + err_r


@pytest.mark.timeout(120)
def test_records_cross_in_order_intact_once(tmp_path):
    endpoint = _loopback_endpoint()
    seen, sent, received, _ = _run(endpoint, endpoint, RECORDS)
    _check(seen, RECORDS)
    assert sent["sent"] == RECORDS and received["received"] == RECORDS + 1  # + end of stream


def _root_with_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.fixture
def two_hosts():
    """Two network namespaces linked by a veth pair: 10.200.0.1 and 10.200.0.2."""
    if not _root_with_netns():
        pytest.skip("needs root and iproute2 to make network namespaces")
    tag = uuid.uuid4().hex[:6]
    a, b = f"fbpa{tag}", f"fbpb{tag}"
    va, vb = f"va{tag}", f"vb{tag}"
    commands = [
        ["ip", "netns", "add", a],
        ["ip", "netns", "add", b],
        ["ip", "link", "add", va, "type", "veth", "peer", "name", vb],
        ["ip", "link", "set", va, "netns", a],
        ["ip", "link", "set", vb, "netns", b],
        ["ip", "-n", a, "addr", "add", "10.200.0.1/24", "dev", va],
        ["ip", "-n", b, "addr", "add", "10.200.0.2/24", "dev", vb],
        ["ip", "-n", a, "link", "set", va, "up"],
        ["ip", "-n", b, "link", "set", vb, "up"],
        ["ip", "-n", a, "link", "set", "lo", "up"],
        ["ip", "-n", b, "link", "set", "lo", "up"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)
        pytest.skip(f"cannot make network namespaces here: {exc.stderr.decode().strip()}")
    yield {"a": a, "b": b, "va": va, "vb": vb}
    subprocess.run(["ip", "netns", "del", a], capture_output=True)
    subprocess.run(["ip", "netns", "del", b], capture_output=True)


@pytest.mark.timeout(180)
def test_a_link_cut_for_four_seconds_loses_and_duplicates_nothing(two_hosts):
    def cut(_sender) -> None:
        time.sleep(1.5)
        subprocess.run(
            ["ip", "-n", two_hosts["a"], "link", "set", two_hosts["va"], "down"], check=True
        )
        time.sleep(4.0)
        subprocess.run(
            ["ip", "-n", two_hosts["a"], "link", "set", two_hosts["va"], "up"], check=True
        )

    seen, sent, received, err = _run(
        "tcp://10.200.0.2:7100",
        "tcp://10.200.0.2:7100",
        RECORDS,
        namespaces=(two_hosts["a"], two_hosts["b"]),
        during=cut,
        pace=0.05,  # 100 records every 50 ms: about 10 s, so the cut falls mid-stream
    )
    _check(seen, RECORDS)
    assert sent["sent"] == RECORDS
    assert sent["resent"] > 0  # in flight during the cut, sent again (the far end drops repeats)
    assert "silent" in err  # the cut was noticed and reported


@pytest.mark.timeout(60)
def test_large_records_survive_a_cut_on_the_receiving_side(two_hosts):
    # 300 records of 512 KiB - 1 MiB, up to 100 a second, and the receiving host's end of
    # the link down for 4 s mid-stream. The sender goes on reading its 64 MiB ring up to
    # its credit (WINDOW records) and sends everything in flight again every RESEND_AFTER,
    # so ZeroMQ's queue on the sending side (2 * WINDOW) is full after the first resend:
    # every later send there (data, resends, heartbeats) is refused with zmq.Again, which
    # once killed the sender. The source ring is plain FIFO: with hot reuse, a record
    # placed back at the start after an ack pads the rest of the lap until the records
    # before it are acknowledged, so how many fit during the cut would depend on where
    # the last ack fell (docs/ring.md, "Large frames").
    count = 300
    sizes = [(512 << 10) + (seq * 7919) % (512 << 10) for seq in range(count)]
    alive_after_cut = []

    def cut(sender) -> None:
        time.sleep(1.5)
        link = ["ip", "-n", two_hosts["b"], "link", "set", two_hosts["vb"]]
        subprocess.run([*link, "down"], check=True)
        time.sleep(4.0)
        subprocess.run([*link, "up"], check=True)
        alive_after_cut.append(sender.poll() is None)

    seen, sent, received, err = _run(
        "tcp://10.200.0.2:7101",
        "tcp://10.200.0.2:7101",
        count,
        namespaces=(two_hosts["a"], two_hosts["b"]),
        during=cut,
        pace=0.01,
        pace_every=1,
        sizes=sizes,
        capacities=(64 << 20, 64 << 20),
        source_hot_reuse=False,
        patience=20.0,  # the stream takes ~10 s; a dead sender fails the test in ~25 s
    )
    _check(seen, count)
    assert alive_after_cut == [True], "the sender died while its link was down"
    assert sent["sent"] == count and received["received"] == count + 1
    assert sent["refused"] > 0  # ZeroMQ's queue really was full during the cut
    assert sent["resent"] > 0  # what was in flight went again; the far end dropped repeats
    assert "silent" in err  # the cut was noticed and reported


@pytest.mark.timeout(120)
def test_large_records_cross_zero_copy_under_back_pressure():
    # 2 MiB rings, records up to 1 MiB (most above the zero-copy threshold): both rings
    # fill up, the producer waits for acks, and the consumer stops for longer than a
    # resend period while the receiving ring is full.
    sizes = [(100, ZERO_COPY_MIN, 300_000, 1 << 20)[seq % 4] + seq for seq in range(400)]
    endpoint = _loopback_endpoint()
    seen, sent, received, _ = _run(
        endpoint,
        endpoint,
        len(sizes),
        pace=0,
        sizes=sizes,
        capacities=(2 << 20, 2 << 20),
        pause_at=150,
        pause=2.5 * RESEND_AFTER,
    )
    _check(seen, len(sizes))
    assert sent["sent"] == len(sizes) and received["received"] == len(sizes) + 1
    # the sender knew the far end was alive and waiting for ring space, so it sent
    # nothing again: back-pressure is not mistaken for loss
    assert sent["resent"] == 0 and received["duplicates"] == 0


def _link_in_process(sizes, capacities, pause_at=None, pause=0.0, peer_timeout=5.0, reports=None):
    """Producer -> ring -> LinkSender -> loopback TCP -> LinkReceiver -> ring -> consumer,
    each in a thread of this process; returns what the consumer saw and the two links.
    Link events go to `reports` as (end, text)."""
    events = [] if reports is None else reports
    source, target = Ring.create(capacities[0]), Ring.create(capacities[1])
    seen: list = []
    links: dict = {}
    failures: list = []
    bound = threading.Event()

    def receive() -> None:
        link = LinkReceiver(
            Ring.attach(target.name, "producer"),
            "tcp://127.0.0.1:*",
            peer_timeout=peer_timeout,
            report=lambda text: events.append(("receiver", text)),
            keep_freed_memory=False,
        )
        links["receiver"] = link
        bound.set()
        try:
            deadline = time.monotonic() + 60
            while not link.ended and time.monotonic() < deadline:
                link.step(0.01)
            for _ in range(20):  # the last acknowledgements
                link.step(0.01)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            link.close()
            link.ring.close()

    def send() -> None:
        bound.wait(10)
        link = LinkSender(
            Ring.attach(source.name, "consumer"),
            links["receiver"].endpoint,
            peer_timeout=peer_timeout,
            report=lambda text: events.append(("sender", text)),
        )
        links["sender"] = link
        try:
            deadline = time.monotonic() + 60
            while not link.done() and time.monotonic() < deadline:
                link.step(0.01)
        except BaseException as exc:
            failures.append(exc)
        finally:
            link.close()
            link.ring.close()

    threads = [
        threading.Thread(target=receive),
        threading.Thread(target=send),
        threading.Thread(target=_produce, args=(source.name, len(sizes), 0.0, sizes)),
    ]
    try:
        for thread in threads:
            thread.start()
        _consume(target.name, seen, 60, pause_at, pause)
        for thread in threads:
            thread.join(60)
    finally:
        for ring in (source, target):
            ring.close()
            ring.unlink()
    assert not failures, failures
    return seen, links["sender"], links["receiver"]


@pytest.mark.timeout(300)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    sizes=st.lists(
        st.one_of(
            st.integers(12, 400),
            st.integers(ZERO_COPY_MIN - 16, ZERO_COPY_MIN + 16),
            st.integers(100_000, 600_000),
        ),
        min_size=1,
        max_size=150,
    ),
    target_capacity=st.sampled_from([1 << 20, 2 << 20, 8 << 20]),
    pause_at=st.integers(0, 150),
)
def test_any_record_sizes_cross_once_in_order_intact(sizes, target_capacity, pause_at):
    # rings of 1-8 MiB against up to ~90 MiB of records, and a consumer that stops for a
    # moment: back-pressure engages on both sides; acks are coalesced for small records
    # and sent per record for large ones
    seen, sender, receiver = _link_in_process(
        sizes, (1 << 20, target_capacity), pause_at=pause_at, pause=0.2
    )
    _check(seen, len(sizes))
    assert sender.sent == len(sizes) and sender.acked == len(sizes)  # + EOF at seq len
    assert receiver.received == len(sizes) + 1 and receiver.duplicates == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([b"D", msgpack.packb({"seq": 0, "kind": 0}), b"abc"], "must hold seq, kind, size"),
        ([b"D", msgpack.packb({"seq": 0, "kind": 0, "size": 3, "ack_bytes": 4})], "no payload"),
        (
            [b"D", msgpack.packb({"seq": 0, "kind": 0, "size": 5, "ack_bytes": 4}), b"abc"],
            "header said 5 bytes but its payload has 3",
        ),
    ],
)
def test_a_receiver_refuses_messages_of_another_link_version(parts, message):
    # the receiver reserves ring space from the header's size, so a sender that speaks
    # another version must fail clearly, not with a KeyError or a truncated record
    ring = Ring.create(1 << 20)
    context = zmq.Context()
    receiver = LinkReceiver(
        Ring.attach(ring.name, "producer"),
        "tcp://127.0.0.1:*",
        context=context,
        keep_freed_memory=False,
    )
    sender = context.socket(zmq.DEALER)
    try:
        sender.connect(receiver.endpoint)
        sender.send_multipart(parts)
        with pytest.raises(ValueError, match=message):
            for _ in range(250):
                receiver.step(0.02)
        assert receiver.received == 0
    finally:
        sender.close(0)
        receiver.close()
        receiver.ring.close()
        context.term()
        ring.close()
        ring.unlink()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("constant", [True, False], ids=["constant-messages", "zmq-frames"])
def test_both_zero_copy_sends_deliver_every_record_intact(constant, monkeypatch):
    # The link hands libzmq ring memory as constant messages where it can reach pyzmq's
    # libzmq, else as zmq.Frames; both must give the same stream. 1 MiB rings against
    # ~60 MiB of records: slots are reused many times while ZeroMQ still has messages.
    from fbp.bridge import link as link_module

    assert link_module._CONSTANT_SEND  # this machine's pyzmq: the fast path is the default
    monkeypatch.setattr(link_module, "_CONSTANT_SEND", constant)
    sizes = [(ZERO_COPY_MIN, 200_000, 500_000)[seq % 3] + seq for seq in range(240)]
    seen, sender, receiver = _link_in_process(sizes, (1 << 20, 1 << 20))
    _check(seen, len(sizes))
    assert (sender._constant is not None) is constant
    assert sender.sent == len(sizes) and receiver.duplicates == 0


@pytest.mark.timeout(60)
def test_a_receiver_waiting_for_its_ring_does_not_call_the_sender_silent():
    # The consumer stops for 3 peer timeouts with both rings full: the receiver reads
    # nothing meanwhile (back-pressure), so it hears no heartbeat, but the sender is alive.
    reports: list = []
    sizes = [200_000 + seq for seq in range(60)]
    seen, sender, receiver = _link_in_process(
        sizes, (1 << 20, 1 << 20), pause_at=10, pause=3.0, peer_timeout=1.0, reports=reports
    )
    _check(seen, len(sizes))
    assert reports == []
    assert sender.resent == 0 and receiver.duplicates == 0
