"""Test harness: run one component in this process, with in-memory inputs and outputs.

This is an explicit tool for unit tests of components, never a fallback for `fbp run`:
it uses the same executor as the runtime, and every packet makes a round trip through the
codec, so a value that could not cross a ring fails here too.

    from fbp.testing import run_component
    from fbp_components.core import Repeat

    result = run_component(Repeat, inputs={"IN": [1, 2, 3]})
    assert result.values("OUT") == [1, 2, 3]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from fbp.codec import decode, encode
from fbp.component import ComponentSpec, spec_of
from fbp.errors import ComponentError, PortTypeError
from fbp.packet import Packet, PacketKind
from fbp.runtime.executor import Executor
from fbp.runtime.senders import Destination, Sender, Senders

__all__ = ["ComponentResult", "run_component"]


class _ListDestination(Destination):
    """Collects what a port sends, decoded again as the consumer would see it."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self.closed = False

    def send_bytes(self, data: Any, kind: int = 0) -> None:
        if kind in (PacketKind.DATA, PacketKind.OPEN, PacketKind.CLOSE):
            self.packets.append(decode(bytes(data), kind))

    @contextlib.contextmanager
    def reserve(self, nbytes: int, kind: int = 0) -> Iterator[memoryview]:
        slot = bytearray(nbytes)
        yield memoryview(slot)
        self.send_bytes(slot, kind)

    def close(self) -> None:
        self.closed = True


class _ListReceiver:
    def __init__(self, packets: list[Packet]) -> None:
        self.packets = packets

    def batches(self) -> Iterator[list[Packet]]:
        if self.packets:
            yield self.packets


class ComponentResult:
    """What a component sent, by outport (and index for array ports).

    Attributes:
        outputs: {port: [Packet, ...]} for every outport (all indices together).
        by_index: {(port, index): [Packet, ...]}.
        errors: number of packets whose `process` raised.
        error_reports: (packet, exception, traceback) for each.
    """

    def __init__(self) -> None:
        self.outputs: dict[str, list[Packet]] = {}
        self.by_index: dict[tuple[str, int | None], list[Packet]] = {}
        self.errors = 0
        self.error_reports: list[tuple[Packet, BaseException, str]] = []

    def values(self, port: str = "OUT", index: int | None = None) -> list[Any]:
        """The values sent on `port` (only `index`, if given), brackets left out."""
        packets = self.outputs[port] if index is None else self.by_index.get((port, index), [])
        return [p.value for p in packets if p.kind == PacketKind.DATA]

    def seqs(self, port: str = "OUT") -> list[int | None]:
        """The seq of each data packet sent on `port`."""
        return [p.seq for p in self.outputs[port] if p.kind == PacketKind.DATA]


def _as_packets(port: str, index: int | None, values: Any) -> list[Packet]:
    packets = []
    for value in values:
        packet = value if isinstance(value, Packet) else Packet(value)
        packet = decode(encode(packet), packet.kind)  # the codec round trip a ring would do
        packet.port, packet.index = port, index
        packets.append(packet)
    return packets


def run_component(
    component: Any,
    inputs: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    name: str = "test",
    array_width: Mapping[str, int] | None = None,
    limit: int | None = None,
) -> ComponentResult:
    """Run a component to completion in this process.

    Args:
        component: a decorated function, a Component subclass, or a ComponentSpec.
        inputs: {port: [values or Packets]} for stream inports, delivered port by port in
            the given order; for an array port {port: {index: [...]}}.
        config: {port: value} for config inports; strings are converted as IIPs are.
        name: the process name the component sees.
        array_width: {port: N} connects indices 0..N-1 of array outports (default 1).
        limit: stop a source after this many packets (needed for endless sources).

    Returns:
        A ComponentResult.

    Raises:
        ComponentError: an unknown port, or a required config port without a value.
        PortTypeError: a config value that its port's type cannot convert.
        Exception: whatever setup, generate or finish raised.
    """
    spec: ComponentSpec = component if isinstance(component, ComponentSpec) else spec_of(component)
    values: dict[str, Any] = {}
    for port in spec.config_inports:
        if config and port.name in config:
            try:
                values[port.keyword] = port.type.convert(config[port.name])
            except PortTypeError as exc:
                raise PortTypeError(f"{spec.full_name} config {port.name}: {exc}") from None
        elif port.required:
            raise ComponentError(f"{spec.full_name}: config port {port.name} needs a value")
        else:
            values[port.keyword] = port.default
    for key in config or {}:
        if spec.inport(key) is None or not spec.inport(key).config:
            raise ComponentError(f"{spec.full_name} has no config inport {key!r}")

    packets: list[Packet] = []
    for port_name, given in (inputs or {}).items():
        port = spec.inport(port_name)
        if port is None or port.config:
            raise ComponentError(f"{spec.full_name} has no stream inport {port_name!r}")
        if isinstance(given, Mapping):
            for index, items in given.items():
                packets.extend(_as_packets(port.name, int(index), items))
        else:
            packets.extend(_as_packets(port.name, 0 if port.array else None, given))

    result = ComponentResult()
    senders = {}
    for port in spec.outports:
        width = (array_width or {}).get(port.name, 1) if port.array else None
        indices = list(range(width)) if width is not None else [None]
        destinations = {index: [_ListDestination()] for index in indices}
        senders[port.name] = (Sender(port.name, destinations), destinations)

    def on_error(packet: Packet, exc: BaseException, text: str) -> None:
        result.error_reports.append((packet, exc, text))

    counter = {"n": 0}

    def should_stop() -> bool:
        counter["n"] += 1
        return limit is not None and counter["n"] >= limit

    executor = Executor(
        spec,
        name,
        values,
        _ListReceiver(packets),
        Senders({port: sender for port, (sender, _) in senders.items()}),
        on_error=on_error,
        should_stop=should_stop,
    )
    executor.run()
    result.errors = executor.errors
    for port, (_, destinations) in senders.items():
        result.outputs[port] = []
        for index, group in destinations.items():
            collected = [p for d in group for p in d.packets]
            result.by_index[(port, index)] = collected
            result.outputs[port].extend(collected)
    return result
