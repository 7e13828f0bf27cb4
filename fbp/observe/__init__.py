"""Watching a running network: the dashboard, its JSON API, Prometheus metrics, `fbp top`.

`Observer(supervisor)` is what `fbp run` starts unless `--no-observe`: sampled preview
taps on every connection (`previews`), the HTTP endpoint (`server`) and an entry in the
user's run folder (`runs`) so that `fbp ui`, `fbp top` and Prometheus can find the run.
`metrics` turns a snapshot into Prometheus metrics. See docs/dashboard.md.
"""

from __future__ import annotations

import contextlib

from fbp.observe.previews import PreviewTaps
from fbp.observe.runs import register_run
from fbp.observe.server import ObserveServer, parse_address

__all__ = ["Observer"]


class Observer:
    """Previews, endpoint and run registration for one supervisor.

    Args:
        supervisor: the `Supervisor` about to run.
        address: `HOST:PORT` to listen on (default 127.0.0.1 and a free port).
        previews: sample connections for the dashboard's previews.

    Raises:
        ValueError: a malformed address.
    """

    def __init__(self, supervisor, address: str | None = None, previews: bool = True) -> None:
        host, port = parse_address(address)
        self.supervisor = supervisor
        self.previews = PreviewTaps(supervisor) if previews else None
        self.server = ObserveServer(supervisor, self.previews, host, port)
        self._registration = None

    @property
    def url(self) -> str:
        """The dashboard's address, token included."""
        return self.server.url

    def start(self) -> None:
        """Serve and register the run.

        Raises:
            OSError: the address cannot be bound.
        """
        self.server.start()
        graph = self.supervisor.plan.graph
        self._registration = register_run(
            graph.name or graph.file, graph.file, self.server.base_url, self.server.token
        )

    def close(self) -> None:
        """Stop serving, unregister, let go of the preview taps (safe to call twice)."""
        self.server.stop()
        if self._registration is not None:
            with contextlib.suppress(OSError):
                self._registration.unlink()
            self._registration = None
        if self.previews is not None:
            self.previews.close()
