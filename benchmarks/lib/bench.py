"""Components for benchmarks/pipeline.py: frame and packet sources, and measuring sinks.

The hand-written pyzmq and multiprocessing.Queue pipelines in pipeline.py do exactly the
same work per message, so the numbers compare transports and runtimes, not code.
Use with `fbp run benchmarks/pipeline_frames.fbp --path benchmarks/lib`.
"""

from __future__ import annotations

import json
import time

import numpy

from fbp.component import Component, InPort, OutPort, component
from fbp.packet import Packet
from fbp.types import Any, Array, Bytes, Float, Int

PAGE = 4096


@component(
    inports=[
        InPort("SIZE", Int, "frame size in bytes", default=4 << 20),
        InPort("SECONDS", Float, "send frames for this long", default=1.0),
        InPort("FRAMES", Int, "stop after this many frames at most", default=1_000_000),
    ],
    outports=[OutPort("OUT", Array("uint8", ndim=1), "frames; byte 0 = frame number % 256")],
)
def FrameSource(*, size, seconds, frames, ports):
    """Send SIZE-byte frames for SECONDS: each one copied once from a ready frame, like a
    detector receiver that owns its buffer (the peers send the same array)."""
    template = numpy.full(size, 7, numpy.uint8)
    deadline = time.perf_counter() + seconds
    number = 0
    while number < frames and time.perf_counter() < deadline:
        template[0] = number & 0xFF
        with ports.OUT.reserve_array((size,), "uint8", seq=number) as frame:
            frame[...] = template
        number += 1
        yield None


@component(
    inports=[
        InPort("SIZE", Int, "packet size in bytes (>= 8)", default=64),
        InPort("COUNT", Int, "how many packets", default=2000),
        InPort("INTERVAL", Float, "seconds between packets (0: as fast as possible)", default=0.0),
        InPort("DELAY", Float, "seconds to wait first, so every process is up", default=1.0),
    ],
    outports=[OutPort("OUT", Bytes, "packets; bytes 0-7 = send time in perf_counter ns")],
)
def PacketSource(*, size, count, interval, delay):
    """Send COUNT small packets stamped with their send time (CLOCK_MONOTONIC, which every
    process on the machine shares), paced by INTERVAL, after DELAY seconds."""
    body = bytearray(size)
    time.sleep(delay)
    next_time = time.perf_counter()
    for number in range(count):
        if interval:
            next_time += interval
            while time.perf_counter() < next_time:
                time.sleep(max(0.0, next_time - time.perf_counter() - 50e-6))
        body[:8] = time.perf_counter_ns().to_bytes(8, "little")
        yield Packet(bytes(body), seq=number)


class FrameSink(Component):
    """Touch one byte per 4 KiB page of every frame; at the end print one JSON line:
    {"frames", "seconds"} from the first frame to the last."""

    inports = [InPort("IN", Any, "frames")]
    outports = []

    def setup(self) -> None:
        self.count = 0
        self.first = self.last = 0.0

    def process(self, packet: Packet) -> None:
        int(numpy.frombuffer(packet.value, numpy.uint8)[::PAGE].sum())
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now

    def finish(self) -> None:
        print(json.dumps({"frames": self.count, "seconds": self.last - self.first}), flush=True)


class LatencySink(Component):
    """Read each packet's send time; at the end print one JSON line with the count, the
    packets per second and the latency percentiles in microseconds."""

    inports = [InPort("IN", Bytes, "stamped packets")]
    outports = []

    def setup(self) -> None:
        self.latencies: list[int] = []
        self.first = self.last = 0.0

    def process(self, packet: Packet) -> None:
        now = time.perf_counter_ns()
        self.latencies.append(now - int.from_bytes(packet.value[:8], "little"))
        if len(self.latencies) == 1:
            self.first = now
        self.last = now

    def finish(self) -> None:
        print(json.dumps(latency_summary(self.latencies, self.first, self.last)), flush=True)


def latency_summary(latencies: list[int], first: float, last: float) -> dict:
    """Count, rate (packets/s between the first and last arrival) and p50/p99 in us."""
    ordered = sorted(latencies)
    count = len(ordered)
    return {
        "packets": count,
        "rate": (count - 1) / ((last - first) / 1e9) if count > 1 and last > first else 0.0,
        "p50_us": ordered[count // 2] / 1e3 if count else None,
        "p99_us": ordered[int(count * 0.99)] / 1e3 if count else None,
    }
