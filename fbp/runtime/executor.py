"""Running one component instance: setup, the packet loop, finish, teardown.

The same executor runs a component inside `fbp run`'s child processes (rings) and inside
the test harness `fbp.testing.run_component` (in-memory queues): only the receiver and
the senders differ.

Packet errors follow DESIGN.md: an exception in `process` is counted, reported with the
process name, the packet's port and seq and the traceback, sent to `ERROR` as a Record,
and the loop goes on with the next packet. Errors in `setup`, `generate`, `finish` are
fatal: they propagate (the child then exits non-zero).
"""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from fbp.component import ERROR_PORT, Component, ComponentSpec
from fbp.packet import Packet, PacketKind
from fbp.runtime.senders import Senders

__all__ = ["Executor"]

_DATA = PacketKind.DATA


class Executor:
    """Drive one component instance.

    Args:
        spec: the component.
        name: the process name (`NAME` or `NAME#i`).
        config: config values by keyword (already converted by port types).
        receiver: has `batches()` yielding lists of Packets (stream inputs).
        senders: the outports.
        on_error: called as on_error(packet, exception, traceback_text) after counting.
        should_stop: polled by sources between items; True stops the source cleanly.
        logger: the component's logger.
    """

    def __init__(
        self,
        spec: ComponentSpec,
        name: str,
        config: dict[str, Any],
        receiver: Any,
        senders: Senders,
        on_error: Callable[[Packet, BaseException, str], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        logger: logging.Logger | None = None,
    ) -> None:
        self.spec = spec
        self.name = name
        self.config = config
        self.receiver = receiver
        self.senders = senders
        self.on_error = on_error
        self.should_stop = should_stop
        self.errors = 0
        self.processed = 0
        self.instance: Component = spec.implementation()
        self.instance.name = name
        self.instance.config = dict(config)
        self.instance.out = senders
        self.instance.log = logger or logging.getLogger(f"fbp.process.{name}")
        default = spec.default_outport
        self._default = senders[default] if default else None
        self._error = senders[ERROR_PORT]
        self._source_seq = 0

    def run(self) -> None:
        """Run to the end of all inputs (or until a source stops); always tears down.

        Raises:
            Exception: whatever setup, generate or finish raised (fatal for the process).
        """
        instance = self.instance
        try:
            instance.setup(**self.config)
            if self.spec.kind == "source":
                self._run_source()
            else:
                self._run_stream()
            instance.finish()
        finally:
            try:
                instance.teardown()
            finally:
                self.senders.close()

    # -- sources -------------------------------------------------------------------------

    def _run_source(self) -> None:
        generator = self.instance.generate()
        should_stop = self.should_stop
        try:
            for item in generator:
                if item is not None:
                    self._emit_source(item)
                if should_stop():
                    break
        finally:
            if hasattr(generator, "close"):
                generator.close()

    def _emit_source(self, item: Any) -> None:
        if self._default is None:
            raise RuntimeError(
                f"{self.spec.full_name} yielded a value but has no default outport; "
                "use ports.NAME.send(...) instead"
            )
        if type(item) is Packet:
            if item.seq is None:
                item.seq = self._source_seq
            if item.timestamp is None:
                item.timestamp = time.time()
            self._default.send_packet(item)
        else:
            self._default.send(item, seq=self._source_seq, timestamp=time.time())
        self._source_seq += 1

    # -- stream components ------------------------------------------------------------------

    def _run_stream(self) -> None:
        process = self.instance.process
        for batch in self.receiver.batches():
            for packet in batch:
                if packet.kind != _DATA:
                    self._forward_bracket(packet)
                    continue
                try:
                    result = process(packet)
                    if result is None:
                        pass
                    elif inspect.isgenerator(result):
                        for item in result:
                            self._emit(item, packet)
                    else:
                        self._emit(result, packet)
                except Exception as exc:  # noqa: BLE001 - the packet fails, the component goes on
                    self._failed(packet, exc)
                self.processed += 1
            # Drop our references before the next wait: each packet pins its ring slot, and
            # a held batch of large frames can fill the input ring and deadlock its producer.
            batch = packet = result = item = None

    def _emit(self, item: Any, packet: Packet) -> None:
        if self._default is None:
            raise RuntimeError(
                f"{self.spec.full_name}.process returned a value but the component has no "
                "default outport (OUT, or exactly one outport); use self.send(PORT, value)"
            )
        if type(item) is Packet:
            self._default.send_packet(item)
        else:
            self._default.send(item, seq=packet.seq, meta=packet.meta, timestamp=packet.timestamp)

    def _forward_bracket(self, packet: Packet) -> None:
        handler = getattr(self.instance, "bracket", None)
        if handler is not None:
            handler(packet)
            return
        for sender in self.senders:
            if sender.name != ERROR_PORT:
                sender.send_packet(packet)

    def _failed(self, packet: Packet, exc: BaseException) -> None:
        self.errors += 1
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if self.on_error is not None:
            self.on_error(packet, exc, text)
        self._error.send(
            {
                "process": self.name,
                "port": packet.port,
                "index": packet.index,
                "seq": packet.seq,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": text,
            },
            seq=packet.seq,
            meta=packet.meta,
            timestamp=packet.timestamp,
        )
