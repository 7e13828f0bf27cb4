"""The supervisor: owns the rings, starts one process per component instance, watches them.

Life of a run:
1. remove segments of dead earlier runs; create one ring per (connection, producer
   instance, consumer instance) - the supervisor owns and finally unlinks every one;
2. start each instance as `python -m fbp.runtime.child` in its own process group (so a
   terminal's Ctrl-C reaches only the supervisor), spec on stdin, reports on a pipe;
3. watch: control messages (logs, packet errors), stderr lines (prefixed with the process
   name), exits, signals, the timeout; sample ring headers for the status display;
4. end when every instance has exited; print the summary; unlink everything.

Ctrl-C (SIGINT or SIGTERM): sources are asked to stop (SIGUSR1), the rest drains and
finishes, exit 130. A second Ctrl-C kills every child at once. A child that dies is
reported with its exit status; its rings are closed on its behalf so its peers see end of
stream (or a broken connection) instead of waiting forever; sources are stopped and the run
ends non-zero. Restart policies (resilience) hook in at `_on_exit`.

Observers (the FBP protocol, a dashboard, metrics) use the public surface only:
`subscribe(callback)` for events, `add_output` to tap a connection while the network is
built, `started` (an Event), `snapshot()` for numbers, and `stop()` from any thread.

Across hosts (fbp.cluster): with a `placement` a supervisor runs only the processes of its
`host`; each ring that crosses hosts gets a bridge instance on this side (`python -m
fbp.runtime.child` running fbp.bridge.link instead of a component): a *receiver* binds
and reports its endpoint ("bound" message), a *sender* starts once `connect_link` gives it
that endpoint. The coordinator's supervisor also gets a `remote` (the agents): the watch
loop steps it, waits for it, and passes stops and kills on to it.
"""

from __future__ import annotations

import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import msgpack

from fbp.ring import LATENCY_BOUNDS, Ring, new_segment_name, remove_stale_segments
from fbp.runtime.janitor import ensure_janitor
from fbp.runtime.ledger import Ledger
from fbp.runtime.plan import Plan, port_label
from fbp.runtime.status import ConnectionStatus, ProcessStatus, StatusBoard

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_TIMEOUT", "EVENTS", "Supervisor"]

EXIT_FAILED = 1
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130
STATUS_INTERVAL = 0.5
# After --timeout or a failure asks the sources to stop, processes get this long to drain
# and finish before they are killed (a source that never yields, or a network blocked on
# itself, cannot be stopped gracefully). Ctrl-C waits for a second Ctrl-C instead.
TIMEOUT_GRACE = 10.0
# A process silent this long (no heartbeat, sent twice a second) is stopped or hung.
HANG_TIMEOUT = 10.0
HOST_LOSS_POLICIES = ("stop", "continue")  # what a run does when a host is lost
# A restarted process waits 0.1 s; after dying within QUICK_DEATH s of a start it waits
# twice as long as the time before, at most 5 s.
RESTART_BACKOFF = 0.1
RESTART_BACKOFF_MAX = 5.0
QUICK_DEATH = 0.5
# What `Supervisor.subscribe` callbacks receive, with their keyword fields.
EVENTS = {
    "built": ("supervisor",),  # rings exist, no process started yet: add taps now
    "started": ("supervisor",),  # every process is set up (or already gone)
    "message": ("instance", "message"),  # a control message from a child
    "exit": ("instance", "returncode"),
    "sample": ("board",),  # numbers refreshed (every STATUS_INTERVAL)
    "finished": ("exit_status",),
}
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# what `merge_remote` copies from another host's snapshot
_REMOTE_PROCESS_FIELDS = (
    "state",
    "pid",
    "cpu",
    "cpu_percent",
    "rss",
    "packets_in",
    "packets_out",
    "rate",
    "errors",
    "restarts",
    "exit_status",
)
_REMOTE_CONNECTION_FIELDS = (
    "packets",
    "bytes",
    "fill_bytes",
    "fill_records",
    "full_waits",
    "empty_waits",
    "drops",
    "throughput",
    # measured where the ring lives (CLOCK_MONOTONIC is one clock per host only)
    "latency_count",
    "latency_sum",
    "latency_buckets",
    "latency_mean",
    "latency_p50",
    "latency_p99",
)


@dataclass
class Instance:
    """One child process: a component instance."""

    name: str
    process: str
    spec: dict
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    popen: subprocess.Popen | None = None
    control_fd: int | None = None
    stderr_fd: int | None = None
    is_source: bool = False
    buffers: dict = field(default_factory=dict)
    unpacker: msgpack.Unpacker = field(
        default_factory=lambda: msgpack.Unpacker(raw=False, strict_map_key=False)
    )
    done: bool = False
    restarts: int = 0
    restart_at: float | None = None  # a restart is due at this monotonic time
    launched_at: float = 0.0
    quick_deaths: int = 0  # consecutive deaths within QUICK_DEATH seconds of a start
    fatal: str | None = None  # the failure it reported before dying, as in `failures`
    last_heard: float = 0.0  # monotonic time of its last control message (heartbeats)
    started: bool = False  # set up: it said it runs
    hung: bool = False  # killed for silence; its exit is on the way
    bridge: str | None = None  # "send" or "receive" for one end of a link across hosts
    peer: str | None = None  # a bridge's far host
    link_ended: str | None = None  # why its far host is gone (`end_links`), for a bridge


class Supervisor:
    """Run a planned network to the end.

    Args:
        plan: the checked plan (`fbp.runtime.plan.make_plan`).
        paths: component search folders, passed on to the children.
        log: callable(str) for runtime messages (stderr); None for --quiet.
        display: a status display with `update(board)` and `stop()` or None.
        timeout: seconds before a graceful stop (exit 124), or None.
        hang_timeout: seconds without a heartbeat before a process counts as hung.
        placement: hosts of a multi-host run (fbp.cluster.placement); None: all here.
        host: which host of `placement` this supervisor runs.
        remote: the other hosts, stepped by the watch loop (fbp.cluster.coordinator).
        err: callable(str) for process output and reports (default: stderr).
        link_bind: callable(peer host) -> the address a link receiver binds to.
        keys: CurveZMQ key folder for the links (fbp.cluster.keys), or None.
        link_timeout: seconds of silence after which a link reports its peer lost.
        on_host_loss: "stop" (a lost host stops the run) or "continue" (the rest runs on:
            links with the lost host end, what they held is counted as lost).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        paths=(),
        log=None,
        display=None,
        timeout=None,
        hang_timeout: float = HANG_TIMEOUT,
        placement=None,
        host: str = "local",
        remote=None,
        err=None,
        link_bind=None,
        keys: str | None = None,
        link_timeout: float = 5.0,
        on_host_loss: str = "stop",
    ) -> None:
        if on_host_loss not in HOST_LOSS_POLICIES:
            raise ValueError(
                f"on_host_loss must be one of {', '.join(HOST_LOSS_POLICIES)}, got {on_host_loss!r}"
            )
        self.on_host_loss = on_host_loss
        self.plan = plan
        self.placement = placement
        self.host = host
        self.remote = remote
        self.link_bind = link_bind or (lambda peer: "0.0.0.0")
        self.keys = keys
        self.link_timeout = link_timeout
        self._err = err or _stderr
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._links: dict[str, Instance] = {}  # link id -> this side's bridge instance
        self.paths = list(paths)
        self.log = log or (lambda message: None)
        self.display = display
        self.timeout = timeout
        self.hang_timeout = hang_timeout
        self.rings: dict[str, tuple[Ring, str]] = {}
        self.instances: dict[str, Instance] = {}
        self.board = StatusBoard(host)
        self.interrupts = 0
        self.stopping = False
        self.kill_at: float | None = None
        self.timed_out = False
        self.failures: list[str] = []
        self.packet_errors = 0
        self.ledger = Ledger()
        self._drops: dict[str, int] = {}  # ring name -> packets its consumer's policy dropped
        # the ledger as a file the processes can read (fbp.runtime.ledger.current_ledger)
        self._ledger_dir = tempfile.mkdtemp(prefix="fbp-ledger-")
        self.ledger_file = os.path.join(self._ledger_dir, "ledger.json")
        self._ledger_written = -1
        self._selector: selectors.BaseSelector | None = None
        self.started = threading.Event()
        self.started_at = time.time()
        self.finished = False
        self._ready: set[str] = set()
        self._listeners: list = []
        # ring name -> (connection number, producer end, consumer end), for snapshot()
        self._ring_ends: dict[str, tuple[int | None, str, str]] = {}

    # -- for observers -----------------------------------------------------------------

    def subscribe(self, callback) -> None:
        """Call `callback(event, **fields)` on each event of `EVENTS`.

        Callbacks run on the supervisor's thread and must return quickly; one that raises
        is reported and the run goes on (watching must never break the network).
        """
        self._listeners.append(callback)

    def _emit(self, event: str, **fields) -> None:
        for callback in list(self._listeners):
            try:
                callback(event, **fields)
            except Exception as exc:  # noqa: BLE001 - an observer's bug is reported, not fatal
                self.log(f"fbp: observer failed on {event!r}: {exc!r}")

    def add_output(
        self,
        instance_name: str,
        port: str,
        index: int | None,
        ring: str,
        *,
        sampled: float | None = None,
    ) -> None:
        """Give a producer instance one more destination on an outport (a tap).

        Only while the network is being built (the "built" event): the ring must exist and
        its owner must unlink it. By default the fan-out sends every packet of the port to
        it too (and waits when it is full). With `sampled=R` it gets at most R packets a
        second, only when its reader has taken the previous one, and never makes the
        producer wait (`fbp.runtime.senders.SampleTap`): for watching without slowing.

        Raises:
            KeyError: no such instance.
            RuntimeError: the processes have been started already.
        """
        instance = self.instances[instance_name]
        if instance.popen is not None:
            raise RuntimeError(f"{instance_name} is running: outputs can only be added at build")
        entry = {"port": port, "index": index, "rings": [ring]}
        if sampled is not None:
            entry.update(tap=True, rate=float(sampled))
        instance.spec["outputs"].append(entry)

    def call_soon(self, function, *args) -> None:
        """Run `function(*args)` on the watch loop's thread (within 0.1 s); from any thread."""
        self._calls.put((function, args))

    def connect_link(self, link_id: str, endpoint: str) -> None:
        """Start this side's bridge sender of `link_id` towards the receiver at `endpoint`.

        Call it on the watch loop's thread (or through `call_soon`).
        """
        instance = self._links.get(link_id)
        if instance is None or instance.bridge != "send" or instance.popen is not None:
            return
        if instance.done:
            return
        instance.spec["endpoint"] = endpoint
        self._start(instance)

    def end_links(self, host: str, reason: str) -> None:
        """End every link with `host` (it is gone): receivers close their ring (end of
        stream downstream), senders stop (their producer sees the connection broken)."""
        for instance in self._links.values():
            if instance.peer != host or instance.done:
                continue
            instance.link_ended = reason
            if instance.popen is None:
                instance.done = True
                self.board.processes[instance.name].state = "failed"
                self._close_for(instance)
            elif instance.popen.poll() is None:
                try:
                    os.kill(instance.popen.pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
        self.log(f"fbp: links with host {host} ended: {reason}")

    def merge_remote(self, host: str, processes: list[dict], connections: list[dict]) -> None:
        """Take another host's numbers (its supervisor's `snapshot()` lists) into the board.

        On the watch loop's thread; used by the coordinator (fbp.cluster).
        """
        for data in processes:
            status = self.board.processes.get(data["name"])
            if status is None:
                status = ProcessStatus(data["name"], data["component"], host=host)
                status.process = data.get("process") or ""
                self.board.processes[data["name"]] = status
            for key in _REMOTE_PROCESS_FIELDS:
                setattr(status, key, data.get(key, getattr(status, key)))
            status.final_cpu = True  # never sampled here: its pid is another host's
        for data in connections:
            key = f"{host}:{data['ring']}"
            status = self.board.connections.get(key)
            if status is None:
                status = ConnectionStatus(data["label"], data["capacity"], host=host)
                status.connection = data.get("connection")
                self.board.connections[key] = status
                self._ring_ends[key] = (data.get("connection"), data["src"], data["tgt"])
            for field_name in _REMOTE_CONNECTION_FIELDS:
                setattr(status, field_name, data.get(field_name, getattr(status, field_name)))

    def stop(self) -> None:
        """Stop as Ctrl-C does: gracefully the first time, by killing the second time.

        Safe from any thread; the watch loop acts on it within 0.1 s.
        """
        self.interrupts += 1

    def snapshot(self) -> dict:
        """The network's state and numbers as plain JSON-able data (see docs/running.md).

        Safe from any thread: it copies what the watch loop last sampled.
        """
        graph = self.plan.graph
        if self.finished:
            state = "finished"
        elif self.stopping or self.interrupts:
            state = "stopping"
        else:
            state = "running"
        processes = []
        for name, status in list(self.board.processes.items()):
            process = status.process or name
            graph_process = graph.processes.get(process)
            metadata = graph_process.metadata if graph_process is not None else {}
            if status.host != self.host:
                rss = status.rss  # sampled on its own host
            else:
                rss = _rss(status.pid) if status.state == "running" else None
            processes.append(
                {
                    "name": name,
                    "process": process,
                    "component": status.component,
                    "state": status.state,
                    "pid": status.pid,
                    "cpu": status.cpu,
                    "cpu_percent": status.cpu_percent,
                    "rss": rss,
                    "packets_in": status.packets_in,
                    "packets_out": status.packets_out,
                    "rate": status.rate,
                    "errors": status.errors,
                    "restarts": status.restarts,
                    "exit_status": status.exit_status,
                    "node": metadata.get("node"),
                    "host": status.host,
                }
            )
        connections = []
        for ring_name, status in list(self.board.connections.items()):
            number, src, tgt = self._ring_ends.get(ring_name, (status.connection, "", ""))
            connections.append(
                {
                    "label": status.label,
                    "connection": number,
                    "src": src,
                    "tgt": tgt,
                    "ring": ring_name,
                    "packets": status.packets,
                    "bytes": status.bytes,
                    "fill_bytes": status.fill_bytes,
                    "fill_records": status.fill_records,
                    "capacity": status.capacity,
                    "full_waits": status.full_waits,
                    "empty_waits": status.empty_waits,
                    "drops": status.drops,
                    "throughput": status.throughput,
                    "latency_count": status.latency_count,
                    "latency_sum": status.latency_sum,
                    "latency_buckets": list(status.latency_buckets),
                    "latency_mean": status.latency_mean,
                    "latency_p50": status.latency_p50,
                    "latency_p99": status.latency_p99,
                    "host": status.host,
                }
            )
        return {
            "graph": graph.name or graph.file,
            "file": graph.file,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "elapsed": time.time() - self.started_at,
            "state": state,
            "processes": processes,
            "connections": connections,
            "latency_bounds": list(LATENCY_BOUNDS),
            "ledger": self.ledger.to_json(),
        }

    # -- setup -----------------------------------------------------------------------

    def _here(self, process: str) -> bool:
        return self.placement is None or self.placement.host_of(process) == self.host

    def _build(self) -> None:
        plan = self.plan
        for process in plan.processes.values():
            if not self._here(process.name):
                continue
            for number, name in enumerate(process.instances):
                self.instances[name] = Instance(
                    name,
                    process.name,
                    {
                        "instance": name,
                        "process": process.name,
                        "worker": number,
                        "workers": process.workers,
                        "component": process.spec.full_name,
                        "paths": self.paths,
                        "config": process.config,
                        # Config IIPs configure every worker; a stream IIP is one packet,
                        # so only the first worker gets it.
                        "iips": [list(iip) for iip in process.stream_iips] if number == 0 else [],
                        "inputs": [],
                        "outputs": [],
                        "parent_pid": os.getpid(),
                        "on_error": process.on_error,
                        "ledger_file": self.ledger_file,
                    },
                )
                self.board.processes[name] = ProcessStatus(
                    name, process.spec.full_name, process=process.name, host=self.host
                )
        if self.remote is not None:
            # the coordinator shows every host's processes; their numbers come from there
            for process in plan.processes.values():
                if not self._here(process.name):
                    host = self.placement.host_of(process.name)
                    for name in process.instances:
                        self.board.processes[name] = ProcessStatus(
                            name, process.spec.full_name, process=process.name, host=host
                        )
        for connection in plan.connections:
            source = plan.processes[connection.src.process]
            target = plan.processes[connection.tgt.process]
            src_here, tgt_here = self._here(source.name), self._here(target.name)
            if not (src_here or tgt_here):
                continue
            for s_number, s_name in enumerate(source.instances):
                group = []
                for t_number, t_name in enumerate(target.instances):
                    link_id = f"c{connection.number}-{s_number}-{t_number}"
                    name = new_segment_name(link_id)
                    src, tgt = (
                        port_label(connection.src, s_name),
                        port_label(connection.tgt, t_name),
                    )
                    label = f"{src} -> {tgt}"
                    if not tgt_here:
                        label += f" (to {self.placement.host_of(target.name)})"
                    elif not src_here:
                        label += f" (from {self.placement.host_of(source.name)})"
                    self.rings[name] = (Ring.create(target.capacity, name), label)
                    self._ring_ends[name] = (connection.number, src, tgt)
                    if src_here:
                        group.append(name)
                    else:
                        self._add_bridge("receive", link_id, name, source.name)
                    if not tgt_here:
                        self._add_bridge("send", link_id, name, target.name)
                        continue
                    self.instances[t_name].spec["inputs"].append(
                        {
                            "port": connection.tgt.port,
                            "index": connection.tgt.index,
                            "ring": name,
                            "config": connection.tgt_port.config,
                            # rings of one connection from several workers: brackets merge
                            "group": connection.number,
                            "policy": connection.delivery(target),
                            "keep": target.keep,
                            "rate": target.rate,
                        }
                    )
                    self.instances[t_name].inputs.append(name)
                if not src_here:
                    continue
                # A stream is spread over the workers; a config value (a mask, a geometry)
                # must reach every worker, so each worker's ring is its own destination.
                groups = [[ring] for ring in group] if connection.tgt_port.config else [group]
                for rings in groups:
                    self.instances[s_name].spec["outputs"].append(
                        {"port": connection.src.port, "index": connection.src.index, "rings": rings}
                    )
                self.instances[s_name].outputs.extend(group)
        for instance in self.instances.values():
            if instance.bridge:
                continue  # a bridge receiver ends with its link's end of stream, not a stop
            streams = [i for i in instance.spec["inputs"] if not i["config"]]
            has_stream_ports = bool(self.plan.processes[instance.process].spec.stream_inports)
            instance.is_source = not streams and not (has_stream_ports and instance.spec["iips"])
        self._emit("built", supervisor=self)

    def _add_bridge(self, role: str, link_id: str, ring: str, far_process: str) -> None:
        """This side of a link across hosts: an instance running fbp.bridge on `ring`."""
        peer = self.placement.host_of(far_process)
        name = f"bridge:{link_id}{'>' if role == 'send' else '<'}{peer}"
        spec = {
            "instance": name,
            "bridge": role,
            "link": link_id,
            "ring": ring,
            # a receiver binds a free port and reports it; a sender waits for that address
            "endpoint": f"tcp://{self.link_bind(peer)}:0" if role == "receive" else None,
            "keys": self.keys,
            "peer_timeout": self.link_timeout,
            "parent_pid": os.getpid(),
        }
        instance = Instance(name, name, spec, bridge=role, peer=peer)
        (instance.inputs if role == "send" else instance.outputs).append(ring)
        self.instances[name] = instance
        self._links[link_id] = instance
        self.board.processes[name] = ProcessStatus(name, f"bridge/{role}", host=self.host)

    def _launch(self, instance: Instance) -> None:
        control_read, control_write = os.pipe()
        instance.spec["control_fd"] = control_write
        # -P: never put the current directory on sys.path (a source checkout there would
        # shadow the installed package).
        popen = subprocess.Popen(
            [sys.executable, "-P", "-m", "fbp.runtime.child"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(control_write,),
            process_group=0,
            close_fds=True,
        )
        os.close(control_write)
        instance.popen = popen
        instance.control_fd = control_read
        instance.stderr_fd = popen.stderr.fileno()
        os.set_blocking(control_read, False)
        os.set_blocking(instance.stderr_fd, False)
        popen.stdin.write(msgpack.packb(instance.spec, use_bin_type=True))
        popen.stdin.close()
        status = self.board.processes[instance.name]
        status.pid = popen.pid
        status.state = "running"
        instance.last_heard = instance.launched_at = time.monotonic()
        instance.started = instance.hung = False

    # -- the run ---------------------------------------------------------------------

    def run(self) -> int:
        """Run the network; return the exit status (0, 1, 124 or 130).

        Raises:
            OSError: shared memory or processes cannot be created.
        """
        previous = {}
        if threading.current_thread() is threading.main_thread():
            # an agent runs supervisors in threads: its own signals stop them
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
            }
        selector = selectors.DefaultSelector()
        self._selector = selector
        try:
            remove_stale_segments()
            ensure_janitor()
            self._build()
            for instance in self.instances.values():
                if instance.bridge == "send":
                    continue  # started by connect_link, once the far end has bound
                self._start(instance)
            self.log(f"fbp: started {len(self.instances)} process(es), {len(self.rings)} ring(s)")
            self._watch(selector)
        finally:
            self.finished = True
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()
            for instance in self.instances.values():
                self._close_pipes(instance)
            selector.close()
            if self.remote is not None:
                self.remote.close()
            if self.display is not None:
                self.display.stop()
            self._sample()
            for ring, _ in self.rings.values():
                ring.close()
                ring.unlink()
            shutil.rmtree(self._ledger_dir, ignore_errors=True)
        status = self._exit_status()
        self._emit("finished", exit_status=status)
        return status

    def _exit_status(self) -> int:
        if self.interrupts:
            return EXIT_INTERRUPTED
        if self.timed_out:
            return EXIT_TIMEOUT
        if self.failures or self.packet_errors:
            return EXIT_FAILED
        return 0

    def _watch(self, selector: selectors.BaseSelector) -> None:
        started = time.monotonic()
        next_sample = started
        killed = False
        while any(not i.done for i in self.instances.values()) or (
            self.remote is not None and not self.remote.done
        ):
            for key, _ in selector.select(0.1):
                instance, stream = key.data
                self._read(instance, stream, selector)
            while not self._calls.empty():
                function, args = self._calls.get()
                function(*args)
            if self.remote is not None:
                self.remote.step()
            for instance in list(self.instances.values()):
                if instance.popen is None:
                    continue  # a bridge sender waiting for its far end's address
                if instance.restart_at is not None:
                    if time.monotonic() >= instance.restart_at:
                        self._relaunch(instance)
                elif not instance.done and instance.popen.poll() is not None:
                    self._drain(instance, selector)
                    self._on_exit(instance, instance.popen.returncode)
            now = time.monotonic()
            self._check_hangs(now)
            self._publish_ledger()
            if self.interrupts >= 2 and not killed:
                self.log("fbp: second interrupt: killing every process")
                self._kill_all()
                killed = True
            elif self.interrupts and not self.stopping:
                self.log("fbp: interrupted: stopping sources, draining (Ctrl-C again to abort)")
                self._stop_sources()
            if self.timeout is not None and not self.stopping and now - started > self.timeout:
                self.timed_out = True
                self.log(f"fbp: timeout after {self.timeout:g} s: stopping sources, draining")
                self._stop_sources(grace=TIMEOUT_GRACE)
            if self.kill_at is not None and now > self.kill_at and not killed:
                self.log(f"fbp: still running {TIMEOUT_GRACE:g} s after the stop: killing")
                self._kill_all()
                killed = True
            if now >= next_sample:
                next_sample = now + STATUS_INTERVAL
                self._sample()
                self._emit("sample", board=self.board)
                if self.display is not None:
                    self.display.update(self.board)
        for instance in self.instances.values():
            self._drain(instance, selector)

    def _on_signal(self, signum, frame) -> None:
        self.interrupts += 1

    def stop_after_failure(self, reason: str) -> None:
        """Stop the sources (once) because something failed; kill what is left after
        TIMEOUT_GRACE. On the watch loop's thread."""
        if not self.stopping and self.interrupts == 0:
            self.log(f"fbp: stopping the sources because {reason}")
            self._stop_sources(grace=TIMEOUT_GRACE)

    def stop_sources(self, grace: float | None = None) -> None:
        """Stop the sources so the network drains (Ctrl-C's first step); with `grace`,
        kill what is still running after that many seconds. On the watch loop's thread."""
        if not self.stopping:
            self._stop_sources(grace)

    def _stop_sources(self, grace: float | None = None) -> None:
        """Ask the sources to stop; with `grace`, kill everything if not done by then."""
        self.stopping = True
        if grace is not None:
            self.kill_at = time.monotonic() + grace
        if self.remote is not None:
            self.remote.stop(grace)
        for instance in self.instances.values():
            if instance.is_source and not instance.done:
                self._ask_to_stop(instance)

    def _ask_to_stop(self, instance: Instance) -> None:
        """SIGUSR1 to a source that is set up; one still starting gets it once it says it
        runs (`_message`): before its handler is in place the signal would kill it."""
        if instance.popen is None or not instance.started:
            return
        try:
            os.kill(instance.popen.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    def _kill_all(self) -> None:
        if self.remote is not None:
            self.remote.kill()
        for instance in self.instances.values():
            popen = instance.popen
            if popen is not None and popen.poll() is None:
                popen.kill()
        for instance in self.instances.values():
            if instance.popen is not None:
                try:
                    instance.popen.wait(5)
                except subprocess.TimeoutExpired:
                    pass

    def _sample(self) -> None:
        for name, count in self._drops.items():
            if name in self.board.connections:
                self.board.connections[name].drops = count
        self.board.sample(
            self.rings, {name: (i.inputs, i.outputs) for name, i in self.instances.items()}
        )

    # -- what children say -----------------------------------------------------------

    def _read(self, instance: Instance, stream: str, selector) -> bool:
        """Read once from a child's pipe; False when nothing was there."""
        fd = instance.control_fd if stream == "control" else instance.stderr_fd
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            try:
                selector.unregister(fd)
            except (KeyError, ValueError):
                pass
            if stream == "stderr" and instance.buffers.get("stderr"):
                self._stderr_line(instance, instance.buffers.pop("stderr"))
            return True
        if stream == "control":
            instance.last_heard = time.monotonic()
            instance.unpacker.feed(data)
            for message in instance.unpacker:
                self._message(instance, message)
        else:
            text = instance.buffers.get("stderr", b"") + data
            *lines, rest = text.split(b"\n")
            instance.buffers["stderr"] = rest
            for line in lines:
                self._stderr_line(instance, line)
        return True

    def _drain(self, instance: Instance, selector) -> None:
        """Read what an exited child left in its pipes (its write ends are closed now)."""
        for stream, fd in (("control", instance.control_fd), ("stderr", instance.stderr_fd)):
            if fd is None:
                continue  # never started: a link whose far end was gone before it bound
            while fd in selector.get_map():
                if not self._read(instance, stream, selector):
                    break

    def _stderr_line(self, instance: Instance, line: bytes) -> None:
        self._err(f"{instance.name}: {line.decode(errors='replace')}\n")
        sys.stderr.flush()

    def _message(self, instance: Instance, message: dict) -> None:
        kind = message.get("t")
        status = self.board.processes[instance.name]
        if kind == "log":
            import logging

            level = logging.getLevelName(message["level"])
            self._err(f"{instance.name}: {level}: {message['msg']}\n")
        elif kind == "error":
            if message.get("policy", "skip") == "skip":
                self.packet_errors += 1
            self.ledger.add(
                f"{instance.name}.{message.get('port')}",
                "failed",
                str(message.get("error", "")).split(":")[0],
                seq=message.get("seq"),
            )
            status.errors += 1
            where = f"packet seq={message['seq']} on {message['port']}"
            self._err(f"{instance.name}: error in process() for {where}: {message['error']}\n")
            if message.get("traceback"):
                self._err(_indent(message["traceback"]))
        elif kind == "fatal":
            instance.fatal = f"{instance.name}: {message['error']}"
            self.failures.append(instance.fatal)
            self._err(f"{instance.name}: failed: {message['error']}\n")
            self._err(_indent(message["traceback"]))
        elif kind == "done":
            status.errors = message.get("errors", status.errors)
            status.cpu = message.get("cpu", status.cpu)
            status.final_cpu = True
        elif kind == "beat":
            return  # last_heard is enough
        elif kind == "state":
            status.state = message["state"]
            missed_stop = not instance.started and self.stopping and instance.is_source
            instance.started = True
            if missed_stop:
                self._ask_to_stop(instance)  # the stop it missed while starting
            self._mark_ready(instance.name)
        elif kind == "undelivered":
            # sent after the connection's consumer was gone for good (a lost host's link)
            name = message.get("ring")
            label = self.rings[name][1] if name in self.rings else str(name)
            self.ledger.add(label, "lost", "sent after its consumer was gone", message["count"])
        elif kind == "drops":
            # a latest/sampled input left packets out: totals per ring, counted once
            name = message.get("ring")
            if name in self.rings:
                _, label = self.rings[name]
                before = self._drops.get(name, 0)
                self._drops[name] = total = max(before, int(message["count"]))
                self.ledger.add(label, "dropped", f"policy={message.get('policy')}", total - before)
        sys.stderr.flush()
        self._emit("message", instance=instance, message=message)

    def _mark_ready(self, name: str) -> None:
        """Announce "started" once every instance is set up (or gone)."""
        self._ready.add(name)
        if not self.started.is_set() and len(self._ready) >= len(self.instances):
            self.started.set()
            self._emit("started", supervisor=self)

    def _on_exit(self, instance: Instance, returncode: int) -> None:
        self._handle_exit(instance, returncode)
        self._mark_ready(instance.name)
        self._emit("exit", instance=instance, returncode=returncode)

    def _handle_exit(self, instance: Instance, returncode: int) -> None:
        if returncode != 0 and self._restart_wanted(instance, returncode):
            self._schedule_restart(instance, returncode)
            return
        instance.done = True
        status = self.board.processes[instance.name]
        status.exit_status = returncode
        if returncode == 0:
            status.state = "finished"
            self.log(f"fbp: {instance.name} finished")
            return
        goes_on = self.link_ended_on_purpose(instance)
        if goes_on:
            # the run goes on without the far host: the host's loss is the failure, once
            status.state = "lost"
            reason = f"ended: {instance.link_ended}"
            self.log(f"fbp: {instance.name} {reason}; the run goes on (--on-host-loss continue)")
        else:
            status.state = "failed" if returncode > 0 else "killed"
            if returncode < 0:
                reason = f"killed by signal {signal.Signals(-returncode).name}"
            else:
                reason = f"exited with status {returncode}"
            message = f"{instance.name} ({status.component}, pid {status.pid}) {reason}"
            if instance.fatal is None or returncode < 0:
                self.failures.append(message)
            self._err(f"fbp: process {message}\n")
        # What waited in its input rings (received or not) will never be processed.
        for name in instance.inputs:
            ring, label = self.rings[name]
            stats = ring.raw_stats()
            waiting = stats["packets"] - stats["packets_released"]
            self.ledger.add(label, "lost", f"{instance.name} {reason}", waiting)
        self._close_for(instance)
        if not goes_on:
            self.stop_after_failure("a process failed")

    def link_ended_on_purpose(self, instance: Instance) -> bool:
        """True for a bridge ended because its far host is gone, in a run that goes on."""
        return instance.link_ended is not None and self.on_host_loss == "continue"

    # -- hangs and restarts --------------------------------------------------------------

    def _publish_ledger(self) -> None:
        if self.ledger.version != self._ledger_written:
            self._ledger_written = self.ledger.version
            try:
                self.ledger.write(self.ledger_file)
            except OSError as exc:
                self.log(f"fbp: cannot update the ledger file: {exc}")

    def _check_hangs(self, now: float) -> None:
        """Kill a process that stopped beating: its restart policy then applies.

        From its launch on: a child beats while it imports its component and sets up too.
        """
        for instance in self.instances.values():
            if instance.done or instance.restart_at is not None or instance.hung:
                continue
            if instance.popen is None:
                continue  # a link end that waits for its far end to bind
            planned = self.plan.processes.get(instance.process)  # None: a bridge
            limit = self.hang_timeout
            if planned is not None and planned.hang_timeout is not None:
                limit = planned.hang_timeout
            if not limit or now - instance.last_heard < limit:
                continue
            self.log(
                f"fbp: {instance.name} is not responding: no heartbeat for {limit:g} s "
                "(stopped, or stuck holding the interpreter); killing it"
            )
            self._err(f"fbp: {instance.name} hung (no heartbeat for {limit:g} s)\n")
            instance.hung = True  # report once
            try:
                os.kill(instance.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _restart_wanted(self, instance: Instance, returncode: int) -> bool:
        """Whether the process's policy restarts it after this end (not a clean one)."""
        if self.stopping or self.interrupts or instance.bridge:
            return False
        planned = self.plan.processes[instance.process]
        if instance.fatal is not None:
            # the child reported its failure (an exception, or on_error=fail|restart)
            wanted = planned.restart == "always" or planned.on_error == "restart"
        else:
            wanted = planned.restart in ("always", "on-crash")
        return wanted and instance.restarts < planned.max_restarts

    def _schedule_restart(self, instance: Instance, returncode: int) -> None:
        planned = self.plan.processes[instance.process]
        instance.restarts += 1
        status = self.board.processes[instance.name]
        status.restarts = instance.restarts
        status.state = "restarting"
        if returncode < 0:
            reason = f"killed by signal {signal.Signals(-returncode).name}"
        else:
            reason = f"exited with status {returncode}"
        if instance.fatal is not None:  # handled by the restart, not a failure of the run
            self.failures.remove(instance.fatal)
            instance.fatal = None
        # What it had received and not finished comes again from its input rings (the ring
        # frees a record only when released): count it where it happened.
        for name in instance.inputs:
            ring, label = self.rings[name]
            stats = ring.raw_stats()
            replay = stats["packets_received"] - stats["packets_released"]
            self.ledger.add(label, "replayed", f"{instance.name} {reason}; restarted", replay)
        # A crash loop (dying right after each start) backs off; a process that ran a while
        # before it died comes back at once.
        if time.monotonic() - instance.launched_at < QUICK_DEATH:
            instance.quick_deaths += 1
        else:
            instance.quick_deaths = 0
        delay = min(RESTART_BACKOFF * 2**instance.quick_deaths, RESTART_BACKOFF_MAX)
        instance.restart_at = time.monotonic() + delay
        self.log(
            f"fbp: {instance.name} {reason}: restart {instance.restarts} of "
            f"{planned.max_restarts} in {delay:.1f} s"
        )

    @staticmethod
    def _close_pipes(instance: Instance) -> None:
        """Close our ends of a child's control and stderr pipes."""
        if instance.control_fd is not None:
            try:
                os.close(instance.control_fd)
            except OSError:
                pass
        if instance.popen is not None and instance.popen.stderr:
            instance.popen.stderr.close()

    def _start(self, instance: Instance) -> None:
        self._launch(instance)
        self._selector.register(instance.control_fd, selectors.EVENT_READ, (instance, "control"))
        self._selector.register(instance.stderr_fd, selectors.EVENT_READ, (instance, "stderr"))

    def _relaunch(self, instance: Instance) -> None:
        instance.restart_at = None
        self._close_pipes(instance)
        instance.buffers = {}
        instance.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._start(instance)

    def _close_for(self, instance: Instance) -> None:
        """Close a dead child's ring ends so its peers see end of stream / broken link."""
        for name, role in [(r, "producer") for r in instance.outputs] + [
            (r, "consumer") for r in instance.inputs
        ]:
            ring, _ = self.rings[name]
            flags = ring.raw_stats()
            if flags[f"{role}_closed"]:
                continue
            try:
                handle = Ring.attach(name, role)
                handle.close()
            except Exception as exc:  # noqa: BLE001 - best effort, reported
                self.log(f"fbp: could not close {role} end of {name}: {exc}")

    def summary(self):
        """The final summary: processes, connections and the loss ledger (rich renderable)."""
        from rich.console import Group

        from fbp.runtime.status import render_tables

        tables = render_tables(self.board, final=True)
        return Group(tables, self.ledger.table()) if self.ledger else tables

    def failure_report(self) -> str:
        """One paragraph saying what failed, for a non-zero exit."""
        lines = []
        if self.interrupts:
            lines.append("interrupted (Ctrl-C)")
        if self.timed_out:
            lines.append(f"stopped by --timeout {self.timeout:g} s")
        lines.extend(self.failures)
        if self.packet_errors:
            lines.append(f"{self.packet_errors} packet(s) failed in process() (see above)")
        return "\n".join(f"  - {line}" for line in lines)


def _stderr(text: str) -> None:
    sys.stderr.write(text)


def _rss(pid: int | None) -> int | None:
    """Resident memory of a live process in bytes, or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.rstrip("\n").split("\n"))
