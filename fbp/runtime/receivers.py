"""Input side of a process: every stream connection into it, served fairly.

Each connection into a process is its own ring (fan-in = several rings on one inport).
`Receiver.batches()` visits the rings round-robin and takes up to `batch` records from each
in turn, so no producer can starve another; when all are empty it sleeps in one
`wait_any` call on all of them (no busy waiting). A connection ends at its EOF record or
when its producer closed and it is drained; the receiver ends when all have.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fbp.codec import decode
from fbp.errors import EndOfStream, RingEmpty
from fbp.packet import Packet
from fbp.ring import RecordKind, Ring, wait_any

__all__ = ["Input", "Receiver"]

_DATA = RecordKind.DATA
_EOF = RecordKind.EOF
_CONTROL = RecordKind.CONTROL


@dataclass
class Input:
    """One connection into a process: the ring and the port (and index) it feeds."""

    port: str
    index: int | None
    ring: Ring


class Receiver:
    """Fair fan-in over a process's input rings, plus packets given up front (stream IIPs).

    Args:
        inputs: the connections.
        initial: packets delivered before any ring is read (IIPs on stream ports).
        batch: records taken from one ring per turn.
        should_stop: polled while idle; True ends the receiver early (abort).
    """

    def __init__(
        self,
        inputs: Iterable[Input],
        initial: Iterable[Packet] = (),
        batch: int = 64,
        should_stop=lambda: False,
    ) -> None:
        self.live = list(inputs)
        self.initial = list(initial)
        self.batch = batch
        self.should_stop = should_stop
        self.received = 0

    def _take(self, source: Input) -> list[Packet] | None:
        """Up to `batch` packets from one ring; None when it has nothing now."""
        try:
            records = source.ring.recv_many(self.batch, 0)
        except RingEmpty:
            return None
        except EndOfStream:
            self._end(source)
            return None
        packets = []
        port, index = source.port, source.index
        for record in records:
            kind = record.kind
            if kind == _EOF:
                self._end(source)
                break
            if kind == _CONTROL:
                continue
            packet = decode(record, kind)
            packet.port = port
            packet.index = index
            packets.append(packet)
        return packets

    def _end(self, source: Input) -> None:
        if source in self.live:
            self.live.remove(source)
            source.ring.close()

    def batches(self) -> Iterator[list[Packet]]:
        """Yield lists of packets until every input has ended."""
        if self.initial:
            self.received += len(self.initial)
            yield self.initial
            self.initial = []
        while self.live:
            idle = True
            for source in list(self.live):
                packets = self._take(source)
                if packets:
                    idle = False
                    self.received += len(packets)
                    yield packets
                # A packet's ring slot is freed only when its last reference goes: holding
                # the delivered batch while waiting for the next could pin the whole ring.
                packets = None
            if idle and self.live:
                if self.should_stop():
                    return
                wait_any([source.ring for source in self.live], 0.25)

    def close(self) -> None:
        """Stop reading: producers still sending get BrokenConnection."""
        for source in self.live:
            source.ring.close()
        self.live = []


def read_first(ring: Ring, timeout: float | None = None) -> Packet | None:
    """The first data packet of a config connection, then close it; None if it ends first.

    Raises:
        RingEmpty: nothing arrived before the timeout.
    """
    try:
        while True:
            record = ring.recv(timeout)
            kind = record.kind
            if kind == _EOF:
                return None
            if kind == _DATA:
                return decode(bytes(record), kind)
    except EndOfStream:
        return None
    finally:
        ring.close()
