"""Watching connections of a running network without touching the runtime's code.

`TappedSupervisor` is the runtime's `Supervisor`, through its public observer hooks, plus
side rings: for each watched connection, every producer instance gets one more destination
on the same outport (a "tap" ring owned, and finally unlinked, by this process). The
runtime's fan-out sends each packet to every destination of an outport, so the tap receives
a copy of what the connection carries, encoded once; the component never knows.

`TapReader` drains the tap rings continuously in a thread and samples them: it counts
every record but decodes at most `rate` packets per connection per second. A sample is
reported once the connection's consumer has released that packet (the ring header's
`packets_released` counter reached it) and the producer has closed the connection or
SETTLE_SECONDS passed, so `network:data` means "delivered", and a status request right
after the last packet of a finite stream sees it gone. The one cost to the pipeline is the
extra copy into the tap ring; the reader never waits on a client (events go to a queue), so
a tap ring fills up only if this thread is starved, and then the producer waits as on any
full ring (the runtime has no `latest`-policy destination yet).
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fbp.codec import decode
from fbp.errors import EndOfStream, RingEmpty
from fbp.protocol.messages import preview
from fbp.ring import RecordKind, Ring, new_segment_name, wait_any
from fbp.runtime.supervisor import Supervisor

__all__ = ["Tap", "TapReader", "TappedSupervisor"]

POLL_INTERVAL = 0.05
PENDING_POLL_INTERVAL = 0.005
RECORDS_PER_READ = 256
# Samples waiting for their consumer; beyond this the oldest are reported undelivered
# rather than held (a stalled consumer must not make the reader grow without bound).
MAX_PENDING = 256
# A delivered sample is reported when its producer has closed the connection or after
# this long: a tool that asks for the status right after the last packet of a finite
# stream then sees the producer finished too, not caught between its send and its close.
SETTLE_SECONDS = 0.1
_EVENTS = {int(RecordKind.OPEN): "begingroup", int(RecordKind.CLOSE): "endgroup"}


@dataclass
class Tap:
    """One watched connection from one producer instance: its side ring and counters.

    `delivered` are the connection's real rings from that producer (one per consumer
    instance); their `packets_released` counters say how far the consumers got.
    """

    connection: Any  # fbp.runtime.plan.PlannedConnection, None for an exported outport
    ring_name: str
    owner: Ring | None  # None when the supervisor owns the ring (exported outports)
    exported: str | None = None  # public name of an exported outport: reported in full
    delivered: list[Ring] = field(default_factory=list)
    reader: Ring | None = None
    records: int = 0
    sampled: int = 0
    connected: bool = False
    ended: bool = False
    window_start: float = 0.0
    window_count: int = 0
    pending: collections.deque = field(default_factory=collections.deque)

    def released(self) -> int:
        """Records of this connection the consumers have finished with."""
        return sum(ring.raw_stats()["packets_released"] for ring in self.delivered)


class TappedSupervisor(Supervisor):
    """A Supervisor that also copies the watched connections into tap rings.

    Args:
        plan: the checked plan.
        watched: numbers of the plan's connections to tap (`PlannedConnection.number`);
            None taps every connection.
        on_started: called (with this supervisor) once every process has attached its
            rings and finished `setup` (or already exited): the network has started.
        on_event: callable(kind, tap, preview_or_None) from the reader thread; kind is
            "connect", "data", "begingroup", "endgroup" or "disconnect".
        on_problem: callable(process_name, text) for a packet that failed in `process`
            or a process that failed.
        rate: packets per connection per second decoded and reported at most.
        **options: passed to Supervisor (paths, log, timeout, ...).
    """

    def __init__(
        self,
        plan,
        *,
        watched: set[int] | None = None,
        on_started: Callable | None = None,
        on_event: Callable | None = None,
        on_problem: Callable | None = None,
        rate: float = 20.0,
        **options,
    ) -> None:
        super().__init__(plan, **options)
        self.watched = {c.number for c in plan.connections} if watched is None else watched
        self.on_event = on_event or (lambda kind, tap, value: None)
        self.on_problem = on_problem or (lambda process, text: None)
        self.rate = rate
        self.taps: list[Tap] = []
        self.built = False
        self.reader: TapReader | None = None
        self.exported_inports: dict = {}
        self._on_started = on_started
        # The reader starts after on_started: "network:started" goes out before any data.
        self._reading = threading.Event()
        self.subscribe(self._observe)

    def _observe(self, event: str, **fields) -> None:
        if event == "built":
            self._add_taps()
        elif event == "started":
            if self._on_started is not None:
                self._on_started(self)
            self._reading.set()
        elif event == "message":
            self._report_problem(fields["instance"], fields["message"])

    def _add_taps(self) -> None:
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
                # The supervisor names each ring ...-c{connection}-{producer}-{consumer}.
                own = re.compile(rf"-c{connection.number}-{number}-\d+$")
                tap.delivered = [ring for key, (ring, _) in self.rings.items() if own.search(key)]
                self.taps.append(tap)
                self.add_output(instance_name, connection.src.port, connection.src.index, name)
        from fbp.protocol.exports import add_exported_ports

        self.exported_inports, exported_outports = add_exported_ports(self)
        for public, name in exported_outports:
            self.taps.append(Tap(None, name, None, exported=public))
        self.reader = TapReader(self.taps, self.on_event, self.rate, self._reading)
        self.reader.start()
        self.built = True

    def _report_problem(self, instance, message: dict) -> None:
        kind = message.get("t")
        if kind == "error":
            self.on_problem(
                instance.process,
                f"{instance.name}: packet seq={message.get('seq')} on {message.get('port')}: "
                f"{message.get('error')}",
            )
        elif kind == "fatal":
            self.on_problem(instance.process, f"{instance.name} failed: {message.get('error')}")

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
                if tap.owner is not None:
                    tap.owner.close()
                    tap.owner.unlink()

    def request_stop(self) -> None:
        """Stop as Ctrl-C does (see Supervisor.stop), and end the exported inports.

        Safe from any thread: the supervisor's watch loop acts on it within 0.1 s.
        """
        self.stop()
        # Exported inports never end by themselves: end them so their processes drain.
        for exported in self.exported_inports.values():
            exported.close()

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
    """Drains tap rings in the background and reports sampled, delivered events.

    Args:
        taps: the taps to read (their rings exist; producers attach later).
        on_event: callable(kind, tap, preview_or_None).
        rate: packets per tap per second decoded and reported at most.
        gate: reading starts once this is set (the network has started).
    """

    def __init__(
        self, taps: list[Tap], on_event: Callable, rate: float, gate: threading.Event
    ) -> None:
        super().__init__(name="fbp-tap-reader", daemon=True)
        self.taps = taps
        self.on_event = on_event
        self.rate = rate
        self.gate = gate
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Finish: report what is still pending, and let go of the rings."""
        self._stop_event.set()
        if self.is_alive():
            self.join(5)
        for tap in self.taps:
            self._flush(tap, everything=True)
            if tap.reader is not None:
                tap.reader.close()
                tap.reader = None

    def run(self) -> None:
        for tap in self.taps:
            tap.reader = Ring.attach(tap.ring_name, "consumer")
        while not self.gate.wait(POLL_INTERVAL):
            if self._stop_event.is_set():
                return
        while not self._stop_event.is_set():
            live = [tap for tap in self.taps if not tap.ended]
            if not live and not any(tap.pending for tap in self.taps):
                return
            waiting = any(tap.pending for tap in self.taps)
            if live:
                wait_any(
                    [tap.reader for tap in live],
                    PENDING_POLL_INTERVAL if waiting else POLL_INTERVAL,
                )
            else:
                time.sleep(PENDING_POLL_INTERVAL)
            for tap in self.taps:
                if not tap.ended:
                    self._drain(tap)
                self._flush(tap)

    def _drain(self, tap: Tap) -> None:
        try:
            records = tap.reader.recv_many(RECORDS_PER_READ, 0)
        except RingEmpty:
            return
        except EndOfStream:
            tap.ended = True
            return
        now = time.monotonic()
        for record in records:
            kind = int(record.kind)
            if kind in (RecordKind.EOF, RecordKind.CONTROL):
                record.release()
                continue
            tap.records += 1
            if tap.exported is not None:
                # An exported outport is a data path, not a preview: every packet, at once.
                self._emit(tap, _EVENTS.get(kind, "data"), preview(decode(record, kind).value))
                record.release()
                continue
            if now - tap.window_start >= 1.0:
                tap.window_start, tap.window_count = now, 0
            if tap.window_count < self.rate or kind in _EVENTS:
                tap.window_count += 1
                tap.sampled += 1
                # Preview now: an array decoded from the record is a view that dies with it.
                value = preview(decode(record, kind).value)
                tap.pending.append((tap.records, now, _EVENTS.get(kind, "data"), value))
                if len(tap.pending) > MAX_PENDING:
                    self._emit(tap, *tap.pending.popleft()[2:])
            record.release()

    def _flush(self, tap: Tap, everything: bool = False) -> None:
        if tap.pending:
            released = tap.released() if not everything else tap.records
            settled = time.monotonic() - SETTLE_SECONDS
            while tap.pending and tap.pending[0][0] <= released:
                if not (everything or tap.ended or tap.pending[0][1] <= settled):
                    break
                self._emit(tap, *tap.pending.popleft()[2:])
        if tap.ended and not tap.pending and tap.connected:
            tap.connected = False
            self.on_event("disconnect", tap, None)

    def _emit(self, tap: Tap, kind: str, value: Any) -> None:
        if not tap.connected:
            tap.connected = True
            self.on_event("connect", tap, None)
        self.on_event(kind, tap, value)
