"""The WebSocket transport (subprotocol `noflo`) and the runtime protocol.

Requests are JSON text frames `{protocol, command, payload}`. Graph changes are echoed
to every connected client; answers to questions (runtime, component list, status) go to
the client that asked; network events (started, data, stopped ...) go to every client.
With a secret configured, a request without the matching `secret` is refused.

The asyncio loop runs in a thread of its own: the main thread belongs to the network
runner (the runtime's supervisor needs it for its signal handlers).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

from fbp.protocol import PROTOCOL_VERSION
from fbp.protocol.components import component_messages
from fbp.protocol.graphs import GraphStore
from fbp.protocol.messages import ProtocolError, error_message, message
from fbp.protocol.network import NetworkManager

__all__ = ["CAPABILITIES", "RuntimeServer"]

CAPABILITIES = [
    "protocol:runtime",
    "protocol:graph",
    "protocol:component",
    "protocol:network",
    "network:control",
    "network:status",
    "network:data",
]


class RuntimeServer:
    """The protocol server: graphs, components and networks behind one WebSocket port.

    Args:
        registry: the component Registry.
        host, port: where to listen (port 0 picks a free one; see `port` once started).
        paths: component folders for the component processes.
        secret: when set, every request must carry it.
        label: human-readable runtime description for `runtime:runtime`.
        rate: sampled `network:data` events per connection per second.
    """

    def __init__(
        self,
        registry,
        *,
        host: str = "127.0.0.1",
        port: int = 3569,
        paths=(),
        secret: str | None = None,
        label: str = "fbp runtime",
        rate: float = 20.0,
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.secret = secret
        self.label = label
        self.runtime_id = str(uuid.uuid4())
        self.clients: set[Any] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.graphs = GraphStore(is_live=lambda graph_id: self.networks.is_live(graph_id))
        self.networks = NetworkManager(self.graphs, registry, self.emit, paths, rate)

    # -- sending ---------------------------------------------------------------------

    def emit(self, reply: dict) -> None:
        """Send a message to every client; safe from any thread."""
        if self.loop is None:
            return
        text = json.dumps(reply)
        self.loop.call_soon_threadsafe(self._broadcast, text)

    def _broadcast(self, text: str) -> None:
        from websockets.asyncio.server import broadcast

        broadcast(self.clients, text)

    # -- requests --------------------------------------------------------------------

    def dispatch(self, request: Any) -> tuple[list[dict], list[dict]]:
        """Handle one decoded request; return (replies for the asker, messages for all)."""
        if not isinstance(request, dict) or not isinstance(request.get("payload", {}), dict):
            return [
                error_message(
                    ProtocolError(
                        "runtime", "a message must be a JSON object {protocol, command, payload}"
                    )
                )
            ], []
        protocol = request.get("protocol")
        command = request.get("command")
        payload = dict(request.get("payload") or {})
        secret = request.get("secret", payload.pop("secret", None))
        payload.pop("secret", None)
        known = protocol in ("runtime", "graph", "component", "network")
        error_protocol = protocol if known else "runtime"
        try:
            if self.secret and secret != self.secret:
                raise ProtocolError(error_protocol, "access denied: the secret does not match")
            if protocol == "runtime":
                return self._runtime(command, payload), []
            if protocol == "component":
                if command != "list":
                    raise ProtocolError("component", f"component:{command} is not supported")
                return component_messages(self.registry), []
            if protocol == "graph":
                changes = self.graphs.handle(command, payload)
                if command.endswith(("inport", "outport")):
                    changes.append(self._ports_message(payload.get("graph")))
                return [], changes
            if protocol == "network":
                return self.networks.handle(command, payload), []
            raise ProtocolError(
                "runtime",
                f"unknown protocol {protocol!r}; this runtime speaks runtime, graph, "
                "component and network",
            )
        except ProtocolError as error:
            return [error_message(error)], []

    def _ports_message(self, graph_id: str) -> dict:
        from fbp.protocol.exports import port_descriptions

        ports = port_descriptions(self.graphs.get(graph_id), self.registry)
        return message("runtime", "ports", {"graph": graph_id, **ports})

    def _runtime(self, command: str, payload: dict) -> list[dict]:
        if command == "packet":
            return self.networks.send_packet(payload)
        if command != "getruntime":
            raise ProtocolError(
                "runtime", f"runtime:{command} is not supported (getruntime and packet are)"
            )
        current = self.networks.current
        reply: dict[str, Any] = {
            "type": "fbp",
            "version": PROTOCOL_VERSION,
            "capabilities": list(CAPABILITIES),
            "allCapabilities": list(CAPABILITIES),
            "id": self.runtime_id,
            "label": self.label,
        }
        if current is not None:
            reply["graph"] = current.graph_id
        return [message("runtime", "runtime", reply)]

    async def _serve_client(self, websocket) -> None:
        from websockets.exceptions import ConnectionClosed

        self.clients.add(websocket)
        try:
            async for text in websocket:
                try:
                    request = json.loads(text)
                except (TypeError, ValueError) as exc:
                    request = exc
                if isinstance(request, Exception):
                    mine = [error_message(ProtocolError("runtime", f"not JSON: {request}"))]
                    everyone: list[dict] = []
                else:
                    mine, everyone = self.dispatch(request)
                for reply in mine:
                    await websocket.send(json.dumps(reply))
                for reply in everyone:
                    self._broadcast(json.dumps(reply))
        except ConnectionClosed:
            pass  # a client that went away is not the server's problem
        finally:
            self.clients.discard(websocket)

    # -- lifecycle -------------------------------------------------------------------

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._serve_client, self.host, self.port, subprotocols=["noflo"], max_size=2**24
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self._stop.wait()

    def run_in_thread(self) -> threading.Thread:
        """Start the server loop in a daemon thread; wait until it listens.

        Raises:
            OSError: the address cannot be bound (e.g. the port is taken).
        """

        def target() -> None:
            try:
                asyncio.run(self._main())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                self.failed = exc
                self.ready.set()

        thread = threading.Thread(target=target, name="fbp-protocol-server", daemon=True)
        thread.start()
        self.ready.wait()
        if self.failed is not None:
            raise self.failed
        return thread

    def shutdown(self, thread: threading.Thread) -> None:
        """Stop listening and close every client connection."""
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        thread.join(5)
