"""Printing packets."""

from __future__ import annotations

import sys

from fbp.component import Component, InPort
from fbp.packet import Packet
from fbp.types import Any


class Output(Component):
    """Print each packet's value on its own line on standard output, and nothing else."""

    inports = [InPort("IN", Any, "values to print (str() of each)")]
    outports = []

    def setup(self) -> None:
        self.stream = sys.stdout
        # On a terminal show each line at once; into a pipe or file, let Python buffer.
        self.flush = self.stream.isatty()

    def process(self, packet: Packet) -> None:
        self.stream.write(f"{packet.value}\n")
        if self.flush:
            self.stream.flush()

    def teardown(self) -> None:
        self.stream.flush()
