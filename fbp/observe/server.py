"""The observation endpoint of a run: dashboard, JSON API and Prometheus metrics.

One aiohttp server in a thread of the coordinating `fbp run` process, bound to 127.0.0.1
by default. Every request needs the run's token: `?token=...` in the URL (the dashboard
link has it; the page then keeps it in a cookie), an `Authorization: Bearer ...` header
(Prometheus' `authorization` setting, `fbp top`), or that cookie. Without it: 401.

Routes: `/` the dashboard; `/api/snapshot` the network's state (`Supervisor.snapshot()`);
`/api/graph` processes and connections with a layout; `/api/preview?connection=N` the
newest sampled preview of a connection (watching it for the next seconds);
`/api/published` previews components published themselves; `/metrics` Prometheus text.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import secrets
import threading

import networkx as nx
from aiohttp import web

from fbp.observe.metrics import CONTENT_TYPE, render_metrics

__all__ = ["ObserveServer", "graph_layout", "parse_address"]

COOKIE = "fbp_token"


def parse_address(text: str | None, default_port: int = 0) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT`, `PORT` or `HOST` -> (host, port); 127.0.0.1 by default.

    Raises:
        ValueError: a port that is not a number from 0 to 65535.
    """
    host, port = "127.0.0.1", default_port
    if text:
        head, sep, tail = text.rpartition(":")
        if sep:
            host, port_text = head or host, tail
        elif text.isdigit():
            port_text = text
        else:
            host, port_text = text, str(default_port)
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"address {text!r}: the port must be a number from 0 to 65535")
        port = int(port_text)
    return host, port


def graph_layout(plan) -> dict:
    """Processes (with a left-to-right layered position) and connections of a plan."""
    graph = nx.DiGraph()
    graph.add_nodes_from(plan.processes)
    for connection in plan.connections:
        graph.add_edge(connection.src.process, connection.tgt.process)
    condensed = nx.condensation(graph)
    column = {}
    for depth, generation in enumerate(nx.topological_generations(condensed)):
        for component in generation:
            for name in condensed.nodes[component]["members"]:
                column[name] = depth
    rows: dict[int, int] = {}
    processes = []
    for name, planned in plan.processes.items():
        depth = column.get(name, 0)
        row = rows.get(depth, 0)
        rows[depth] = row + 1
        metadata = plan.graph.processes[name].metadata if name in plan.graph.processes else {}
        processes.append(
            {
                "name": name,
                "component": planned.spec.full_name,
                "workers": planned.workers,
                "instances": list(planned.instances),
                "node": metadata.get("node"),
                "column": depth,
                "row": row,
            }
        )
    connections = [
        {
            "connection": c.number,
            "src": c.src.process,
            "src_port": c.src.port if c.src.index is None else f"{c.src.port}[{c.src.index}]",
            "tgt": c.tgt.process,
            "tgt_port": c.tgt.port if c.tgt.index is None else f"{c.tgt.port}[{c.tgt.index}]",
        }
        for c in plan.connections
    ]
    return {"processes": processes, "connections": connections}


class ObserveServer:
    """Serve a supervisor's dashboard, API and metrics from a background thread.

    Args:
        supervisor: the running `Supervisor`.
        previews: a `fbp.observe.previews.PreviewTaps` for the supervisor, or None.
        host, port: where to listen (port 0: any free port).
        token: the secret every request must carry (random when None).

    Raises:
        OSError: the address cannot be bound (from `start`).
    """

    def __init__(self, supervisor, previews=None, host="127.0.0.1", port=0, token=None) -> None:
        self.supervisor = supervisor
        self.previews = previews
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(16)
        self.layout = graph_layout(supervisor.plan)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The dashboard's address with the token."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    @property
    def base_url(self) -> str:
        """The address without the token (for API clients that send it as a header)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; returns once listening.

        Raises:
            OSError: the address cannot be bound.
        """
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fbp-observe", daemon=True)
        self._thread.start()
        started.wait(20)
        if failure:
            raise OSError(f"cannot serve on {self.host}:{self.port}: {failure[0]}")

    async def _open(self) -> None:
        app = web.Application(middlewares=[self._authorise])
        app.add_routes(
            [
                web.get("/", self._page),
                web.get("/static/{name}", self._static),
                web.get("/api/snapshot", self._snapshot),
                web.get("/api/graph", self._graph),
                web.get("/api/preview", self._preview),
                web.get("/api/published", self._published),
                web.get("/metrics", self._metrics),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        """Stop serving (safe to call twice)."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @web.middleware
    async def _authorise(self, request: web.Request, handler):
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer ") :].strip()
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return web.Response(
                status=401,
                text="401: this fbp run needs its token: open the URL `fbp run --ui` or "
                "`fbp ui` printed (it ends in ?token=...), or send 'Authorization: Bearer "
                "TOKEN'\n",
            )
        response = await handler(request)
        if request.query.get("token"):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=_asset("index.html"), content_type="text/html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        suffix = name[name.rfind(".") :]
        if "/" in name or suffix not in types:
            raise web.HTTPNotFound()
        try:
            return web.Response(text=_asset(name), content_type=types[suffix])
        except FileNotFoundError:
            raise web.HTTPNotFound() from None

    async def _snapshot(self, request: web.Request) -> web.Response:
        return web.json_response(self.supervisor.snapshot())

    async def _graph(self, request: web.Request) -> web.Response:
        return web.json_response(self.layout)

    async def _preview(self, request: web.Request) -> web.Response:
        if self.previews is None:
            return web.json_response({"kind": "none", "text": "previews are off"})
        try:
            connection = int(request.query.get("connection", ""))
        except ValueError:
            raise web.HTTPBadRequest(text="?connection=N (a connection number)") from None
        preview = self.previews.watch(connection)
        return web.json_response(preview or {"kind": "waiting"})

    async def _published(self, request: web.Request) -> web.Response:
        published = dict(self.previews.published) if self.previews is not None else {}
        return web.json_response(published)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = render_metrics(self.supervisor.snapshot)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _asset(name: str) -> str:
    return importlib.resources.files("fbp.observe").joinpath("static", name).read_text()
