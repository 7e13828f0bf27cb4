"""The detector components, run in-process with fbp.testing and as real networks (fbp run)."""

import threading

import h5py
import numpy as np
import pytest
from fbp_components.detector import ReadHDF5, Simulate, StreamReceiver
from fbp_components.detector.server import StreamServer
from fbp_components.detector.simulate import DetectorSimulator, FrameTruth

from fbp.packet import PacketKind
from fbp.testing import run_component


def test_simulate_sends_a_bracketed_series_with_truth_in_metadata():
    result = run_component(
        Simulate, config={"FRAMES": "4", "MODEL": "eiger2-500k", "SEED": "5", "HIT_RATE": "0.5"}
    )
    packets = result.outputs["OUT"]
    assert [p.kind for p in packets] == [PacketKind.OPEN] + [PacketKind.DATA] * 4 + [
        PacketKind.CLOSE
    ]
    assert packets[0].value["image_size_x"] == 1028 and packets[0].value["number_of_images"] == 4
    assert packets[-1].value == {"frames": 4}
    reference = DetectorSimulator("eiger2-500k", seed=5, hit_rate=0.5)
    for packet in packets[1:-1]:
        image, truth = reference.frame(packet.seq)
        assert np.array_equal(packet.value, image)
        assert FrameTruth.from_meta(packet.seq, packet.meta).to_meta() == truth.to_meta()
    assert result.seqs("OUT") == [0, 1, 2, 3]
    (mask,) = result.values("MASK")
    assert mask.dtype == np.uint32 and np.array_equal(mask, reference.pixel_mask)


def test_simulate_endless_series_stops_cleanly_and_closes_its_bracket():
    result = run_component(Simulate, config={"FRAMES": "0", "MODEL": "eiger2-500k"}, limit=3)
    packets = result.outputs["OUT"]
    assert packets[-1].kind == PacketKind.CLOSE and len(result.values("OUT")) == 3


def test_simulate_refuses_bad_settings():
    with pytest.raises(ValueError, match="unknown detector model 'eiger3'"):
        run_component(Simulate, config={"MODEL": "eiger3"})
    with pytest.raises(ValueError, match="FRAMES must be >= 0"):
        run_component(Simulate, config={"FRAMES": "-2"})


def test_read_hdf5_replays_a_file(tmp_path):
    frames = np.stack([DetectorSimulator("eiger2-500k", seed=1).frame(i)[0] for i in range(3)])
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f["entry/data/data"] = frames
        f["entry/instrument/detector/pixel_mask"] = np.ones(frames.shape[1:], np.uint32)
    result = run_component(ReadHDF5, config={"PATH": str(path), "START": "1"})
    assert len(result.values("OUT")) == 2
    assert np.array_equal(result.values("OUT")[1], frames[2]) and result.seqs("OUT") == [1, 2]
    opened = result.outputs["OUT"][0]
    assert opened.kind == PacketKind.OPEN and opened.value["frames"] == 3
    assert result.values("MASK")[0].sum() == frames[0].size
    with pytest.raises(FileNotFoundError, match="no HDF5 file"):
        run_component(ReadHDF5, config={"PATH": str(tmp_path / "missing.h5")})


@pytest.mark.timeout(60)
def test_stream_receiver_component_decodes_into_slots_and_skips_garbage(tmp_path):
    endpoint = f"ipc://{tmp_path}/det"
    sim = DetectorSimulator("eiger2-500k", seed=2)
    with StreamServer(endpoint, protocol="v2", compression="lz4") as server:

        def serve():
            server.send(
                server.start_message(3, "s3", sim.series_info(), sim.pixel_mask), timeout=10
            )
            server.send(b"garbage", timeout=10)
            for i in range(3):
                server.send(server.image_message(3, "s3", i, sim.frame(i)[0]), timeout=10)
            server.send(server.end_message(3, "s3"), timeout=10)

        thread = threading.Thread(target=serve)
        thread.start()
        result = run_component(
            StreamReceiver, config={"ENDPOINT": endpoint, "SERIES": "1", "IDLE": "20"}
        )
        thread.join(10)
    packets = result.outputs["OUT"]
    assert [p.kind for p in packets] == [PacketKind.OPEN] + [PacketKind.DATA] * 3 + [
        PacketKind.CLOSE
    ]
    assert packets[0].value["series_id"] == 3 and packets[0].value["seen"] is True
    for packet in packets[1:-1]:
        assert np.array_equal(packet.value, sim.frame(packet.seq)[0])
        assert packet.meta["series_id"] == 3
    assert np.array_equal(result.values("MASK")[0], sim.pixel_mask)
    (stats,) = result.values("STATS")
    assert stats["malformed"] == 1 and stats["images"] == 3 and stats["ends"] == 1


STREAM_GRAPH = """
'{endpoint}' -> ENDPOINT Serve(detector/StreamSimulator)
'{protocol}' -> PROTOCOL Serve
'5' -> FRAMES Serve
'eiger2-500k' -> MODEL Serve
'0.5' -> HIT_RATE Serve
Serve OUT -> IN Summary(core/Output)

'{endpoint}' -> ENDPOINT Receive(detector/StreamReceiver)
'1' -> SERIES Receive
'30' -> IDLE Receive
Receive OUT -> IN Count(core/Counter) COUNT -> IN Show(core/Output)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_stream_simulator_and_receiver_as_a_network(run_fbp, tmp_path, protocol):
    graph = tmp_path / "stream.fbp"
    graph.write_text(STREAM_GRAPH.format(endpoint=f"ipc://{tmp_path}/det", protocol=protocol))
    done = run_fbp("run", graph, "--quiet", timeout=100)
    assert done.returncode == 0, done.stderr
    assert "'frames_sent': 5" in done.stdout
    assert "5" in done.stdout.split()  # the Counter's count of frames received


SIM_GRAPH = """
'6' -> FRAMES Sim(detector/Simulate)
'eiger2-500k' -> MODEL Sim
Sim OUT -> IN Count(core/Counter) COUNT -> IN Show(core/Output)
"""


@pytest.mark.timeout(120)
def test_simulate_as_a_network(run_fbp, tmp_path):
    graph = tmp_path / "sim.fbp"
    graph.write_text(SIM_GRAPH)
    done = run_fbp("run", graph, "--quiet", timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["6"]
