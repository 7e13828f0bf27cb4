"""Output side of a process: one `Sender` per outport, fanning out to its destinations.

A destination is one connection target. On the same node it is a `RingDestination`: one
ring, or one ring per worker when the target runs `workers=N` (then each packet goes to
the least-loaded worker: the ring with the fewest bytes waiting; brackets go to every
worker). Fan-out is a Sender with
several destinations: each gets every packet, encoded once. Later kinds of destination
(a bridge to another host, a `latest`-policy ring) only need `send_bytes`, `reserve` and
`close`. A `SampleTap` is a side copy for watching a connection: sampled, never waited on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy

from fbp.codec import ArrayLayout, encode_value
from fbp.errors import BrokenConnection, RecordTooLarge, RingFull
from fbp.packet import Packet, PacketKind
from fbp.ring import RecordKind, Ring, wait_any

__all__ = ["Destination", "RingDestination", "SampleTap", "Sender", "Senders"]

_DATA = int(RecordKind.DATA)
_BRACKETS = (int(RecordKind.OPEN), int(RecordKind.CLOSE))


class Destination:
    """Interface of one connection target (see RingDestination)."""

    alive = True

    def send_bytes(self, data: Any, kind: int = _DATA) -> None:
        """Deliver one encoded record (blocks while the target is full: back-pressure)."""
        raise NotImplementedError

    def reserve(self, nbytes: int, kind: int = _DATA) -> contextlib.AbstractContextManager:
        """Writable space for one record, committed when the `with` block ends."""
        raise NotImplementedError

    def close(self) -> None:
        """Send end-of-stream and let go."""


class RingDestination(Destination):
    """One target process (one ring) or a group of worker processes (one ring each).

    Args:
        rings: producer handles, one per target instance.
        on_broken: called with the ring when its consumer went away (it is then skipped).

    Attributes:
        undelivered: data packets sent after every consumer went away (nobody got them:
            the loss ledger counts them against `gone`, the last ring that broke).
    """

    def __init__(self, rings: list[Ring], on_broken: Any = None) -> None:
        self.rings = list(rings)
        self.on_broken = on_broken
        self.alive = bool(self.rings)
        self._turn = 0
        self.undelivered = 0
        self.gone: str | None = None

    def _least_loaded(self) -> Ring:
        # Fill levels come from the ring headers: no bookkeeping on the hot path. The scan
        # starts one ring further each time, so equally loaded (e.g. idle) workers take
        # turns instead of the first one getting everything.
        rings = self.rings
        count = len(rings)
        self._turn = start = (self._turn + 1) % count
        best, best_fill = rings[start], None
        for step in range(count):
            ring = rings[(start + step) % count]
            fill = ring.raw_stats()["fill_bytes"]
            if fill == 0:
                return ring
            if best_fill is None or fill < best_fill:
                best, best_fill = ring, fill
        return best

    def _broken(self, ring: Ring) -> None:
        self.rings.remove(ring)
        self.alive = bool(self.rings)
        self.gone = ring.name
        if self.on_broken is not None:
            self.on_broken(ring)

    def send_bytes(self, data: Any, kind: int = _DATA) -> None:
        if kind in _BRACKETS and len(self.rings) > 1:
            # Every worker sees every bracket: each one's share of a series is delimited
            # like the series itself, and a bracket's data (e.g. the beam centre) reaches
            # every worker. The consumer downstream merges them back into one (receivers).
            for ring in list(self.rings):
                try:
                    ring.send(data, None, kind)
                except BrokenConnection:
                    self._broken(ring)
            return
        while self.rings:
            if len(self.rings) == 1:
                ring = self.rings[0]
                try:
                    ring.send(data, None, kind)
                    return
                except BrokenConnection:
                    self._broken(ring)
                    continue
            ring = self._least_loaded()
            try:
                ring.send(data, 0, kind)
                return
            except RingFull:
                wait_any(self.rings, 0.2, len(data))
            except BrokenConnection:
                self._broken(ring)
        if kind == _DATA:
            self.undelivered += 1

    @contextlib.contextmanager
    def reserve(self, nbytes: int, kind: int = _DATA) -> Iterator[memoryview]:
        while self.rings:
            ring = self.rings[0] if len(self.rings) == 1 else self._least_loaded()
            try:
                reservation = ring.reserve(nbytes, None if len(self.rings) == 1 else 0, kind)
            except RingFull:
                wait_any(self.rings, 0.2, nbytes)
                continue
            except BrokenConnection:
                self._broken(ring)
                continue
            with reservation as slot:
                yield slot
            return
        if kind == _DATA:
            self.undelivered += 1
        yield memoryview(bytearray(nbytes))  # nobody listens any more: write and drop

    def close(self) -> None:
        # Closing is the end of stream: the consumer drains what is left, then sees
        # EndOfStream. (An EOF record would be counted as a packet in the ring header.)
        for ring in self.rings:
            ring.close()
        self.alive = False


class SampleTap:
    """A side copy of a connection for watching it (dashboard previews), never in the way.

    A packet is copied into the tap ring only when 1/`rate` seconds have passed since the
    last copy and the watcher has taken that one (the ring is empty); otherwise it is
    skipped. So an unwatched tap costs a clock read per packet, a watched one at most
    `rate` copies a second, and a full or abandoned tap never makes the producer wait.

    Args:
        ring: producer handle of the tap ring.
        rate: copies per second at most.
    """

    def __init__(self, ring: Ring, rate: float = 4.0) -> None:
        self.ring = ring
        self.interval = 1.0 / rate
        self.next_time = 0.0
        self.copied = 0

    def due(self, now: float) -> bool:
        """True when the packet sent at `now` should be copied."""
        if now < self.next_time:
            return False
        self.next_time = now + self.interval
        return self.ring.raw_stats()["fill_records"] == 0

    def put_bytes(self, data: Any, kind: int = _DATA) -> None:
        """Copy one encoded record, or skip it if the tap cannot take it at once."""
        try:
            self.ring.send(data, 0, kind)
            self.copied += 1
        except (RingFull, BrokenConnection, RecordTooLarge):
            pass

    def put_array(self, encoded: ArrayLayout, value: numpy.ndarray, kind: int = _DATA) -> None:
        """Copy one array packet, or skip it if the tap cannot take it at once."""
        try:
            with self.ring.reserve(encoded.nbytes, 0, kind) as slot:
                encoded.write_head(slot)[...] = value
            self.copied += 1
        except (RingFull, BrokenConnection, RecordTooLarge):
            pass

    def close(self) -> None:
        """End of stream for the watcher."""
        self.ring.close()


class Sender:
    """A component's handle on one outport: `send`, `reserve_array`, brackets.

    Args:
        name: the port name.
        destinations: {index: [Destination, ...]}; index None for a plain port.
        taps: {index: [SampleTap, ...]}: side copies for watching, see SampleTap.
    """

    def __init__(
        self,
        name: str,
        destinations: dict[int | None, list[Destination]],
        taps: dict[int | None, list[SampleTap]] | None = None,
    ) -> None:
        self.name = name
        self._by_index = destinations
        self._all = [d for group in destinations.values() for d in group]
        self._taps_by_index = taps or {}
        self._taps = [t for group in self._taps_by_index.values() for t in group]
        self._next_tap = 0.0  # earliest time a tap may want a copy
        self.sent = 0

    def _due_taps(self, index: int | None) -> list[SampleTap]:
        # The per-packet cost of watching: one clock read, until some tap is due.
        if not self._taps:
            return []
        now = time.monotonic()
        if now < self._next_tap:
            return []
        taps = self._taps if index is None else self._taps_by_index.get(index, ())
        due = [tap for tap in taps if tap.due(now)]
        self._next_tap = min(tap.next_time for tap in self._taps)
        return due

    @property
    def connected(self) -> bool:
        """True when at least one connection leaves this port."""
        return bool(self._all)

    @property
    def width(self) -> int:
        """For an array port: the number of indices (highest connected index + 1)."""
        indices = [i for i in self._by_index if i is not None]
        return max(indices) + 1 if indices else (1 if self._all else 0)

    def _targets(self, index: int | None) -> list[Destination]:
        if index is None:
            return self._all
        return self._by_index.get(index, [])

    def send(
        self,
        value: Any,
        *,
        seq: int | None = None,
        meta: dict | None = None,
        index: int | None = None,
        timestamp: float | None = None,
        kind: int = _DATA,
    ) -> None:
        """Send one value to every destination of this port (or of `index`).

        Blocks while a destination is full (back-pressure). Sending on an unconnected port
        does nothing.

        Raises:
            PortTypeError: the value cannot be encoded.
        """
        targets = self._by_index.get(index, ()) if index is not None else self._all
        if not targets:
            return
        encoded = encode_value(value, seq, timestamp, meta)
        taps = self._due_taps(index) if kind == _DATA else ()
        if type(encoded) is bytes:
            for destination in targets:
                destination.send_bytes(encoded, kind)
            for tap in taps:
                tap.put_bytes(encoded, kind)
        else:
            for destination in targets:
                with destination.reserve(encoded.nbytes, kind) as slot:
                    encoded.write_head(slot)[...] = value
            for tap in taps:
                tap.put_array(encoded, value, kind)
        self.sent += 1

    def send_packet(self, packet: Packet, index: int | None = None) -> None:
        """Send a packet with its own seq, timestamp, metadata and kind.

        Raises:
            PortTypeError: the value cannot be encoded.
        """
        self.send(
            packet.value,
            seq=packet.seq,
            meta=packet.meta,
            index=index,
            timestamp=packet.timestamp,
            kind=packet.kind,
        )

    def open_bracket(self, data: Any = None, index: int | None = None) -> None:
        """Begin a substream (e.g. one detector run) on this port."""
        self.send(data, index=index, kind=PacketKind.OPEN)

    def close_bracket(self, data: Any = None, index: int | None = None) -> None:
        """End the current substream on this port."""
        self.send(data, index=index, kind=PacketKind.CLOSE)

    @contextlib.contextmanager
    def reserve_array(
        self,
        shape: tuple,
        dtype: Any,
        *,
        seq: int | None = None,
        meta: dict | None = None,
        index: int | None = None,
        timestamp: float | None = None,
    ) -> Iterator[numpy.ndarray]:
        """Fill an array directly in the ring slot: the frame is written once.

        The `with` block yields a writable array; on normal exit it is sent (copied to any
        further fan-out destinations first), on an exception it is dropped.

        Raises:
            PortTypeError: the dtype cannot be sent.
        """
        layout = ArrayLayout(shape, dtype, seq, timestamp, meta)
        targets = self._targets(index)
        if not targets:
            yield numpy.empty(layout.shape, layout.dtype)
            return
        first, rest = targets[0], targets[1:]
        with first.reserve(layout.nbytes) as slot:
            yield layout.write_head(slot)
            for destination in rest:
                destination.send_bytes(slot)
            for tap in self._due_taps(index):
                tap.put_bytes(slot)
        self.sent += 1

    def close(self) -> None:
        """End of stream on every destination."""
        for destination in self._all:
            destination.close()
        for tap in self._taps:
            tap.close()


class Senders:
    """The outports of one process by name: `out.OUT`, `out["OUT"]`, `"OUT" in out`."""

    def __init__(self, senders: dict[str, Sender]) -> None:
        self._senders = senders

    def __getitem__(self, name: str) -> Sender:
        try:
            return self._senders[name]
        except KeyError:
            raise KeyError(f"no outport {name!r}; outports: {', '.join(self._senders)}") from None

    def __getattr__(self, name: str) -> Sender:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._senders[name]
        except KeyError:
            outports = ", ".join(self._senders)
            raise AttributeError(f"no outport {name!r}; outports: {outports}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._senders

    def __iter__(self):
        return iter(self._senders.values())

    def close(self) -> None:
        """End of stream on every outport."""
        for sender in self._senders.values():
            sender.close()
