"""Prometheus metrics of a running network, from `Supervisor.snapshot()`.

Nothing is counted twice: the collector reads the snapshot on each scrape (the numbers
come from the ring headers and /proc, as for the status display). Metric names follow
Prometheus conventions; every series carries the `graph` label, process series
`process`, `instance`, `component` and `node`, connection series `connection` (the
`SRC.PORT -> TGT.PORT` label of one ring), `src` and `tgt`.

Latency per connection is not measured by the runtime yet, so no latency metric is
exported (rather than a made-up one).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["CONTENT_TYPE", "SnapshotCollector", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATES = ("starting", "running", "finishing", "finished", "failed", "killed", "restarting")


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
        p_labels = ["graph", "process", "instance", "component", "node"]
        c_labels = ["graph", "connection", "src", "tgt"]
        processes = {
            "cpu": CounterMetricFamily(
                "fbp_process_cpu_seconds", "CPU time used by a process", labels=p_labels
            ),
            "rss": GaugeMetricFamily(
                "fbp_process_resident_memory_bytes", "resident memory", labels=p_labels
            ),
            "in": CounterMetricFamily(
                "fbp_process_packets_received", "packets taken from inputs", labels=p_labels
            ),
            "out": CounterMetricFamily(
                "fbp_process_packets_sent", "packets sent on outputs", labels=p_labels
            ),
            "errors": CounterMetricFamily(
                "fbp_process_errors", "packets that failed in process()", labels=p_labels
            ),
            "restarts": CounterMetricFamily(
                "fbp_process_restarts", "times the process was restarted", labels=p_labels
            ),
        }
        state = GaugeMetricFamily(
            "fbp_process_state", "1 for the state the process is in", labels=[*p_labels, "state"]
        )
        for process in data.get("processes", []):
            labels = [
                graph,
                process["process"],
                process["name"],
                process["component"],
                str(process.get("node") or ""),
            ]
            processes["cpu"].add_metric(labels, float(process.get("cpu") or 0.0))
            if process.get("rss") is not None:
                processes["rss"].add_metric(labels, float(process["rss"]))
            processes["in"].add_metric(labels, float(process.get("packets_in", 0)))
            processes["out"].add_metric(labels, float(process.get("packets_out", 0)))
            processes["errors"].add_metric(labels, float(process.get("errors", 0)))
            processes["restarts"].add_metric(labels, float(process.get("restarts", 0)))
            for name in _STATES:
                state.add_metric([*labels, name], 1.0 if process.get("state") == name else 0.0)
        connections = {
            "packets": CounterMetricFamily(
                "fbp_connection_packets", "packets sent into the connection", labels=c_labels
            ),
            "bytes": CounterMetricFamily(
                "fbp_connection_bytes", "bytes sent into the connection", labels=c_labels
            ),
            "drops": CounterMetricFamily(
                "fbp_connection_dropped_packets",
                "packets dropped by the delivery policy",
                labels=c_labels,
            ),
            "full": CounterMetricFamily(
                "fbp_connection_full_waits",
                "times the producer waited for space (back-pressure)",
                labels=c_labels,
            ),
            "fill_bytes": GaugeMetricFamily(
                "fbp_connection_fill_bytes", "bytes waiting in the ring", labels=c_labels
            ),
            "fill_records": GaugeMetricFamily(
                "fbp_connection_fill_packets", "packets waiting in the ring", labels=c_labels
            ),
            "capacity": GaugeMetricFamily(
                "fbp_connection_capacity_bytes", "ring capacity", labels=c_labels
            ),
        }
        for connection in data.get("connections", []):
            labels = [graph, connection["label"], connection["src"], connection["tgt"]]
            connections["packets"].add_metric(labels, float(connection["packets"]))
            connections["bytes"].add_metric(labels, float(connection["bytes"]))
            connections["drops"].add_metric(labels, float(connection.get("drops", 0)))
            connections["full"].add_metric(labels, float(connection.get("full_waits", 0)))
            connections["fill_bytes"].add_metric(labels, float(connection["fill_bytes"]))
            connections["fill_records"].add_metric(labels, float(connection["fill_records"]))
            connections["capacity"].add_metric(labels, float(connection["capacity"]))
        running = GaugeMetricFamily(
            "fbp_network_running", "1 while the network runs", labels=["graph"]
        )
        running.add_metric([graph], 1.0 if data.get("state") == "running" else 0.0)
        elapsed = GaugeMetricFamily(
            "fbp_network_elapsed_seconds", "time since start", labels=["graph"]
        )
        elapsed.add_metric([graph], float(data.get("elapsed", 0.0)))
        yield from processes.values()
        yield state
        yield from connections.values()
        yield running
        yield elapsed


def render_metrics(snapshot: Callable[[], dict]) -> bytes:
    """The Prometheus text exposition of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
