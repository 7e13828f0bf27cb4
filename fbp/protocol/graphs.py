"""The graph protocol: clients build and edit `fbp.graph.Graph` objects held by the server.

Each `graph:clear` creates (or empties) a graph by id; later commands name it in
`payload.graph`. The graphs are the same model `fbp parse` produces (case-insensitive
port names, stored in lower case), so a graph built over the protocol plans and runs
exactly like the same `.fbp` file. Every accepted change is echoed to every connected
client (as NoFlo runtimes do), so several tools stay in step.

Edits never touch a live network: while a graph's network has processes running, edits
to it are refused with `graph:error` (stop the network first); the next `network:start`
runs the edited graph.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fbp.graph import Connection, Export, Graph, Location, PortRef, Process
from fbp.protocol.messages import ProtocolError, message

__all__ = ["GraphStore"]

CLEAR_KEYS = ("id", "name", "library", "main", "icon", "description")


def _where(graph_id: str) -> Location:
    return Location(f"<protocol graph {graph_id}>")


def _index(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProtocolError(
            "graph", f"port index {value!r} must be a whole number (or left out)"
        ) from None


def _port_payload(ref: PortRef, spelled: str | None = None) -> dict:
    payload: dict[str, Any] = {"node": ref.process, "port": spelled or ref.port}
    if ref.index is not None:
        payload["index"] = ref.index
    return payload


class GraphStore:
    """The graphs the runtime holds, and the graph protocol's commands on them.

    Args:
        is_live: callable(graph_id) -> True while that graph's network has processes
            running; edits are refused then.
    """

    def __init__(self, is_live: Callable[[str], bool] = lambda graph_id: False) -> None:
        self.graphs: dict[str, Graph] = {}
        self.is_live = is_live

    # -- helpers ---------------------------------------------------------------------

    def get(self, graph_id: Any, protocol: str = "graph") -> Graph:
        """The graph called `graph_id`.

        Raises:
            ProtocolError: no id given, or no such graph.
        """
        if not graph_id:
            raise ProtocolError(protocol, "No graph specified")
        if graph_id not in self.graphs:
            # The exact text is what fbp-protocol's test suite expects.
            raise ProtocolError(protocol, "Requested graph not found", graph_id)
        return self.graphs[graph_id]

    def snapshot(self, graph_id: str) -> Graph:
        """A deep copy to plan and run, so later edits cannot reach a running network."""
        return copy.deepcopy(self.get(graph_id, "network"))

    def _editable(self, payload: dict) -> tuple[str, Graph]:
        graph_id = payload.get("graph")
        graph = self.get(graph_id)
        if self.is_live(graph_id):
            raise ProtocolError(
                "graph",
                f"graph '{graph_id}' has a running network; edits to a running network are "
                "refused: send network:stop first, edit, then network:start",
            )
        return graph_id, graph

    @staticmethod
    def _process(graph: Graph, name: Any) -> Process:
        if name not in graph.processes:
            raise ProtocolError(
                "graph",
                f"graph has no node {name!r}; nodes: {', '.join(graph.processes) or 'none'}",
            )
        return graph.processes[name]

    def _ref(self, graph: Graph, end: Any, what: str) -> PortRef:
        if not isinstance(end, dict) or "node" not in end or "port" not in end:
            raise ProtocolError("graph", f"{what} must be an object with node and port")
        self._process(graph, end["node"])
        return PortRef(end["node"], str(end["port"]).lower(), _index(end.get("index")))

    # -- commands --------------------------------------------------------------------

    def handle(self, command: str, payload: dict) -> list[dict]:
        """Apply one graph command; return the messages to send to every client.

        Raises:
            ProtocolError: unknown command, unknown graph/node/edge, or a live network.
        """
        method = getattr(self, f"_cmd_{command}", None)
        if method is None:
            raise ProtocolError(
                "graph", f"graph:{command} is not supported by this runtime (groups are not)"
            )
        return method(payload)

    def _cmd_clear(self, payload: dict) -> list[dict]:
        graph_id = payload.get("id")
        if not graph_id or not isinstance(graph_id, str):
            raise ProtocolError("graph", "graph:clear needs an id (a string)")
        if self.is_live(graph_id):
            raise ProtocolError(
                "graph", f"graph '{graph_id}' has a running network; send network:stop first"
            )
        graph = Graph(file=f"<protocol graph {graph_id}>")
        reply = {key: payload[key] for key in CLEAR_KEYS if key in payload}
        graph.properties = {key: value for key, value in reply.items() if key != "id"}
        graph.properties.setdefault("name", graph_id)
        self.graphs[graph_id] = graph
        return [message("graph", "clear", reply)]

    def _cmd_addnode(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        name, component = payload.get("id"), payload.get("component")
        if not name or not isinstance(component, str):
            raise ProtocolError("graph", "graph:addnode needs an id and a component (lib/Name)")
        if name in graph.processes:
            raise ProtocolError("graph", f"graph '{graph_id}' already has a node {name!r}")
        metadata = dict(payload.get("metadata") or {})
        graph.processes[name] = Process(name, component, metadata, _where(graph_id))
        return [
            message(
                "graph",
                "addnode",
                {"id": name, "component": component, "metadata": metadata, "graph": graph_id},
            )
        ]

    def _cmd_removenode(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        name = payload.get("id")
        self._process(graph, name)
        replies = []
        kept = []
        for connection in graph.connections:
            touches = connection.tgt.process == name or (
                connection.src is not None and connection.src.process == name
            )
            if not touches:
                kept.append(connection)
            elif connection.src is None:
                replies.append(self._initial_message("removeinitial", graph_id, connection))
            else:
                replies.append(self._edge_message("removeedge", graph_id, connection, False))
        graph.connections = kept
        for exports, command in (
            (graph.inports, "removeinport"),
            (graph.outports, "removeoutport"),
        ):
            for public in [p for p, e in exports.items() if e.process == name]:
                del exports[public]
                replies.append(message("graph", command, {"public": public, "graph": graph_id}))
        del graph.processes[name]
        replies.append(message("graph", "removenode", {"id": name, "graph": graph_id}))
        return replies

    def _cmd_renamenode(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        old, new = payload.get("from"), payload.get("to")
        process = self._process(graph, old)
        if not new or not isinstance(new, str) or new in graph.processes:
            raise ProtocolError("graph", f"cannot rename {old!r} to {new!r}: taken or empty")
        process.name = new
        graph.processes = {(new if k == old else k): v for k, v in graph.processes.items()}
        for connection in graph.connections:
            # PortRefs are frozen: replace the ends that name the old node.
            if connection.src is not None and connection.src.process == old:
                connection.src = PortRef(new, connection.src.port, connection.src.index)
            if connection.tgt.process == old:
                connection.tgt = PortRef(new, connection.tgt.port, connection.tgt.index)
        for export in [*graph.inports.values(), *graph.outports.values()]:
            if export.process == old:
                export.process = new
        return [message("graph", "renamenode", {"from": old, "to": new, "graph": graph_id})]

    def _cmd_changenode(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        process = self._process(graph, payload.get("id"))
        for key, value in (payload.get("metadata") or {}).items():
            if value is None:
                process.metadata.pop(key, None)  # null removes a key (protocol rule)
            else:
                process.metadata[key] = value
        return [
            message(
                "graph",
                "changenode",
                {"id": process.name, "metadata": dict(process.metadata), "graph": graph_id},
            )
        ]

    def _find_edge(self, graph: Graph, src: PortRef, tgt: PortRef) -> Connection:
        for connection in graph.connections:
            if connection.src == src and connection.tgt == tgt:
                return connection
        raise ProtocolError("graph", f"graph has no edge {src} -> {tgt}")

    @staticmethod
    def _edge_message(command: str, graph_id: str, edge: Connection, with_metadata: bool) -> dict:
        payload: dict[str, Any] = {
            "src": _port_payload(edge.src),
            "tgt": _port_payload(edge.tgt),
        }
        if with_metadata:
            payload["metadata"] = dict(edge.metadata)
        payload["graph"] = graph_id
        return message("graph", command, payload)

    @staticmethod
    def _initial_message(command: str, graph_id: str, iip: Connection) -> dict:
        payload: dict[str, Any] = {"src": {"data": iip.data}, "tgt": _port_payload(iip.tgt)}
        if command == "addinitial":
            payload["metadata"] = dict(iip.metadata)
        payload["graph"] = graph_id
        return message("graph", command, payload)

    def _cmd_addedge(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        src = self._ref(graph, payload.get("src"), "src")
        tgt = self._ref(graph, payload.get("tgt"), "tgt")
        edge = Connection(src, tgt, None, dict(payload.get("metadata") or {}), _where(graph_id))
        graph.connections.append(edge)
        return [self._edge_message("addedge", graph_id, edge, True)]

    def _cmd_removeedge(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        src = self._ref(graph, payload.get("src"), "src")
        tgt = self._ref(graph, payload.get("tgt"), "tgt")
        edge = self._find_edge(graph, src, tgt)
        graph.connections.remove(edge)
        return [self._edge_message("removeedge", graph_id, edge, False)]

    def _cmd_changeedge(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        src = self._ref(graph, payload.get("src"), "src")
        tgt = self._ref(graph, payload.get("tgt"), "tgt")
        edge = self._find_edge(graph, src, tgt)
        for key, value in (payload.get("metadata") or {}).items():
            if value is None:
                edge.metadata.pop(key, None)
            else:
                edge.metadata[key] = value
        return [self._edge_message("changeedge", graph_id, edge, True)]

    def _cmd_addinitial(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        src = payload.get("src")
        if not isinstance(src, dict) or "data" not in src:
            raise ProtocolError("graph", "graph:addinitial needs src.data (the IIP value)")
        tgt = self._ref(graph, payload.get("tgt"), "tgt")
        iip = Connection(None, tgt, src["data"], dict(payload.get("metadata") or {}))
        iip.location = _where(graph_id)
        graph.connections.append(iip)
        return [self._initial_message("addinitial", graph_id, iip)]

    def _cmd_removeinitial(self, payload: dict) -> list[dict]:
        graph_id, graph = self._editable(payload)
        tgt = self._ref(graph, payload.get("tgt"), "tgt")
        removed = [c for c in graph.connections if c.src is None and c.tgt == tgt]
        if not removed:
            raise ProtocolError("graph", f"graph has no IIP into {tgt}")
        graph.connections = [c for c in graph.connections if c not in removed]
        return [self._initial_message("removeinitial", graph_id, iip) for iip in removed]

    def _export(self, payload: dict, exports: dict, command: str) -> list[dict]:
        graph_id, graph = self._editable(payload)
        public, node, port = payload.get("public"), payload.get("node"), payload.get("port")
        if not public or not port:
            raise ProtocolError("graph", f"graph:{command} needs public, node and port")
        self._process(graph, node)
        exports[public] = Export(
            public, node, str(port).lower(), dict(payload.get("metadata") or {}), _where(graph_id)
        )
        reply = {"public": public, "node": node, "port": port}
        if payload.get("metadata"):
            reply["metadata"] = dict(payload["metadata"])
        reply["graph"] = graph_id
        return [message("graph", command, reply)]

    def _unexport(self, payload: dict, exports: dict, command: str) -> list[dict]:
        graph_id, _graph = self._editable(payload)
        public = payload.get("public")
        if public not in exports:
            raise ProtocolError(
                "graph", f"graph has no exported port {public!r}; ports: {', '.join(exports)}"
            )
        del exports[public]
        return [message("graph", command, {"public": public, "graph": graph_id})]

    def _rename_export(self, payload: dict, exports: dict, command: str) -> list[dict]:
        graph_id, _graph = self._editable(payload)
        old, new = payload.get("from"), payload.get("to")
        if old not in exports or not new or new in exports:
            raise ProtocolError("graph", f"cannot rename exported port {old!r} to {new!r}")
        export = exports.pop(old)
        export.name = new
        exports[new] = export
        return [message("graph", command, {"from": old, "to": new, "graph": graph_id})]

    def _cmd_addinport(self, payload: dict) -> list[dict]:
        return self._export(payload, self.get(payload.get("graph")).inports, "addinport")

    def _cmd_addoutport(self, payload: dict) -> list[dict]:
        return self._export(payload, self.get(payload.get("graph")).outports, "addoutport")

    def _cmd_removeinport(self, payload: dict) -> list[dict]:
        return self._unexport(payload, self.get(payload.get("graph")).inports, "removeinport")

    def _cmd_removeoutport(self, payload: dict) -> list[dict]:
        return self._unexport(payload, self.get(payload.get("graph")).outports, "removeoutport")

    def _cmd_renameinport(self, payload: dict) -> list[dict]:
        return self._rename_export(payload, self.get(payload.get("graph")).inports, "renameinport")

    def _cmd_renameoutport(self, payload: dict) -> list[dict]:
        graph = self.get(payload.get("graph"))
        return self._rename_export(payload, graph.outports, "renameoutport")
