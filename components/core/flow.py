"""Routing: pass on, drop, split, merge, duplicate, trigger."""

from __future__ import annotations

from fbp.component import Component, InPort, OutPort
from fbp.packet import Packet
from fbp.types import Any


class Repeat(Component):
    """Pass every packet on unchanged (value, seq and metadata)."""

    inports = [InPort("IN", Any, "packets to pass on")]
    outports = [OutPort("OUT", Any, "the same packets")]

    def process(self, packet: Packet) -> Packet:
        return packet


class Drop(Component):
    """Consume every packet and send nothing (a sink for streams nobody needs)."""

    inports = [InPort("IN", Any, "packets to discard")]
    outports = []

    def process(self, packet: Packet) -> None:
        return None


class Kick(Component):
    """Send DATA on OUT once for every packet that arrives on IN (a trigger)."""

    inports = [
        InPort("IN", Any, "trigger packets; their values are ignored"),
        InPort("DATA", Any, "the value to send for each trigger", default=None),
    ]
    outports = [OutPort("OUT", Any, "DATA, once per trigger, with the trigger's seq")]

    def setup(self, *, data) -> None:
        self.data = data

    def process(self, packet: Packet) -> Packet:
        return Packet(self.data, packet.seq, packet.timestamp, packet.meta)


class Split(Component):
    """Deal packets round-robin over the connected indices of the array port OUT."""

    inports = [InPort("IN", Any, "packets to deal out")]
    outports = [OutPort("OUT", Any, "OUT[0], OUT[1], ... each gets every n-th packet", array=True)]

    def setup(self) -> None:
        self.next_index = 0

    def process(self, packet: Packet) -> None:
        width = self.out.OUT.width
        if width:
            self.out.OUT.send_packet(packet, index=self.next_index % width)
            self.next_index += 1


class Merge(Component):
    """Merge several streams into one, in arrival order (fan-in served fairly).

    Connect any number of connections to IN, or use the array port IN[0], IN[1], ...
    """

    inports = [InPort("IN", Any, "packets from any number of connections", array=True)]
    outports = [OutPort("OUT", Any, "all packets, unchanged")]

    def process(self, packet: Packet) -> Packet:
        return packet


class Tee(Component):
    """Send every packet to every connected index of the array port OUT."""

    inports = [InPort("IN", Any, "packets to duplicate")]
    outports = [OutPort("OUT", Any, "OUT[0], OUT[1], ... each gets every packet", array=True)]

    def process(self, packet: Packet) -> None:
        self.out.OUT.send_packet(packet)
