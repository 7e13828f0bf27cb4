"""Watching connections of a running network without touching the runtime's code.

`TappedSupervisor` is the runtime's `Supervisor` plus side rings: for each watched
connection, every producer instance gets one more destination on the same outport (a
"tap" ring owned, and finally unlinked, by this process). The runtime's fan-out sends each
packet to every destination of an outport, so the tap receives a copy of what the
connection carries, encoded once; the component never knows.

`TapReader` drains the tap rings continuously in a thread and samples them: it counts
every record but decodes and reports at most `rate` packets per connection per second,
so the producer never waits on a slow client. The one cost to the pipeline is the extra
copy into the tap ring; a reader that fell so far behind that a tap ring filled up would
make the producer wait (the runtime has no `latest`-policy destination yet), which is why
the reader never blocks on the WebSocket: it hands events to a bounded queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fbp.codec import decode
from fbp.errors import EndOfStream, RingEmpty
from fbp.ring import RecordKind, Ring, new_segment_name, wait_any
from fbp.runtime.supervisor import Supervisor

__all__ = ["Tap", "TapReader", "TappedSupervisor"]

POLL_INTERVAL = 0.05
RECORDS_PER_READ = 256


@dataclass
class Tap:
    """One watched connection from one producer instance: its side ring and counters."""

    connection: object  # fbp.runtime.plan.PlannedConnection
    ring_name: str
    owner: Ring
    reader: Ring | None = None
    packets: int = 0
    sampled: int = 0
    connected: bool = False
    ended: bool = False
    window_start: float = 0.0
    window_count: int = 0
    extra: dict = field(default_factory=dict)


class TappedSupervisor(Supervisor):
    """A Supervisor that also copies the watched connections into tap rings.

    Args:
        plan: the checked plan.
        watched: numbers of the plan's connections to tap (`PlannedConnection.number`).
        on_built: called (with this supervisor) once rings exist, just before the
            processes are launched: the moment the network counts as started.
        on_event: callable(kind, tap, packet_or_None) for tap events, from the reader
            thread: kind is "connect", "data", "begingroup", "endgroup" or "disconnect".
        rate: packets per connection per second decoded and reported at most.
        **options: passed to Supervisor (paths, log, timeout, ...).
    """

    def __init__(
        self,
        plan,
        *,
        watched: set[int] | None = None,
        on_built: Callable | None = None,
        on_event: Callable | None = None,
        rate: float = 20.0,
        **options,
    ) -> None:
        super().__init__(plan, **options)
        self.watched = {c.number for c in plan.connections} if watched is None else watched
        self.on_built = on_built
        self.on_event = on_event or (lambda kind, tap, packet: None)
        self.rate = rate
        self.taps: list[Tap] = []
        self.built = False
        self.reader: TapReader | None = None

    def _build(self) -> None:
        super()._build()
        for connection in self.plan.connections:
            if connection.number not in self.watched:
                continue
            source = self.plan.processes[connection.src.process]
            # The same capacity as the connection itself: any record the producer can send
            # on it must fit the tap too (a smaller tap would fail the producer).
            capacity = self.plan.processes[connection.tgt.process].capacity
            for number, instance_name in enumerate(source.instances):
                name = new_segment_name(f"tap{connection.number}-{number}")
                tap = Tap(connection, name, Ring.create(capacity, name))
                self.taps.append(tap)
                self.instances[instance_name].spec["outputs"].append(
                    {"port": connection.src.port, "index": connection.src.index, "rings": [name]}
                )
        self.reader = TapReader(self.taps, self.on_event, self.rate)
        self.reader.start()
        self.built = True
        if self.on_built is not None:
            self.on_built(self)

    def run(self) -> int:
        """Run the network (see Supervisor.run), then stop the reader and unlink the taps.

        Raises:
            OSError: shared memory or processes cannot be created.
        """
        try:
            return super().run()
        finally:
            if self.reader is not None:
                self.reader.stop()
            for tap in self.taps:
                tap.owner.close()
                tap.owner.unlink()

    def request_stop(self) -> None:
        """Stop gracefully, as one Ctrl-C does: sources stop, rings drain, processes end.

        Safe from any thread: the supervisor's watch loop acts on it within 0.1 s.
        """
        # The runtime has no public stop() yet; its signal handler does exactly this.
        self.interrupts = max(self.interrupts, 1)

    def busy(self) -> bool:
        """True while some process may still process or send packets.

        A process counts as done once it has exited, or closed all its outputs, or (a sink)
        every input is closed by its producer and fully consumed. Read from the ring
        headers, so it is exact about packets in flight without asking the processes.
        """
        if not self.built:
            return True
        for instance in list(self.instances.values()):
            if instance.done:
                continue
            if instance.outputs:
                stats = [self.rings[name][0].raw_stats() for name in instance.outputs]
                if not all(s["producer_closed"] for s in stats):
                    return True
            elif instance.inputs:
                stats = [self.rings[name][0].raw_stats() for name in instance.inputs]
                if not all(s["producer_closed"] and s["fill_records"] == 0 for s in stats):
                    return True
            else:
                return True
        return False


class TapReader(threading.Thread):
    """Drains tap rings in the background and reports sampled events.

    Args:
        taps: the taps to read (their rings exist; producers attach later).
        on_event: callable(kind, tap, packet_or_None).
        rate: packets per tap per second decoded and reported at most.
    """

    def __init__(self, taps: list[Tap], on_event: Callable, rate: float) -> None:
        super().__init__(name="fbp-tap-reader", daemon=True)
        self.taps = taps
        self.on_event = on_event
        self.rate = rate
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the thread to finish, wait for it, and let go of the rings."""
        self._stop_event.set()
        if self.is_alive():
            self.join(5)
        for tap in self.taps:
            if tap.reader is not None:
                tap.reader.close()
                tap.reader = None

    def run(self) -> None:
        for tap in self.taps:
            tap.reader = Ring.attach(tap.ring_name, "consumer")
        while not self._stop_event.is_set():
            live = [tap for tap in self.taps if not tap.ended]
            if not live:
                return
            wait_any([tap.reader for tap in live], POLL_INTERVAL)
            for tap in live:
                self._drain(tap)

    def _drain(self, tap: Tap) -> None:
        try:
            records = tap.reader.recv_many(RECORDS_PER_READ, 0)
        except RingEmpty:
            return
        except EndOfStream:
            tap.ended = True
            if tap.connected:
                self.on_event("disconnect", tap, None)
            return
        now = time.monotonic()
        for record in records:
            kind = record.kind
            if kind in (RecordKind.EOF, RecordKind.CONTROL):
                record.release()
                continue
            tap.packets += 1
            if not tap.connected:
                tap.connected = True
                self.on_event("connect", tap, None)
            if now - tap.window_start >= 1.0:
                tap.window_start, tap.window_count = now, 0
            if tap.window_count < self.rate:
                tap.window_count += 1
                tap.sampled += 1
                packet = decode(record, kind)
                event = {RecordKind.OPEN: "begingroup", RecordKind.CLOSE: "endgroup"}.get(
                    RecordKind(kind), "data"
                )
                self.on_event(event, tap, packet)
            record.release()
