"""Packets: a value plus the metadata that travels with it.

`seq` is the source's frame or event number: it survives every hop unless a component
sets a new one, so `workers=N` and `core/OrderedMerge` can restore order and drop
duplicates. `timestamp` is when the source made the packet (seconds since the epoch).
`meta` holds user keys (msgpack-able). `port` and `index` say where a received packet
came in (set by the runtime, never sent).

`kind` distinguishes data from substream brackets: `OPEN`/`CLOSE` packets carry the
bracket's data (e.g. a run number) and group the packets between them.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy


class PacketKind(enum.IntEnum):
    """The same codes as the ring's record kinds (`fbp.ring.RecordKind`)."""

    DATA = 0
    OPEN = 1
    CLOSE = 2


class Packet:
    """One information packet.

    Args:
        value: the payload (numpy array, bytes, or any msgpack-able value).
        seq: the source's sequence number, or None.
        timestamp: creation time (time.time()) or None.
        meta: user metadata (a dict with str keys, msgpack-able) or None.
        kind: DATA, or OPEN/CLOSE for substream brackets.
    """

    __slots__ = ("index", "kind", "meta", "port", "seq", "timestamp", "value")

    def __init__(
        self,
        value: Any = None,
        seq: int | None = None,
        timestamp: float | None = None,
        meta: dict | None = None,
        kind: int = PacketKind.DATA,
    ) -> None:
        self.value = value
        self.seq = seq
        self.timestamp = timestamp
        self.meta = meta
        self.kind = kind
        self.port: str | None = None
        self.index: int | None = None

    @property
    def is_bracket(self) -> bool:
        """True for substream OPEN/CLOSE packets."""
        return self.kind != PacketKind.DATA

    def detach(self) -> Packet:
        """Copy an array value out of ring memory; returns self.

        A received array is a view on its ring slot, and the slot stays taken while the
        array lives: that is back-pressure. A component that keeps packets for a while
        (batching, re-ordering) detaches them, so what it holds cannot block its producer.
        """
        value = self.value
        if isinstance(value, numpy.ndarray) and value.base is not None:
            self.value = value.copy()
        return self

    def derive(self, value: Any) -> Packet:
        """A new packet with `value` and this packet's seq, timestamp and metadata."""
        return Packet(value, self.seq, self.timestamp, self.meta)

    def __repr__(self) -> str:
        parts = [repr(self.value)]
        if self.kind != PacketKind.DATA:
            parts.insert(0, PacketKind(self.kind).name)
        if self.seq is not None:
            parts.append(f"seq={self.seq}")
        if self.meta:
            parts.append(f"meta={self.meta!r}")
        if self.port is not None:
            parts.append(f"port={self.port}" + ("" if self.index is None else f"[{self.index}]"))
        return f"Packet({', '.join(parts)})"
