"""The body of one component process: `python -m fbp.runtime.child`.

The supervisor writes this process's spec (msgpack, never pickle) to its stdin: the
component name, config IIPs, and the names of the rings to attach. The child reports to
the supervisor over a control pipe (fd given in the spec) with msgpack messages:

    {"t": "log", "level": 30, "msg": "..."}            a log record of the component
    {"t": "error", "seq": 12, "port": "IN", "error": "...", "traceback": "..."}
    {"t": "state", "state": "running" | "finishing"}
    {"t": "done", "processed": N, "errors": N, "cpu": S} before a clean exit
    {"t": "fatal", "error": "...", "traceback": "..."}  before exiting with status 1

Signals: SIGINT is ignored (the supervisor decides what Ctrl-C means); SIGUSR1 asks a
source to stop after its current packet; the child dies with its parent (PR_SET_PDEATHSIG),
so nothing outlives a killed `fbp run`.

A spec with `"bridge"` runs one end of a link across hosts instead of a component
(fbp.bridge.process).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
import traceback

import msgpack

# Tracebacks of the first failures are sent in full; after that only counts, so a
# component failing on every packet cannot flood the supervisor.
FULL_REPORTS = 20
PR_SET_PDEATHSIG = 1


class Control:
    """Writes msgpack messages to the supervisor's control pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.packer = msgpack.Packer(use_bin_type=True)
        # policy drains report from their own threads: one message at a time on the pipe
        self.lock = threading.Lock()

    def send(self, message: dict) -> None:
        with self.lock:
            self._send(message)

    def _send(self, message: dict) -> None:
        data = self.packer.pack(message)
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            pass  # the supervisor is gone; PDEATHSIG ends us shortly


HEARTBEAT_INTERVAL = 0.5


def start_heartbeat(control: Control) -> None:
    """Tell the supervisor twice a second that this process is alive and not stopped.

    A daemon thread: it needs the GIL for a moment every beat, so a process stopped by a
    signal, or stuck in a call that holds the GIL, goes silent and is detected as hung.
    """

    def beat() -> None:
        while True:
            time.sleep(HEARTBEAT_INTERVAL)
            control.send({"t": "beat"})

    threading.Thread(target=beat, name="fbp-heartbeat", daemon=True).start()


class PacketFailed(Exception):
    """An exception in process() under on_error=fail|restart: the process ends."""


class PreviewPublisher:
    """Component.publish_preview in a child: render and send at most 2 a second per name."""

    INTERVAL = 0.5

    def __init__(self, control: Control) -> None:
        self.control = control
        self.next_time: dict[str, float] = {}

    def __call__(self, name: str, value) -> None:
        now = time.monotonic()
        if now < self.next_time.get(name, 0.0):
            return
        self.next_time[name] = now + self.INTERVAL
        from fbp.observe.previews import render

        self.control.send({"t": "preview", "name": str(name), "preview": render(value)})


class ControlLogHandler(logging.Handler):
    """Sends a component's log records to the supervisor (which prefixes the name)."""

    def __init__(self, control: Control) -> None:
        super().__init__()
        self.control = control

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self.control.send({"t": "log", "level": record.levelno, "msg": message})
        except Exception:  # noqa: BLE001 - logging must never kill the component
            self.handleError(record)


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the death signal was armed


class StopFlag:
    """Set by SIGUSR1: a source finishes after its current packet."""

    def __init__(self) -> None:
        self.stopped = False

    def set(self, *_args) -> None:
        self.stopped = True

    def __call__(self) -> bool:
        return self.stopped


def run(spec: dict, control: Control, stop: StopFlag) -> int:
    """Attach the rings, run the component, report. Returns the exit status."""
    from fbp.errors import PortTypeError
    from fbp.packet import Packet
    from fbp.registry import Registry
    from fbp.ring import Ring
    from fbp.runtime.executor import Executor
    from fbp.runtime.ledger import RUN_LEDGER_ENV
    from fbp.runtime.receivers import Input, PolicyDrain, Receiver, read_first
    from fbp.runtime.senders import RingDestination, SampleTap, Sender, Senders

    name = spec["instance"]
    if spec.get("ledger_file"):
        os.environ[RUN_LEDGER_ENV] = spec["ledger_file"]
    component = Registry(spec["paths"]).get(spec["component"])

    logger = logging.getLogger(f"fbp.process.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(ControlLogHandler(control))

    outputs: dict[str, dict] = {port.name: {} for port in component.outports}
    taps: dict[str, dict] = {port.name: {} for port in component.outports}
    for entry in spec["outputs"]:
        rings = [Ring.attach(ring, "producer") for ring in entry["rings"]]
        index = entry["index"]
        if entry.get("tap"):
            taps[entry["port"]].setdefault(index, []).extend(
                SampleTap(ring, entry.get("rate", 4.0)) for ring in rings
            )
        else:
            outputs[entry["port"]].setdefault(index, []).append(RingDestination(rings))
    senders = Senders({port: Sender(port, groups, taps[port]) for port, groups in outputs.items()})

    config = {}
    config_rings = {}
    inputs = []
    for entry in spec["inputs"]:
        ring = Ring.attach(entry["ring"], "consumer")
        if entry["config"]:
            config_rings.setdefault(entry["port"], []).append(ring)
        else:
            drain = None
            policy = entry.get("policy", "reliable")
            if policy != "reliable":
                ring_name = entry["ring"]

                def report(total, ring_name=ring_name, policy=policy):
                    control.send(
                        {"t": "drops", "ring": ring_name, "count": total, "policy": policy}
                    )

                drain = PolicyDrain(
                    ring, policy, entry.get("keep", 1), entry.get("rate", 10.0), report
                )
            inputs.append(Input(entry["port"], entry["index"], ring, entry.get("group"), drain))
    for port in component.config_inports:
        if port.name in spec["config"]:
            value = port.type.convert(spec["config"][port.name])
        elif port.name in config_rings:
            first = None
            for ring in config_rings[port.name]:
                packet = read_first(ring)
                first = first or packet
            if first is None and port.required:
                raise PortTypeError(f"config port {port.name} got no value before its end")
            value = port.default if first is None else first.value
        else:
            value = port.default
        config[port.keyword] = value

    initial = []
    for port_name, index, raw in spec["iips"]:
        port = component.inport(port_name)
        packet = Packet(port.type.convert(raw))
        packet.port, packet.index = port_name, index
        initial.append(packet)

    reports = {"n": 0}

    policy = spec.get("on_error", "skip")

    def on_error(packet, exc, text) -> None:
        reports["n"] += 1
        full = reports["n"] <= FULL_REPORTS
        control.send(
            {
                "t": "error",
                "seq": packet.seq,
                "port": packet.port,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": text if full else "",
                "policy": policy,
            }
        )
        if policy != "skip":
            # on_error=fail|restart: the process ends here, the packet unreleased (a
            # restarted process gets it again)
            raise PacketFailed(f"packet seq={packet.seq} on {packet.port} failed: {exc}") from exc

    receiver = Receiver(inputs, initial)
    executor = Executor(
        component,
        name,
        config,
        receiver,
        senders,
        on_error=on_error,
        should_stop=stop,
        logger=logger,
    )
    executor.instance._publish_preview = PreviewPublisher(control)
    control.send({"t": "state", "state": "running"})
    executor.run()
    receiver.close()
    for groups in outputs.values():
        for destination in (d for group in groups.values() for d in group):
            if destination.undelivered:
                control.send(
                    {"t": "undelivered", "ring": destination.gone, "count": destination.undelivered}
                )
    control.send(
        {
            "t": "done",
            "processed": executor.processed,
            "errors": executor.errors,
            "cpu": time.process_time(),
        }
    )
    return 0


def main() -> int:
    """Entry point: read the spec from stdin, run, exit with the status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # first thing: a stop asked for while the component is still importing must be kept
    stop = StopFlag()
    signal.signal(signal.SIGUSR1, stop.set)
    spec = msgpack.unpackb(sys.stdin.buffer.read(), raw=False, strict_map_key=False)
    _die_with_parent(spec["parent_pid"])
    try:
        import setproctitle

        setproctitle.setproctitle(f"fbp: {spec['instance']}")
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    control = Control(spec["control_fd"])
    try:
        if spec.get("bridge"):
            from fbp.bridge.process import run_bridge

            return run_bridge(spec, control, stop, lambda: start_heartbeat(control))
        # beat from here on: a process stopped, or stuck while importing its component or
        # in setup(), goes silent and is found like one stuck in process()
        start_heartbeat(control)
        return run(spec, control, stop)
    except BaseException as exc:  # noqa: BLE001 - report every way of dying
        control.send(
            {
                "t": "fatal",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            }
        )
        if isinstance(exc, PacketFailed):
            # Leave at once, like a crash: unwinding would release the failed packet and
            # the rest of its batch, and a restarted process must receive them again.
            sys.stdout.flush()
            os._exit(1)
        return 1
    finally:
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
