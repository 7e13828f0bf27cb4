"""Exported ports of a running graph (`INPORT=`/`OUTPORT=`, `graph:addinport` ...): the
runtime protocol's `runtime:packet` sends packets into them and reports what leaves.

An exported inport is one more input ring of the process behind it (of its first worker
with `workers=N`), written by the protocol server; an exported outport is one more output
destination of the process behind it (of every worker), read by the tap reader and
reported in full (not sampled). Both rings belong to the supervisor like any other, so
its status, cleanup and failure handling cover them.

`connect`/`disconnect` events only frame a transmission (NoFlo clients send them around
each packet): an exported inport stays open until the network is stopped, when it is
closed so its process sees end of stream and the network drains.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fbp.codec import encode
from fbp.errors import BrokenConnection, PortTypeError, RingFull
from fbp.packet import Packet
from fbp.protocol.messages import ProtocolError
from fbp.ring import RecordKind, Ring, new_segment_name

__all__ = ["ExportedInport", "add_exported_ports", "port_descriptions"]

SEND_TIMEOUT = 2.0
_KINDS = {
    "data": RecordKind.DATA,
    "begingroup": RecordKind.OPEN,
    "endgroup": RecordKind.CLOSE,
}


@dataclass
class ExportedInport:
    """The producer end of an exported inport's ring, used by the protocol server."""

    public: str
    port: Any  # fbp.component.InPort
    ring_name: str
    producer: Ring | None = None
    closed: bool = False

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def send(self, event: str, payload: Any) -> None:
        """Deliver one protocol packet event into the network.

        Raises:
            ProtocolError: the value does not fit the port's type, the process is gone,
                or the ring stayed full for SEND_TIMEOUT seconds.
        """
        if event in ("connect", "disconnect"):
            return
        kind = _KINDS.get(event)
        if kind is None:
            raise ProtocolError("runtime", f"unknown packet event {event!r}")
        try:
            value = self.port.type.convert(payload) if kind == RecordKind.DATA else payload
        except PortTypeError as exc:
            raise ProtocolError(
                "runtime", f"exported port {self.public!r} ({self.port.type}): {exc}"
            ) from None
        with self.lock:
            if self.closed:
                raise ProtocolError("runtime", f"exported port {self.public!r} is closed")
            if self.producer is None:
                self.producer = Ring.attach(self.ring_name, "producer")
            try:
                self.producer.send(encode(Packet(value, kind=int(kind))), SEND_TIMEOUT, kind)
            except RingFull:
                raise ProtocolError(
                    "runtime",
                    f"exported port {self.public!r} is full: its process has not taken a packet "
                    f"for {SEND_TIMEOUT:g} s; send slower or wait",
                ) from None
            except BrokenConnection:
                raise ProtocolError(
                    "runtime", f"exported port {self.public!r}: its process has ended"
                ) from None

    def close(self) -> None:
        """End of stream for the process behind the port."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.producer is None:
                self.producer = Ring.attach(self.ring_name, "producer")
            self.producer.close()


def add_exported_ports(supervisor) -> tuple[dict[str, ExportedInport], list]:
    """Give the supervisor's processes the rings of the graph's exported ports.

    Called when the supervisor announces "built", after the supervisor made its own rings.
    Returns the exported inports by public name and (public name, ring name) pairs of
    exported outports for the tap reader.
    """
    plan = supervisor.plan
    graph = plan.graph
    inports: dict[str, ExportedInport] = {}
    for public, export in graph.inports.items():
        planned = plan.processes.get(export.process)
        port = planned.spec.inport(export.port, graph.case_sensitive) if planned else None
        if port is None:
            continue  # make_plan's validation reports dangling exports
        name = new_segment_name(f"in-{len(inports)}")
        first = planned.instances[0]
        supervisor.rings[name] = (Ring.create(planned.capacity, name), f"{public} -> {first}")
        instance = supervisor.instances[first]
        instance.spec["inputs"].append(
            {"port": port.name, "index": None, "ring": name, "config": port.config}
        )
        instance.inputs.append(name)
        if not port.config:
            instance.is_source = False  # it has a stream input now
        inports[public] = ExportedInport(public, port, name)
    outports = []
    for public, export in graph.outports.items():
        planned = plan.processes.get(export.process)
        port = planned.spec.outport(export.port, graph.case_sensitive) if planned else None
        if port is None:
            continue
        for number, instance_name in enumerate(planned.instances):
            name = new_segment_name(f"out-{len(outports)}-{number}")
            supervisor.rings[name] = (
                Ring.create(planned.capacity, name),
                f"{instance_name} -> {public}",
            )
            supervisor.instances[instance_name].spec["outputs"].append(
                {"port": port.name, "index": None, "rings": [name]}
            )
            supervisor.instances[instance_name].outputs.append(name)
            outports.append((public, name))
    return inports, outports


def port_descriptions(graph, registry) -> dict:
    """`runtime:ports` payload lists (inPorts, outPorts) for a graph's exported ports."""
    from fbp.protocol.components import protocol_type

    def describe(exports: dict, inport: bool) -> list[dict]:
        described = []
        for public, export in exports.items():
            entry = {"id": public, "type": "all", "required": False, "addressable": False}
            process = graph.processes.get(export.process)
            try:
                spec = registry.get(process.component) if process else None
            except Exception:  # noqa: BLE001 - an unknown component just has no type yet
                spec = None
            if spec is not None:
                find = spec.inport if inport else spec.outport
                port = find(export.port, graph.case_sensitive)
                if port is not None:
                    entry["type"] = protocol_type(port.type)
                    if port.description:
                        entry["description"] = port.description
            described.append(entry)
        return described

    return {"inPorts": describe(graph.inports, True), "outPorts": describe(graph.outports, False)}
