"""Pacing streams in time."""

from __future__ import annotations

import time

from fbp.component import Component, InPort, OutPort
from fbp.packet import Packet
from fbp.types import Any, Float


class Throttle(Component):
    """Pass packets on at no more than RATE packets per second (0 = no limit).

    Packets are delayed, never dropped: the stream upstream slows down through
    back-pressure.
    """

    inports = [
        InPort("IN", Any, "packets to pace"),
        InPort(
            "RATE", Float, "maximum packets per second; 0 passes at full speed", default=10000.0
        ),
    ]
    outports = [OutPort("OUT", Any, "the same packets, paced")]

    def setup(self, *, rate) -> None:
        if rate < 0:
            raise ValueError(f"Throttle RATE must be >= 0 packets/s, got {rate}")
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_time = time.monotonic()

    def process(self, packet: Packet) -> Packet:
        if self.interval:
            now = time.monotonic()
            if now < self.next_time:
                time.sleep(self.next_time - now)
            # Schedule from the ideal time, not from now, so the mean rate stays exact;
            # but do not bank credit after a stall.
            self.next_time = max(self.next_time, now - self.interval) + self.interval
        return packet
