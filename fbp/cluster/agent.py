"""`fbp agent`: runs a coordinator's share of a network on this host.

The agent listens on a ZeroMQ ROUTER socket. A coordinator (`fbp run FILE --hosts ...`)
sends it the checked graph, the placement and the run's settings; the agent plans the
graph again with its own component registry (components must be installed here too),
and runs the processes placed on its host under a `Supervisor` in a thread, with a bridge
process for every ring that crosses to another host. It forwards what happens (bound
link ports, exits, numbers twice a second, process output, the end) and obeys stop,
kill, link and end-of-link messages. Several runs may share an agent.

If the coordinator goes silent for the run's host timeout, the agent kills that run's
processes and removes its rings: nothing of a run outlives its coordinator.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
import traceback

import zmq

import fbp
from fbp.cluster.keys import handshake_failures, load_keys, watch_handshakes
from fbp.cluster.messages import pack, unpack

__all__ = ["Agent", "announce_address"]

BEAT = 0.5


class _Run:
    """One coordinator's run on this host: a supervisor in a thread and an outbox."""

    def __init__(self, agent: Agent, peer: bytes, message: dict) -> None:
        from fbp.cluster.placement import Placement
        from fbp.graph import graph_from_json
        from fbp.registry import Registry
        from fbp.runtime.plan import make_plan
        from fbp.runtime.supervisor import Supervisor

        self.id = message["run"]
        self.peer = peer
        self.host = message["host"]
        self.host_timeout = float(message.get("host_timeout", 10.0))
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.last_heard = time.monotonic()
        self.finished = False
        graph = graph_from_json(message["graph"], file=message.get("file", "<coordinator>"))
        plan = make_plan(graph, Registry(message.get("paths", [])))
        placement = Placement.from_json(message["placement"], plan)
        self.supervisor = Supervisor(
            plan,
            paths=message.get("paths", []),
            log=lambda text: self.outbox.put(("log", {"text": text})),
            err=lambda text: self.outbox.put(("err", {"text": text})),
            hang_timeout=float(message.get("hang_timeout", 10.0)),
            placement=placement,
            host=self.host,
            link_bind=lambda peer: agent.bind_ip,
            keys=agent.keys_folder,
            link_timeout=float(message.get("link_timeout", 5.0)),
            on_host_loss=str(message.get("on_host_loss", "stop")),
        )
        self.supervisor.subscribe(self._event)
        from fbp.observe.previews import PreviewTaps

        # previews of this host's connections, for the coordinator's dashboard
        self.previews = PreviewTaps(self.supervisor)
        self.thread = threading.Thread(target=self._run, name=f"fbp-run-{self.id}", daemon=True)

    def _event(self, event: str, **fields) -> None:
        if event == "message" and fields["message"].get("t") == "bound":
            message = fields["message"]
            port = int(str(message["endpoint"]).rsplit(":", 1)[1])
            self.outbox.put(("bound", {"link": message["link"], "port": port}))
        elif event == "exit":
            instance = fields["instance"]
            self.outbox.put(
                (
                    "exit",
                    {
                        "instance": instance.name,
                        "returncode": fields["returncode"],
                        "restarting": instance.restart_at is not None,
                        "link_ended": self.supervisor.link_ended_on_purpose(instance),
                    },
                )
            )
        elif event == "sample":
            self._send_sample()

    def _send_sample(self) -> None:
        data = self.supervisor.snapshot()
        processes = [p for p in data["processes"] if p["host"] == self.host]
        self.outbox.put(("sample", {"processes": processes, "connections": data["connections"]}))

    def _run(self) -> None:
        supervisor = self.supervisor
        try:
            status = supervisor.run()
        except Exception as exc:  # noqa: BLE001 - reported to the coordinator, not lost
            supervisor.failures.append(f"the agent could not run its part: {exc!r}")
            self.outbox.put(("err", {"text": traceback.format_exc()}))
            status = 1
        self._send_sample()
        self.outbox.put(
            (
                "finished",
                {
                    "status": status,
                    "failures": list(supervisor.failures),
                    "packet_errors": supervisor.packet_errors,
                    "ledger": supervisor.ledger.to_json()["entries"],
                },
            )
        )
        self.finished = True

    def command(self, message: dict) -> None:
        """Act on a coordinator's message (on the agent's thread; the supervisor is told
        through `call_soon` or its thread-safe `stop`)."""
        supervisor = self.supervisor
        kind = message["t"]
        self.last_heard = time.monotonic()
        if kind == "connect":
            supervisor.call_soon(supervisor.connect_link, message["link"], message["endpoint"])
        elif kind == "end_links":
            supervisor.call_soon(supervisor.end_links, message["host"], message["reason"])
        elif kind == "stop":
            supervisor.call_soon(supervisor.stop_sources, message.get("grace"))
        elif kind == "kill":
            supervisor.stop()
            supervisor.stop()
        elif kind == "watch":
            preview = self.previews.watch(int(message["connection"]))
            if preview is not None:
                self.outbox.put(
                    ("preview", {"connection": message["connection"], "preview": preview})
                )

    def kill(self) -> None:
        """Kill every process of the run (the second Ctrl-C of a local run)."""
        self.supervisor.stop()
        self.supervisor.stop()


class Agent:
    """Serve coordinators on `listen` until `stop()` (see the module docstring).

    Args:
        listen: where to bind, e.g. "tcp://0.0.0.0:7000" (port 0: any free port).
        keys: CurveZMQ key folder (fbp.cluster.keys), or None for plain sockets.
        log: callable(str) for the agent's own messages.
    """

    def __init__(self, listen: str, *, keys: str | None = None, log=None) -> None:
        self.log = log or (lambda text: None)
        self.keys = load_keys(keys)
        self.keys_folder = self.keys.folder if self.keys else None
        self.context = zmq.Context()
        self.authenticator = self.keys.authenticate(self.context) if self.keys else None
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting coordinator
        for option, value in (self.keys.server() if self.keys else {}).items():
            self.socket.setsockopt(option, value)
        self.monitor = watch_handshakes(self.socket)
        self.socket.bind(listen)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        host = self.endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
        self.bind_ip = host if host not in ("0.0.0.0", "*", "::") else "0.0.0.0"
        self.runs: dict[tuple[bytes, str], _Run] = {}
        self._stopping = threading.Event()
        self._next_beat = 0.0

    def stop(self) -> None:
        """Leave `serve` (from any thread or a signal handler)."""
        self._stopping.set()

    def serve(self) -> None:
        """Answer coordinators until `stop()`; then kill what still runs."""
        try:
            while not self._stopping.is_set():
                if self.socket.poll(50):
                    while self.socket.poll(0):
                        parts = self.socket.recv_multipart()
                        try:
                            self._handle(parts)
                        except Exception:  # noqa: BLE001 - one bad message must not end the agent
                            self.log(f"fbp agent: a message failed:\n{traceback.format_exc()}")
                self._flush()
                for reason in handshake_failures(self.monitor):
                    self.log(f"fbp agent: refused a peer: {reason} (keys: {self.keys_folder})")
        finally:
            for run in self.runs.values():
                run.kill()
            for run in self.runs.values():
                run.thread.join(15)
            self._flush()
            self.close()

    def close(self) -> None:
        """Close the sockets and the context."""
        self.monitor.close(0)
        self.socket.close(0)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()

    def _send(self, peer: bytes, kind: str, run: str, **fields) -> None:
        try:
            self.socket.send_multipart([peer, pack(kind, run, **fields)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # the coordinator is not reading; it notices our silence itself

    def _handle(self, parts: list[bytes]) -> None:
        if len(parts) != 2:
            return
        peer, message = parts[0], unpack(parts[1])
        kind, run_id = message.get("t"), str(message.get("run", ""))
        if kind == "hello":
            self._send(
                peer,
                "welcome",
                run_id,
                version=fbp.__version__,
                node=node_name(),
                pid=os.getpid(),
            )
        elif kind == "run":
            self._start(peer, message)
        elif (peer, run_id) in self.runs:
            self.runs[(peer, run_id)].command(message)

    def _start(self, peer: bytes, message: dict) -> None:
        run_id = str(message["run"])
        if message.get("version") not in (None, fbp.__version__):
            self._send(
                peer,
                "refused",
                run_id,
                error=f"this agent runs fbp {fbp.__version__}, the coordinator "
                f"{message.get('version')}: install the same version on every host",
            )
            return
        try:
            run = _Run(self, peer, message)
        except ExceptionGroup as group:
            problems = "; ".join(str(p).splitlines()[0] for p in group.exceptions)
            self._send(peer, "refused", run_id, error=f"the graph does not check here: {problems}")
            return
        except Exception as exc:  # noqa: BLE001 - the coordinator must hear why
            self._send(peer, "refused", run_id, error=f"{type(exc).__name__}: {exc}")
            return
        self.runs[(peer, run_id)] = run
        self.log(f"fbp agent: run {run_id}: host {run.host} of {message.get('file')}")
        run.thread.start()

    def _flush(self) -> None:
        now = time.monotonic()
        beat = now >= self._next_beat
        if beat:
            self._next_beat = now + BEAT
        for key, run in list(self.runs.items()):
            while not run.outbox.empty():
                kind, fields = run.outbox.get()
                self._send(run.peer, kind, run.id, **fields)
            if run.finished:
                del self.runs[key]
                self.log(f"fbp agent: run {run.id} finished")
                continue
            if beat:
                self._send(run.peer, "beat", run.id)
            if now - run.last_heard > run.host_timeout and not run.supervisor.interrupts:
                self.log(
                    f"fbp agent: run {run.id}: the coordinator is silent for "
                    f"{run.host_timeout:g} s: killing its processes"
                )
                run.kill()


def node_name() -> str:
    """This host's name for reports: Slurm's node name inside a job, else the hostname."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def announce_address(endpoint: str) -> str:
    """The agent's endpoint with an address others can reach (for 0.0.0.0 binds)."""
    host, port = endpoint[len("tcp://") :].rsplit(":", 1)
    if host not in ("0.0.0.0", "*"):
        return endpoint
    address = "127.0.0.1"
    try:
        candidate = socket.gethostbyname(socket.gethostname())
        if not candidate.startswith("127."):
            address = candidate
    except OSError:
        pass
    return f"tcp://{address}:{port}"


def write_announcement(path: str, endpoint: str) -> None:
    """Write {"node", "endpoint", "pid"} to `path` atomically (for Slurm job scripts)."""
    data = {"node": node_name(), "endpoint": announce_address(endpoint), "pid": os.getpid()}
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)
