"""Prometheus metrics of a running network, from `Supervisor.snapshot()`.

Nothing is counted twice: the collector reads the snapshot on each scrape (the numbers
come from the ring headers and /proc, as for the status display). Metric names follow
Prometheus conventions; every series carries the `graph` label, process series
`process`, `instance`, `component` and `node`, connection series `connection` (the
`SRC.PORT -> TGT.PORT` label of one ring), `src`, `tgt` and `node`. `node` is the host a
process runs on, or a ring lives on: `local` for the `fbp run` host, else its `--hosts`
name, so process and connection series of one host join on it.

`fbp_connection_latency_seconds` is a histogram of how long the packets taken from a
ring had waited in it (producer's commit to consumer's take), over the ring's buckets
(`fbp.ring.LATENCY_BOUNDS`, 10 us to 10 s). It is measured on the ring's host; a link
across hosts is two rings, each measured on its own host, and the network between them
is in neither.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "SnapshotCollector", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATES = (
    "starting",
    "running",
    "finishing",
    "finished",
    "failed",
    "killed",
    "restarting",
    "lost",  # on a host that was lost, or a link to one
)


# (family, metric name, help, snapshot key): one series per process or per connection
_PROCESS_METRICS = (
    (CounterMetricFamily, "fbp_process_cpu_seconds", "CPU time used by a process", "cpu"),
    (GaugeMetricFamily, "fbp_process_resident_memory_bytes", "resident memory", "rss"),
    (
        CounterMetricFamily,
        "fbp_process_packets_received",
        "packets taken from inputs",
        "packets_in",
    ),
    (CounterMetricFamily, "fbp_process_packets_sent", "packets sent on outputs", "packets_out"),
    (CounterMetricFamily, "fbp_process_errors", "packets that failed in process()", "errors"),
    (CounterMetricFamily, "fbp_process_restarts", "times the process was restarted", "restarts"),
)
_CONNECTION_METRICS = (
    (CounterMetricFamily, "fbp_connection_packets", "packets sent into the connection", "packets"),
    (CounterMetricFamily, "fbp_connection_bytes", "bytes sent into the connection", "bytes"),
    (
        CounterMetricFamily,
        "fbp_connection_dropped_packets",
        "packets dropped by the delivery policy",
        "drops",
    ),
    (
        CounterMetricFamily,
        "fbp_connection_full_waits",
        "times the producer waited for space (back-pressure)",
        "full_waits",
    ),
    (GaugeMetricFamily, "fbp_connection_fill_bytes", "bytes waiting in the ring", "fill_bytes"),
    (
        GaugeMetricFamily,
        "fbp_connection_fill_packets",
        "packets waiting in the ring",
        "fill_records",
    ),
    (GaugeMetricFamily, "fbp_connection_capacity_bytes", "ring capacity", "capacity"),
)
_PROCESS_LABELS = ["graph", "process", "instance", "component", "node"]
_CONNECTION_LABELS = ["graph", "connection", "src", "tgt", "node"]


def _families(table, labels, rows) -> list:
    """One metric family per table entry, one sample per (labels, row) with a value."""
    families = []
    for family, name, text, key in table:
        metric = family(name, text, labels=labels)
        for row_labels, row in rows:
            if row.get(key) is not None:
                metric.add_metric(row_labels, float(row[key]))
        families.append(metric)
    return families


class SnapshotCollector:
    """A prometheus_client collector reading a snapshot callable on every scrape.

    Args:
        snapshot: returns a dict as `Supervisor.snapshot()` does.
    """

    def __init__(self, snapshot: Callable[[], dict]) -> None:
        self.snapshot = snapshot

    def collect(self):
        """Yield the metric families (prometheus_client's collector protocol)."""
        data = self.snapshot()
        graph = str(data.get("graph", ""))
        processes = [
            (
                [graph, p["process"], p["name"], p["component"], _node(p)],
                p,
            )
            for p in data.get("processes", [])
        ]
        yield from _families(_PROCESS_METRICS, _PROCESS_LABELS, processes)
        state = GaugeMetricFamily(
            "fbp_process_state",
            "1 for the state the process is in",
            labels=[*_PROCESS_LABELS, "state"],
        )
        for labels, process in processes:
            for name in _STATES:
                state.add_metric([*labels, name], 1.0 if process.get("state") == name else 0.0)
        yield state
        connections = [
            ([graph, c["label"], c["src"], c["tgt"], _node(c)], c)
            for c in data.get("connections", [])
        ]
        yield from _families(_CONNECTION_METRICS, _CONNECTION_LABELS, connections)
        yield _latency(data.get("latency_bounds") or [], connections)
        running = GaugeMetricFamily(
            "fbp_network_running", "1 while the network runs", labels=["graph"]
        )
        running.add_metric([graph], 1.0 if data.get("state") == "running" else 0.0)
        elapsed = GaugeMetricFamily(
            "fbp_network_elapsed_seconds", "time since start", labels=["graph"]
        )
        elapsed.add_metric([graph], float(data.get("elapsed", 0.0)))
        yield running
        yield elapsed


def _node(row: dict) -> str:
    # where it runs; `node=` metadata only when a snapshot has no host (it names the
    # intended host, which a run without --hosts ignores)
    return str(row.get("host") or row.get("node") or "")


def _latency(bounds: list, connections: list) -> HistogramMetricFamily:
    """The latency histogram of every connection whose buckets match the bounds."""
    family = HistogramMetricFamily(
        "fbp_connection_latency_seconds",
        "time packets waited in the connection, from the producer's commit to the consumer's take",
        labels=_CONNECTION_LABELS,
    )
    edges = [floatToGoString(bound) for bound in bounds] + ["+Inf"]
    for labels, row in connections:
        buckets = row.get("latency_buckets") or []
        if bounds and len(buckets) == len(edges):
            family.add_metric(
                labels,
                [(edge, float(count)) for edge, count in zip(edges, buckets, strict=True)],
                float(row.get("latency_sum") or 0.0),
            )
    return family


def render_metrics(snapshot: Callable[[], dict]) -> bytes:
    """The Prometheus text exposition of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
