"""Counting and grouping packets."""

from __future__ import annotations

import numpy

from fbp.component import Component, InPort, OutPort
from fbp.packet import Packet
from fbp.types import Any, Int


class Counter(Component):
    """Count the packets on IN; at end of stream send the count on COUNT."""

    inports = [InPort("IN", Any, "packets to count")]
    outports = [OutPort("COUNT", Int, "the number of packets received, sent once at the end")]

    def setup(self) -> None:
        self.count = 0

    def process(self, packet: Packet) -> None:
        self.count += 1

    def finish(self) -> None:
        self.out.COUNT.send(self.count)


class Batch(Component):
    """Group SIZE consecutive packets into one list (arrays: one stacked array).

    The batch carries the seq of its first packet. A last, shorter batch is sent at the
    end of the stream.
    """

    inports = [
        InPort("IN", Any, "packets to group"),
        InPort("SIZE", Int, "packets per batch (>= 1)", default=10),
    ]
    outports = [OutPort("OUT", Any, "lists of SIZE values, or arrays stacked on a new axis 0")]

    def setup(self, *, size) -> None:
        if size < 1:
            raise ValueError(f"Batch SIZE must be >= 1, got {size}")
        self.size = size
        self.pending: list[Packet] = []

    def process(self, packet: Packet) -> None:
        self.pending.append(packet.detach())  # held packets must not hold ring space
        if len(self.pending) >= self.size:
            self._flush()

    def finish(self) -> None:
        if self.pending:
            self._flush()

    def _flush(self) -> None:
        first = self.pending[0]
        values = [p.value for p in self.pending]
        if all(isinstance(v, numpy.ndarray) for v in values):
            batch = numpy.stack(values)
        else:
            batch = values
        self.pending = []
        self.out.OUT.send(batch, seq=first.seq, meta=first.meta, timestamp=first.timestamp)
