"""Input side of a process: every stream connection into it, served fairly.

Each connection into a process is its own ring (fan-in = several rings on one inport).
`Receiver.batches()` visits the rings round-robin and takes up to `batch` records from each
in turn, so no producer can starve another; when all are empty it sleeps in one
`wait_any` call on all of them (no busy waiting). A connection ends at its EOF record or
when its producer closed and it is drained; the receiver ends when all have.

Brackets from workers. When the producer runs `workers=N`, each worker is sent every
bracket and its share of the data, so one connection arrives as N rings that each carry the
same sequence of brackets. They are merged back (the rings of one connection form a group):
a bracket opens when the first worker opens it, and closes when the last worker closes it;
a worker that has reached a CLOSE waits there (its ring is not read) until every sibling
has reached it too, so nothing of the next substream overtakes the end of this one.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fbp.codec import decode
from fbp.errors import EndOfStream, RingEmpty
from fbp.packet import Packet
from fbp.ring import RecordKind, Ring, wait_any

__all__ = ["Batch", "Input", "PolicyDrain", "Receiver"]

_DATA = RecordKind.DATA
_EOF = RecordKind.EOF
_CONTROL = RecordKind.CONTROL
_OPEN = RecordKind.OPEN
_CLOSE = RecordKind.CLOSE


class _Detached(bytearray):
    """A record copied out of its ring (a policy drain holding it must not pin the ring)."""

    kind = _DATA

    def release(self) -> None:
        """Nothing to free: the copy is ordinary memory."""


class PolicyDrain:
    """The `latest` and `sampled` delivery policies of one input ring (see docs/running.md).

    A thread keeps the ring empty, so its producer never waits: `latest` holds the newest
    `keep` data packets and releases (drops) older ones, `sampled` passes at most `rate`
    data packets a second and drops the rest. Brackets are always kept. The process takes
    packets with `take`. Drops are counted and reported (`report(total)`) at most twice a
    second and at the end.

    Args:
        ring: the consumer handle.
        policy: "latest" or "sampled".
        keep: data packets held at most (latest).
        rate: data packets per second at most (sampled).
        report: callable(total_dropped), from the drain's thread.
    """

    REPORT_INTERVAL = 0.5

    def __init__(self, ring: Ring, policy: str, keep: int = 1, rate: float = 10.0, report=None):
        self.ring = ring
        self.policy = policy
        self.keep = max(1, keep)
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.report = report or (lambda total: None)
        self.queue: collections.deque = collections.deque()
        self.data_held = 0
        self.dropped = 0
        self.reported = 0
        self.ended = False
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._next_sample = 0.0
        self._next_report = 0.0
        self._thread = threading.Thread(target=self._run, name="fbp-policy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    records = self.ring.recv_many(256, 0.2)
                except RingEmpty:
                    records = []
                except EndOfStream:
                    break
                with self.lock:
                    for record in records:
                        self._admit(record)
                self._maybe_report()
        finally:
            self.ended = True
            self._maybe_report(force=True)

    def _admit(self, record) -> None:
        if record.kind != _DATA:
            self.queue.append(record)
            return
        if self.policy == "sampled":
            now = time.monotonic()
            if now < self._next_sample:
                record.release()
                self.dropped += 1
                return
            self._next_sample = now + self.interval
        self.queue.append(record)
        self.data_held += 1
        self._loosen(len(record))
        while self.policy == "latest" and self.data_held > self.keep:
            for position, held in enumerate(self.queue):
                if held.kind == _DATA:
                    del self.queue[position]
                    held.release()
                    self.data_held -= 1
                    self.dropped += 1
                    break

    def _loosen(self, size: int) -> None:
        """Copy held records out of the ring when another of this size would not fit.

        Holding records pins their ring space; with frames as large as half the ring, the
        producer could then wait for the consumer, which this policy must never let happen.
        """
        stats = self.ring.raw_stats()
        if stats["capacity"] - stats["fill_bytes"] >= 2 * size:
            return
        for position, held in enumerate(self.queue):
            if not isinstance(held, _Detached):
                copy = _Detached(held)
                copy.kind = held.kind
                held.release()
                self.queue[position] = copy

    def _maybe_report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.dropped != self.reported and (force or now >= self._next_report):
            self._next_report = now + self.REPORT_INTERVAL
            self.reported = self.dropped
            self.report(self.dropped)

    def take(self, count: int) -> list:
        """Up to `count` records, oldest first."""
        with self.lock:
            taken = []
            while self.queue and len(taken) < count:
                record = self.queue.popleft()
                if record.kind == _DATA:
                    self.data_held -= 1
                taken.append(record)
            return taken

    def exhausted(self) -> bool:
        """True once the producer ended and everything was taken."""
        return self.ended and not self.queue

    def stop(self) -> None:
        """Stop the thread (the ring is closed by the caller afterwards)."""
        self._stop.set()
        self._thread.join(5)


class Batch(list):
    """Packets taken from one ring, holding their ring records until the batch is dropped."""

    records: list = ()


@dataclass(eq=False)
class Input:
    """One connection into a process: the ring and the port (and index) it feeds.

    `group` is the connection's number: rings of one group come from the workers of one
    producer process, and their brackets are merged. `events` counts the brackets seen on
    this ring; `barrier` is the number of the CLOSE it waits at (0: none), `closing` that
    CLOSE packet, and `held` the records received after it.
    """

    port: str
    index: int | None
    ring: Ring
    group: int | None = None
    drain: PolicyDrain | None = None  # latest/sampled policy; None: reliable
    events: int = 0
    barrier: int = 0
    closing: Packet | None = None
    held: list = field(default_factory=list)


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
        members: dict[int, list[Input]] = {}
        for source in self.live:
            if source.group is not None:
                members.setdefault(source.group, []).append(source)
        self.groups = {group: inputs for group, inputs in members.items() if len(inputs) > 1}
        # Per group: bracket events delivered to the component, and brackets left open.
        self.delivered = dict.fromkeys(self.groups, 0)
        self.depth = dict.fromkeys(self.groups, 0)

    def _waiting(self, source: Input) -> bool:
        """True while this ring waits at a CLOSE its siblings have not reached."""
        return source.group in self.groups and source.barrier > self.delivered[source.group]

    def _take(self, source: Input) -> list[Packet] | None:
        """Up to `batch` packets from one ring; None when it has nothing now."""
        if self._waiting(source):
            return None
        if source.held:
            records, source.held = source.held, []
        elif source.drain is not None:
            records = source.drain.take(self.batch)
            if not records:
                if source.drain.exhausted():
                    self._end(source)
                return None
        else:
            try:
                records = source.ring.recv_many(self.batch, 0)
            except RingEmpty:
                return None
            except EndOfStream:
                self._end(source)
                return None
        # The batch keeps its records: a ring frees a record only when it is released, and
        # a small value is decoded into a copy, so without this reference its record would
        # be released before process() ran, and a crash then would lose it.
        packets = Batch()
        packets.records = records
        port, index = source.port, source.index
        merging = source.group in self.groups
        for number, record in enumerate(records):
            kind = record.kind
            if kind == _EOF:
                self._end(source)
                break
            if kind == _CONTROL:
                continue
            packet = decode(record, kind)
            packet.port = port
            packet.index = index
            if merging and kind in (_OPEN, _CLOSE):
                if not self._merge_bracket(source, packet):
                    if self._waiting(source):
                        source.held = records[number + 1 :]
                        break
                    continue
            packets.append(packet)
        return packets

    def _merge_bracket(self, source: Input, packet: Packet) -> bool:
        """Account for a worker's bracket; True when the component should see it now."""
        group = source.group
        source.events += 1
        event = source.events
        if event <= self.delivered[group]:
            return False  # a sibling delivered this OPEN already
        if packet.kind == _OPEN:
            self.delivered[group] = event
            self.depth[group] += 1
            return True
        source.barrier, source.closing = event, packet
        siblings = [s for s in self.groups[group] if s in self.live]
        if any(s.events < event for s in siblings):
            return False  # the last sibling to arrive delivers it
        self._closed(group, event)
        return True

    def _closed(self, group: int, event: int) -> None:
        self.delivered[group] = event
        self.depth[group] = max(self.depth[group] - 1, 0)
        for sibling in self.groups[group]:
            sibling.closing = None

    def _end(self, source: Input) -> None:
        if source in self.live:
            self.live.remove(source)
            if source.drain is not None:
                source.drain.stop()
            source.ring.close()
        group = source.group
        if group not in self.groups:
            return
        # A worker that ended inside a bracket (it failed) must not hold its siblings.
        siblings = [s for s in self.groups[group] if s in self.live]
        waiting = [s for s in siblings if self._waiting(s)]
        if siblings and len(waiting) == len(siblings):
            event = min(s.barrier for s in waiting)
            closing = next(s.closing for s in waiting if s.barrier == event)
            self._closed(group, event)
            self.initial.append(closing)
        elif not siblings:
            while self.depth[group]:
                self.depth[group] -= 1
                self.initial.append(self._closing(source))

    @staticmethod
    def _closing(source: Input) -> Packet:
        packet = Packet(None, kind=_CLOSE)
        packet.port, packet.index = source.port, source.index
        return packet

    def batches(self) -> Iterator[list[Packet]]:
        """Yield lists of packets until every input has ended."""
        if self.initial:
            self.received += len(self.initial)
            yield self.initial
            self.initial = []
        while self.live or self.initial:
            idle = True
            if self.initial:
                # brackets closed on behalf of a worker that ended inside them
                idle = False
                packets, self.initial = self.initial, []
                self.received += len(packets)
                yield packets
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
                ready = [s for s in self.live if s.held and not self._waiting(s)]
                if not ready:
                    # a policy drain empties its ring itself: poll those every 10 ms
                    drained = any(s.drain is not None for s in self.live)
                    readable = [
                        s.ring for s in self.live if not self._waiting(s) and s.drain is None
                    ]
                    if readable:
                        wait_any(readable, 0.01 if drained else 0.25)
                    else:
                        time.sleep(0.01)

    def close(self) -> None:
        """Stop reading: producers still sending get BrokenConnection."""
        for source in self.live:
            if source.drain is not None:
                source.drain.stop()
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
