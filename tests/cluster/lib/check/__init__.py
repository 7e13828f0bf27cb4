"""Components for the multi-host tests (loaded with --path, which agents receive too)."""

import zlib

import numpy

from fbp.component import Component, InPort, OutPort, component
from fbp.packet import Packet
from fbp.types import Array, Int, Str


@component(
    inports=[
        InPort("COUNT", Int, "how many blobs", default=100),
        InPort("SIZE", Int, "bytes per blob (>= 12)", default=131072),
    ],
    outports=[
        OutPort("OUT", Array("uint8", ndim=1), "uint8 blobs: 8-byte seq, body, 4-byte CRC32")
    ],
)
def Blobs(*, count, size):
    """Send COUNT blobs whose first 8 bytes are their seq and last 4 a CRC of the rest."""
    for seq in range(count):
        blob = numpy.empty(size, dtype=numpy.uint8)
        blob[:8] = numpy.frombuffer(seq.to_bytes(8, "little"), dtype=numpy.uint8)
        blob[8:-4] = (numpy.arange(size - 12, dtype=numpy.uint32) * (seq + 7) % 251).astype(
            numpy.uint8
        )
        blob[-4:] = numpy.frombuffer(
            zlib.crc32(blob[:-4].tobytes()).to_bytes(4, "little"), dtype=numpy.uint8
        )
        yield Packet(blob, seq=seq)


class Verify(Component):
    """Check blobs (seq + CRC); at the end send "received=N unique=N corrupt=N"."""

    inports = [InPort("IN", Array("uint8", ndim=1), "blobs from check/Blobs")]
    outports = [OutPort("REPORT", Str, "one line at the end of stream")]

    def setup(self) -> None:
        self.seen = []
        self.corrupt = 0

    def process(self, packet: Packet) -> None:
        data = numpy.ascontiguousarray(packet.value).tobytes()
        if zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"):
            self.corrupt += 1
        self.seen.append(int.from_bytes(data[:8], "little"))

    def finish(self) -> None:
        unique = len(set(self.seen))
        self.out.REPORT.send(
            f"received={len(self.seen)} unique={unique} corrupt={self.corrupt} "
            f"max={max(self.seen, default=-1)}"
        )
