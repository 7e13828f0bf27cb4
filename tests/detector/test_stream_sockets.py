"""Stream server, receiver and tee over real ZeroMQ sockets (ipc:// and tcp://127.0.0.1)."""

import threading
import time

import numpy as np
import pytest
from fbp_components.detector.messages import Image, SeriesEnd, SeriesStart
from fbp_components.detector.receiver import StreamReceiver
from fbp_components.detector.server import StreamServer
from fbp_components.detector.simulate import DetectorSimulator
from fbp_components.detector.tee import StreamTee


@pytest.fixture(scope="module")
def sim():
    return DetectorSimulator("eiger2-500k", seed=3, hit_rate=0.5)


def collect(receiver, until_end=True, timeout=10.0):
    """Events until a SeriesEnd (or `timeout` s with nothing)."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = receiver.receive(0.1)  # [] after a timeout or a skipped malformed message
        events += got
        if got and until_end and isinstance(got[-1], SeriesEnd):
            break
    return events


def endpoint(kind, tmp_path, name="det"):
    return f"ipc://{tmp_path}/{name}" if kind == "ipc" else "tcp://127.0.0.1:*"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "protocol, compression, kind",
    [
        ("v2", "bslz4", "tcp"),
        ("v2", "lz4", "ipc"),
        ("v1", "bslz4", "ipc"),
        ("v1", "lz4", "tcp"),
        ("v1", None, "ipc"),
    ],
)
def test_simulated_series_arrives_bit_identical(sim, tmp_path, protocol, compression, kind):
    with (
        StreamServer(
            endpoint(kind, tmp_path), protocol=protocol, compression=compression
        ) as server,
        StreamReceiver(server.endpoint, protocol="auto") as receiver,
    ):
        sender = threading.Thread(
            target=server.send_series,
            args=(6, lambda i: sim.frame(i)[0]),
            kwargs={"series_id": 5, "info": sim.series_info(), "timeout": 10},
        )
        sender.start()
        events = collect(receiver)
        sender.join(10)
    assert isinstance(events[0], SeriesStart) and events[0].seen and events[0].series_id == 5
    images = [e for e in events if isinstance(e, Image)]
    assert [e.image_id for e in images] == list(range(6))
    for image in images:
        assert np.array_equal(image.channels["threshold_1"].decode(), sim.frame(image.image_id)[0])
    assert isinstance(events[-1], SeriesEnd) and events[-1].series_id == 5
    assert receiver.stats().get("malformed", 0) == 0


@pytest.mark.timeout(60)
def test_malformed_messages_are_counted_and_skipped(sim, tmp_path):
    with (
        StreamServer(endpoint("ipc", tmp_path), protocol="v2") as server,
        StreamReceiver(server.endpoint) as receiver,
    ):
        unique = "u1"
        server.send(server.start_message(1, unique, sim.series_info()))
        server.send(b"\xff\x00 garbage")
        server.send(server.image_message(1, unique, 0, sim.frame(0)[0]))
        server.send([b'{"htype": "dimage-1.0"}'])  # V1 header with nothing behind it
        server.send(server.image_message(1, unique, 1, sim.frame(1)[0]))
        server.send(server.end_message(1, unique))
        events = collect(receiver)
    assert [type(e).__name__ for e in events] == ["SeriesStart", "Image", "Image", "SeriesEnd"]
    stats = receiver.stats()
    assert stats["malformed"] == 2 and stats["messages"] == 6
    assert "not valid CBOR" in stats["last_errors"][0]
    assert "needs 4 parts" in stats["last_errors"][1]


@pytest.mark.timeout(60)
def test_receiver_joining_mid_series_and_a_missing_end(sim, tmp_path):
    with (
        StreamServer(endpoint("ipc", tmp_path), protocol="v2") as server,
        StreamReceiver(server.endpoint) as receiver,
    ):
        for image_id in (3, 4):  # the start went to nobody
            server.send(server.image_message(1, "a", image_id, sim.frame(image_id)[0]))
        server.send(server.start_message(2, "b", {}))  # series 1 never ended
        server.send(server.image_message(2, "b", 0, sim.frame(0)[0]))
        events = []
        while len(events) < 6:
            got = receiver.receive(10)
            assert got, "timed out"
            events += got
        events += receiver.close()
    kinds = [(type(e).__name__, e.series_id) for e in events]
    assert kinds == [
        ("SeriesStart", 1),
        ("Image", 1),
        ("Image", 1),
        ("SeriesEnd", 1),
        ("SeriesStart", 2),
        ("Image", 2),
        ("SeriesEnd", 2),
    ]
    assert events[0].seen is False and events[3].info == {"missing": True}
    assert receiver.tracker.counts["missing_start"] == 1
    assert receiver.tracker.counts["missing_end"] == 2


@pytest.mark.timeout(60)
def test_tee_gives_every_message_to_every_consumer(sim, tmp_path):
    outputs = [f"ipc://{tmp_path}/out{i}" for i in range(2)]
    with (
        StreamServer(endpoint("ipc", tmp_path), protocol="v2") as server,
        StreamTee(server.endpoint, outputs) as tee,
        StreamReceiver(outputs[0]) as first,
        StreamReceiver(outputs[1]) as second,
    ):
        stop = threading.Event()
        pump = threading.Thread(target=tee.run, args=(stop,))
        pump.start()
        sender = threading.Thread(
            target=server.send_series, args=(5, lambda i: sim.frame(i)[0]), kwargs={"timeout": 10}
        )
        sender.start()
        try:
            got = [collect(first), collect(second)]
        finally:
            sender.join(10)
            stop.set()
            pump.join(10)
    for events in got:
        assert [type(e).__name__ for e in events] == ["SeriesStart"] + ["Image"] * 5 + ["SeriesEnd"]
        assert np.array_equal(events[3].channels["threshold_1"].decode(), sim.frame(2)[0])
    assert tee.counts["received"] == 7
    assert all(tee.counts[f"sent:{o}"] == 7 for o in outputs)


@pytest.mark.timeout(60)
def test_lossy_tee_output_drops_and_counts_instead_of_blocking(sim, tmp_path):
    outputs = [f"ipc://{tmp_path}/reliable", f"ipc://{tmp_path}/viewer"]
    with (
        StreamServer(endpoint("ipc", tmp_path), protocol="v2") as server,
        StreamTee(server.endpoint, outputs, lossy=[outputs[1]], hwm=2) as tee,
        StreamReceiver(outputs[0]) as reliable,
    ):
        # Nobody connects to the viewer output: a PUSH with no peer cannot queue, so every
        # message to it is dropped; the reliable consumer still gets everything.
        sender = threading.Thread(
            target=server.send_series, args=(4, lambda i: sim.frame(i)[0]), kwargs={"timeout": 10}
        )
        sender.start()
        for _ in range(6):
            assert tee.pump(10.0)
        events = collect(reliable)
        sender.join(10)
    assert len(events) == 6 and tee.counts[f"dropped:{outputs[1]}"] == 6


def test_bad_arguments():
    with pytest.raises(ValueError, match="protocol must be one of auto, v1, v2, got 'v3'"):
        StreamReceiver("tcp://127.0.0.1:1", protocol="v3")
    with pytest.raises(ValueError, match="compression must be 'bslz4', 'lz4' or None"):
        StreamServer("tcp://127.0.0.1:*", compression="gzip")
    with pytest.raises(ValueError, match="at least one output"):
        StreamTee("tcp://127.0.0.1:1", [])
