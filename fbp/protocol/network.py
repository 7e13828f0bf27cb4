"""The network protocol: start, stop and follow a graph's network on the real runtime.

`network:start` plans a snapshot of the graph (`fbp.runtime.plan.make_plan`: every
component, port, type and IIP is checked first; problems come back as `network:error`)
and hands it to the main thread, which runs it with a `TappedSupervisor`: one OS process
per component instance, shared-memory rings, exactly as `fbp run`. One network runs at a
time (the supervisor owns the process's signal handlers, so it runs on the main thread).

Status follows NoFlo: `started` is the user's switch (true from `network:start` until
`network:stop`, also after the network finished by itself); `running` is true while some
process may still process or send packets. `network:stop` asks for a graceful stop
(sources stop, rings drain, processes finish, as Ctrl-C in `fbp run`); a second
`network:stop` while it drains kills every process (as a second Ctrl-C). `network:stopped`
follows once every process has exited.

Watched edges (`network:edges`) apply from the next start: a running network is never
changed. Without a selection every connection is watched.
"""

from __future__ import annotations

import datetime
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fbp.errors import GraphError
from fbp.protocol.messages import ProtocolError, message, preview

__all__ = ["NetworkManager"]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _end(ref, spelled_port: str) -> dict:
    end: dict[str, Any] = {"node": ref.process, "port": spelled_port}
    if ref.index is not None:
        end["index"] = ref.index
    return end


def _label(port: str, index: int | None) -> str:
    return port if index is None else f"{port}[{index}]"


@dataclass
class NetworkRun:
    """One start of one graph: its plan, supervisor and the switches the protocol shows."""

    graph_id: str
    plan: Any
    watched: set[int]
    started_at: float = field(default_factory=time.time)
    supervisor: Any = None
    finished: bool = False
    stop_requested: bool = False
    exit_status: int | None = None


class NetworkManager:
    """Starts, stops and reports networks; runs them on the thread calling `serve`.

    Args:
        graphs: the GraphStore.
        registry: the component Registry used to plan.
        emit: callable(message) sending to every client; must be thread-safe.
        paths: component folders passed to the component processes.
        rate: sampled `network:data` events per connection per second.
    """

    def __init__(
        self, graphs, registry, emit: Callable[[dict], None], paths=(), rate: float = 20.0
    ) -> None:
        self.graphs = graphs
        self.registry = registry
        self.emit = emit
        self.paths = list(paths)
        self.rate = rate
        self.jobs: queue.Queue[NetworkRun | None] = queue.Queue()
        self.runs: dict[str, NetworkRun] = {}
        self.started: dict[str, bool] = {}
        self.selected_edges: dict[str, list[dict]] = {}
        self.current: NetworkRun | None = None
        self.lock = threading.Lock()

    # -- asked from the server thread ------------------------------------------------

    def is_live(self, graph_id: str) -> bool:
        """True while the graph's network has processes (starting, running or draining)."""
        run = self.runs.get(graph_id)
        return run is not None and not run.finished

    def handle(self, command: str, payload: dict) -> list[dict]:
        """Handle one network command; return the replies for the asking client.

        Raises:
            ProtocolError: unknown command or graph, a plan that fails its checks, another
                network still running.
        """
        method = getattr(self, f"_cmd_{command}", None)
        if method is None:
            raise ProtocolError("network", f"network:{command} is not supported by this runtime")
        return method(payload)

    def _graph_id(self, payload: dict) -> str:
        graph_id = payload.get("graph")
        self.graphs.get(graph_id, "network")
        return graph_id

    def _status(self, graph_id: str) -> dict:
        run = self.runs.get(graph_id)
        running = bool(
            run is not None
            and not run.finished
            and (run.supervisor is None or run.supervisor.busy())
        )
        return {"graph": graph_id, "running": running, "started": self.started.get(graph_id, False)}

    def _cmd_getstatus(self, payload: dict) -> list[dict]:
        return [message("network", "status", self._status(self._graph_id(payload)))]

    def _cmd_edges(self, payload: dict) -> list[dict]:
        graph_id = self._graph_id(payload)
        edges = payload.get("edges") or []
        self.selected_edges[graph_id] = edges
        return [message("network", "edges", {"graph": graph_id, "edges": edges})]

    def _watched(self, graph_id: str, plan) -> set[int]:
        selection = self.selected_edges.get(graph_id)
        if not selection:
            return {c.number for c in plan.connections}
        wanted = {
            (
                e["src"]["node"],
                str(e["src"]["port"]).lower(),
                e["tgt"]["node"],
                str(e["tgt"]["port"]).lower(),
            )
            for e in selection
            if isinstance(e, dict) and "src" in e and "tgt" in e
        }
        graph = plan.graph
        chosen = set()
        for connection in plan.connections:
            edge = graph.connections[connection.number]
            key = (edge.src.process, edge.src.port, edge.tgt.process, edge.tgt.port)
            if key in wanted:
                chosen.add(connection.number)
        return chosen

    def _cmd_start(self, payload: dict) -> list[dict]:
        from fbp.runtime.plan import make_plan

        graph_id = self._graph_id(payload)
        with self.lock:
            if self.current is not None and not self.current.finished:
                raise ProtocolError(
                    "network",
                    f"network of graph '{self.current.graph_id}' is still running; this "
                    "runtime runs one network at a time: send network:stop for it first",
                    graph_id,
                )
            graph = self.graphs.snapshot(graph_id)
            try:
                plan = make_plan(graph, self.registry)
            except ExceptionGroup as group:
                problems = "; ".join(
                    p.message if isinstance(p, GraphError) else str(p) for p in group.exceptions
                )
                raise ProtocolError(
                    "network",
                    f"graph '{graph_id}' cannot run: {problems}",
                    graph_id,
                ) from None
            run = NetworkRun(graph_id, plan, self._watched(graph_id, plan))
            self.runs[graph_id] = run
            self.current = run
            self.started[graph_id] = True
        self.jobs.put(run)
        return []

    def _cmd_stop(self, payload: dict) -> list[dict]:
        graph_id = self._graph_id(payload)
        with self.lock:
            self.started[graph_id] = False
            run = self.runs.get(graph_id)
            if run is not None and not run.finished:
                run.stop_requested = True
                if run.supervisor is not None:
                    run.supervisor.request_stop()
                return []  # `stopped` follows when the processes have exited
        return [self._stopped_message(graph_id, run)]

    def send_packet(self, payload: dict) -> list[dict]:
        """`runtime:packet`: deliver a packet event into an exported inport.

        Raises:
            ProtocolError: no such graph, no running network, no such exported inport,
                or the packet cannot be delivered.
        """
        graph_id = payload.get("graph")
        self.graphs.get(graph_id, "runtime")
        run = self.runs.get(graph_id)
        supervisor = run.supervisor if run is not None else None
        if supervisor is None or run.finished or not supervisor.built:
            raise ProtocolError(
                "runtime", f"graph '{graph_id}' has no running network: send network:start"
            )
        public = payload.get("port")
        exported = supervisor.exported_inports.get(public)
        if exported is None:
            names = ", ".join(supervisor.exported_inports) or "none"
            raise ProtocolError(
                "runtime",
                f"graph '{graph_id}' has no exported inport {public!r} in its running "
                f"network (exported inports: {names}); add one with graph:addinport and restart",
            )
        event = payload.get("event")
        exported.send(event, payload.get("payload"))
        sent = {"port": public, "event": event, "graph": graph_id}
        if "payload" in payload:
            sent["payload"] = payload["payload"]
        return [message("runtime", "packetsent", sent)]

    def _stopped_message(self, graph_id: str, run: NetworkRun | None) -> dict:
        payload: dict[str, Any] = {"time": _now(), "graph": graph_id}
        if run is not None:
            payload["uptime"] = round(time.time() - run.started_at, 3)
        payload.update(running=False, started=self.started.get(graph_id, False))
        return message("network", "stopped", payload)

    # -- the main thread ---------------------------------------------------------------

    def serve(self, should_exit: Callable[[], bool]) -> None:
        """Run requested networks one after another until `should_exit()` or `close()`."""
        while not should_exit():
            try:
                run = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if run is None:
                return
            self._run(run)
            if run.supervisor is not None and run.supervisor.interrupts and not run.stop_requested:
                return  # Ctrl-C / SIGTERM while a network ran: the user wants out

    def close(self) -> None:
        """Make `serve` return after the current network."""
        self.jobs.put(None)

    def _run(self, run: NetworkRun) -> None:
        from fbp.protocol.tap import TappedSupervisor

        graph = run.plan.graph

        def on_started(supervisor) -> None:
            self.emit(
                message(
                    "network",
                    "started",
                    {"time": _now(), "graph": run.graph_id, "started": True, "running": True},
                )
            )
            # IIPs are handed to their processes at launch: report them as delivered.
            for edge in graph.connections:
                if edge.src is not None:
                    continue
                spec = run.plan.processes[edge.tgt.process].spec
                port = spec.inport(edge.tgt.port, graph.case_sensitive)
                label = _label(port.name if port else edge.tgt.port, edge.tgt.index)
                self.emit(
                    message(
                        "network",
                        "data",
                        {
                            "id": f"DATA -> {label} {edge.tgt.process}()",
                            "graph": run.graph_id,
                            "tgt": _end(edge.tgt, edge.tgt.port),
                            "data": preview(edge.data),
                        },
                    )
                )

        def on_event(kind: str, tap, value) -> None:
            if tap.exported is not None:
                packet = {"port": tap.exported, "event": kind, "graph": run.graph_id}
                if kind == "data":
                    packet["payload"] = value
                elif kind in ("begingroup", "endgroup"):
                    packet["payload"] = value if isinstance(value, str) else json.dumps(value)
                self.emit(message("runtime", "packet", packet))
                return
            connection = tap.connection
            edge = graph.connections[connection.number]
            payload: dict[str, Any] = {
                "id": (
                    f"{connection.src.process}() "
                    f"{_label(connection.src.port, connection.src.index)} -> "
                    f"{_label(connection.tgt.port, connection.tgt.index)} "
                    f"{connection.tgt.process}()"
                ),
                "graph": run.graph_id,
                "src": _end(connection.src, edge.src.port),
                "tgt": _end(connection.tgt, edge.tgt.port),
            }
            if kind == "data":
                payload["data"] = value
            elif kind in ("begingroup", "endgroup"):
                payload["group"] = value if isinstance(value, str) else json.dumps(value)
            self.emit(message("network", kind, payload))

        def on_problem(process: str, text: str) -> None:
            self.emit(
                message(
                    "network", "processerror", {"id": process, "error": text, "graph": run.graph_id}
                )
            )

        supervisor = TappedSupervisor(
            run.plan,
            watched=run.watched,
            on_started=on_started,
            on_event=on_event,
            on_problem=on_problem,
            rate=self.rate,
            paths=self.paths,
        )
        run.supervisor = supervisor
        if run.stop_requested:
            supervisor.request_stop()
        try:
            run.exit_status = supervisor.run()
            failure = supervisor.failure_report() if run.exit_status else ""
        except Exception as exc:  # noqa: BLE001 - reported to the client, server goes on
            run.exit_status = -1
            failure = f"{type(exc).__name__}: {exc}"
        with self.lock:
            run.finished = True
        if run.exit_status and not run.stop_requested:
            self.emit(
                message(
                    "network",
                    "error",
                    {
                        "message": f"network of graph '{run.graph_id}' ended with exit status "
                        f"{run.exit_status}:\n{failure}",
                        "graph": run.graph_id,
                    },
                )
            )
        if run.stop_requested:
            self.emit(self._stopped_message(run.graph_id, run))
        else:
            # Finished by itself: still "started" until network:stop (NoFlo semantics).
            self.emit(message("network", "status", self._status(run.graph_id)))
