"""Components used by the runtime tests (loaded with --path, as a user's library is)."""

import json
import os
import time

import numpy

from fbp.component import Component, InPort, OutPort, component
from fbp.packet import Packet
from fbp.types import Any, Array, Int, Str


class Record(Component):
    """Write every packet received (seq, value, port, index) as JSON lines to PATH at the end."""

    inports = [
        InPort("IN", Any, "packets to record", array=True),
        InPort("PATH", Str, "output file", config=True),
    ]
    outports = []

    def setup(self, *, path):
        self.path = path
        self.rows = []

    def process(self, packet):
        value = packet.value
        if isinstance(value, numpy.ndarray):
            value = {
                "shape": list(value.shape),
                "dtype": str(value.dtype),
                "sum": float(value.sum()),
                "first": float(value.flat[0]),
            }
        self.rows.append(
            {
                "seq": packet.seq,
                "value": value,
                "port": packet.port,
                "index": packet.index,
                "meta": packet.meta,
            }
        )

    def bracket(self, packet):
        self.rows.append({"seq": packet.seq, "value": packet.value, "bracket": int(packet.kind)})

    def finish(self):
        with open(f"{self.path}.{os.getpid()}", "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in self.rows)
        self.log.info("recorded %d packets", len(self.rows))


@component(
    inports=[InPort("IN", Any, "packets"), InPort("AT", Int, "crash at this packet", default=5)],
    outports=[OutPort("OUT", Any, "packets before the crash")],
)
def Crash(value, *, at):
    """Pass packets on; the process dies (exit status 3) at packet number AT."""
    if value == at:
        os._exit(3)
    return value


@component(
    inports=[InPort("IN", Int, "numbers"), InPort("EVERY", Int, "fail on multiples", default=3)],
    outports=[OutPort("OUT", Int, "the numbers that did not fail")],
)
def FailEvery(value, *, every):
    """Raise ValueError for every multiple of EVERY."""
    if value % every == 0:
        raise ValueError(f"{value} is a multiple of {every}")
    return value


@component(
    inports=[
        InPort("COUNT", Int, "frames", default=5),
        InPort("SIZE", Int, "frame edge", default=64),
    ],
    outports=[OutPort("OUT", Array("uint16", ndim=2), "frames filled in the ring slot")],
)
def Frames(*, count, size, ports):
    """Frames of value seq, written straight into the ring slot."""
    for seq in range(count):
        with ports.OUT.reserve_array((size, size), "uint16", seq=seq, meta={"run": 1}) as frame:
            frame[...] = seq
        yield None


@component(
    inports=[InPort("IN", Array("float32", ndim=2), "frames")],
    outports=[OutPort("OUT", Array("float32", ndim=2), "frames")],
)
def FloatFrames(frame):
    """Pass float32 frames (a port type that does not accept Int)."""
    return frame


@component(
    inports=[InPort("DELAY", Any, "seconds between packets", default=0.05)],
    outports=[OutPort("OUT", Int, "0, 1, 2, ... forever")],
)
def Endless(*, delay):
    """Count forever, slowly."""
    number = 0
    while True:
        yield Packet(number, seq=number)
        number += 1
        time.sleep(float(delay))


@component(outports=[OutPort("OUT", Any, "two substreams of two values")])
def Runs(*, ports):
    """Send substreams: OPEN run, two values, CLOSE run; twice."""
    for run in ("run-1", "run-2"):
        ports.OUT.open_bracket(run)
        for number in range(2):
            yield f"{run}/{number}"
        ports.OUT.close_bracket(run)


@component(
    inports=[
        InPort("RUNS", Int, "substreams", default=3),
        InPort("SIZE", Int, "values per substream", default=50),
    ],
    outports=[OutPort("OUT", Any, "RUNS substreams of SIZE values, seq counting on")],
)
def Series(*, runs, size, ports):
    """Send RUNS substreams: OPEN "run-N", SIZE values "run-N/i", CLOSE "run-N"."""
    seq = 0
    for run in range(runs):
        ports.OUT.open_bracket(f"run-{run}")
        for number in range(size):
            yield Packet(f"run-{run}/{number}", seq=seq)
            seq += 1
        ports.OUT.close_bracket(f"run-{run}")


class Tag(Component):
    """Prefix each value with the substream it arrived in (the last OPEN bracket's value)."""

    inports = [InPort("IN", Any, "values inside substreams")]
    outports = [OutPort("OUT", Any, "'BRACKET|value'")]

    def setup(self):
        self.current = None

    def bracket(self, packet):
        self.current = packet.value if packet.kind == 1 else None
        self.out.OUT.send_packet(packet)

    def process(self, packet):
        return f"{self.current}|{packet.value}"


@component(
    inports=[
        InPort("IN", Any, "packets"),
        InPort("SECONDS", Any, "sleep per packet", default=0.05),
    ],
    outports=[OutPort("OUT", Any, "the packets, slowly")],
)
def Sleepy(value, *, seconds):
    """A slow consumer: sleep SECONDS per packet, then pass it on."""
    time.sleep(float(seconds))
    return value
