"""What a running network looks like: per-process and per-connection numbers, and views.

Numbers come from the ring headers (packets, bytes, fill, the latency histogram) and /proc
(CPU), sampled by the supervisor a few times a second, never from the components' hot
path. `StatusBoard` is the model (a dashboard can read it too); `render_table` draws it
with rich, used live on a terminal and once as the final summary.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from rich.table import Table

from fbp.runtime.latency import LatencyWindow, cumulative, format_latency, quantile

__all__ = ["ConnectionStatus", "ProcessStatus", "StatusBoard", "render_tables"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class ProcessStatus:
    """One component instance."""

    name: str
    component: str
    pid: int | None = None
    state: str = "starting"  # starting, running, finished, failed, killed
    exit_status: int | None = None
    packets_in: int = 0
    packets_out: int = 0
    errors: int = 0
    restarts: int = 0
    rate: float = 0.0
    cpu: float = 0.0
    cpu_percent: float = 0.0
    final_cpu: bool = False  # cpu is the process's own total, reported at its end
    process: str = ""  # the graph process it is an instance of ("" for a bridge)
    host: str = "local"  # where it runs (fbp.cluster); remote ones are sampled there
    rss: int | None = None  # resident bytes, as its host last sampled it (remote only)
    _last: tuple = field(default=(0.0, 0, 0.0), repr=False)


@dataclass
class ConnectionStatus:
    """One ring (a connection, or one worker's share of it)."""

    label: str
    capacity: int
    packets: int = 0
    bytes: int = 0
    fill_bytes: int = 0
    fill_records: int = 0
    full_waits: int = 0
    empty_waits: int = 0
    drops: int = 0  # delivery policies (resilience) will count here
    throughput: float = 0.0
    host: str = "local"  # where the ring is (fbp.cluster); remote ones are sampled there
    connection: int | None = None  # the graph connection's number, when known
    # how long taken packets waited in the ring (fbp.runtime.latency): since the start as
    # cumulative buckets over fbp.ring.LATENCY_BOUNDS (+ one above) and summed seconds,
    # and over the last ~2 s as mean/p50/p99 seconds (None: nothing taken then)
    latency_count: int = 0
    latency_sum: float = 0.0
    latency_buckets: list = field(default_factory=list)
    latency_mean: float | None = None
    latency_p50: float | None = None
    latency_p99: float | None = None
    _last: tuple = field(default=(0.0, 0), repr=False)
    _latency: LatencyWindow = field(default_factory=LatencyWindow, repr=False)

    @property
    def fill_percent(self) -> float:
        """How full the ring is, 0-100."""
        return 100.0 * self.fill_bytes / self.capacity if self.capacity else 0.0


class StatusBoard:
    """The status of every process and connection, refreshed by `sample`."""

    def __init__(self, host: str = "local") -> None:
        self.processes: dict[str, ProcessStatus] = {}
        self.connections: dict[str, ConnectionStatus] = {}
        self.started = time.monotonic()
        self.host = host  # where the rings this board samples live

    def sample(self, rings: dict, process_rings: dict[str, tuple[list, list]]) -> None:
        """Read ring headers and /proc.

        Args:
            rings: ring name -> (owner Ring, label).
            process_rings: instance name -> (input ring names, output ring names).
        """
        now = time.monotonic()
        stats = {}
        for name, (ring, label) in rings.items():
            data = ring.raw_stats()
            stats[name] = data
            status = self.connections.get(name)
            if status is None:
                status = ConnectionStatus(label, data["capacity"], host=self.host)
                self.connections[name] = status
            last_time, last_packets = status._last
            status.packets = data["packets"]
            status.bytes = data["bytes"]
            status.fill_bytes = data["fill_bytes"]
            status.fill_records = data["fill_records"]
            status.full_waits = data["full_waits"]
            status.empty_waits = data["empty_waits"]
            if last_time:
                status.throughput = (status.packets - last_packets) / max(now - last_time, 1e-6)
            status._last = (now, status.packets)
            latency = ring.latency()
            status.latency_buckets = cumulative(latency["counts"])
            status.latency_count = latency["count"]
            status.latency_sum = latency["sum"]
            for key, value in status._latency.update(
                status.latency_buckets, status.latency_sum
            ).items():
                setattr(status, key, value)
        for name, (inputs, outputs) in process_rings.items():
            status = self.processes[name]
            status.packets_in = sum(stats[r]["packets_received"] for r in inputs if r in stats)
            status.packets_out = sum(stats[r]["packets"] for r in outputs if r in stats)
            cpu = cpu_seconds(status.pid) if status.pid and status.state == "running" else None
            last_time, last_count, last_cpu = status._last
            if cpu is not None and not status.final_cpu:
                status.cpu = cpu
            if last_time:
                elapsed = max(now - last_time, 1e-6)
                count = max(status.packets_in, status.packets_out)
                status.rate = (count - last_count) / elapsed
                status.cpu_percent = 100.0 * (status.cpu - last_cpu) / elapsed
            status._last = (now, max(status.packets_in, status.packets_out), status.cpu)


def _count(value: float) -> str:
    return f"{value:,.0f}"


def render_tables(board: StatusBoard, final: bool = False) -> Table:
    """A rich table of processes, and one of connections, in one grid."""
    processes = Table(
        title="processes" if not final else "fbp run summary: processes", title_justify="left"
    )
    # across hosts (fbp.cluster) a host column says where each process runs
    hosts = any(status.host != "local" for status in board.processes.values())
    columns = ("process", "host", "component", "state", "in", "out", "errors")
    for column in columns if hosts else tuple(c for c in columns if c != "host"):
        processes.add_column(
            column,
            justify="right" if column in ("in", "out", "errors") else "left",
            overflow="fold" if column == "process" else "ellipsis",
        )
    if final:
        processes.add_column("exit", justify="right")
        processes.add_column("CPU s", justify="right")
    else:
        processes.add_column("rate/s", justify="right")
        processes.add_column("CPU %", justify="right")
    for status in board.processes.values():
        row = [
            status.name,
            *([status.host] if hosts else []),
            status.component,
            status.state,
            _count(status.packets_in),
            _count(status.packets_out),
            _count(status.errors),
        ]
        if final:
            row += [
                "" if status.exit_status is None else str(status.exit_status),
                f"{status.cpu:.2f}",
            ]
        else:
            row += [_count(status.rate), f"{status.cpu_percent:.0f}"]
        processes.add_row(*row)
    connections = Table(title="connections", title_justify="left")
    for column in ("connection", "packets", "MiB", "fill %", "full waits", "drops"):
        connections.add_column(column, justify="left" if column == "connection" else "right")
    # the queueing latency: recent while running (a stage falling behind shows at once),
    # over the whole run in the summary
    for column in ("latency mean", "p99") if final else ("packets/s", "latency p50", "p99"):
        connections.add_column(column, justify="right")
    for status in board.connections.values():
        row = [
            status.label,
            _count(status.packets),
            f"{status.bytes / 2**20:.1f}",
            f"{status.fill_percent:.0f}",
            _count(status.full_waits),
            _count(status.drops),
        ]
        if final:
            count = status.latency_count
            p99 = quantile(0.99, status.latency_buckets) if count else None
            row += [format_latency(status.latency_sum / count if count else None)]
            row += [format_latency(p99)]
        else:
            row.append(_count(status.throughput))
            row += [format_latency(status.latency_p50), format_latency(status.latency_p99)]
        connections.add_row(*row)
    grid = Table.grid()
    grid.add_row(processes)
    grid.add_row(connections)
    return grid
