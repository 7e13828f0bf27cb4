"""Per-connection latency with real processes and real rings: snapshot, metrics, endpoint.

Times on this machine are noisy (2 shared cores), so the tests compare ratios between a
connection whose consumer keeps up and one whose consumer falls behind, never absolute
times, and check counts exactly.
"""

from __future__ import annotations

import json
import pathlib
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fbp.graph import parse
from fbp.observe.metrics import render_metrics
from fbp.registry import Registry
from fbp.ring import LATENCY_BOUNDS
from fbp.runtime.plan import make_plan
from fbp.runtime.supervisor import Supervisor

PROBES = pathlib.Path(__file__).resolve().parents[1] / "runtime" / "lib"
COUNT = 600
# The sink takes each packet as soon as the throttle sends it: waits are wake-up times.
FAST = f"""
'{COUNT}' -> COUNT Seq(core/Sequence) OUT -> IN Thr(core/Throttle) OUT -> IN Drop(core/Drop)
'600' -> RATE Thr
"""
# A consumer that needs 2 ms a packet behind a source that sends all at once: packets
# queue in the ring, the last ones for about COUNT x 2 ms.
SLOW = f"""
'{COUNT}' -> COUNT Seq(core/Sequence) OUT -> IN Slow(probe/Sleepy) OUT -> IN Drop(core/Drop)
'0.002' -> SECONDS Slow
"""
FAST_LINK, SLOW_LINK = "Thr.OUT -> Drop.IN", "Seq.OUT -> Slow.IN"


def get(entry: dict, path: str) -> bytes:
    request = urllib.request.Request(
        entry["url"] + path, headers={"Authorization": f"Bearer {entry['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def run_to_the_end(text: str) -> tuple[Supervisor, list[dict]]:
    """Run a graph in this process's supervisor; also the snapshots taken while it ran."""
    paths = [str(PROBES)]
    plan = make_plan(parse(text, file="latency.fbp"), Registry(paths))
    supervisor = Supervisor(plan, paths=paths)
    live: list[dict] = []

    def sampled(event, **fields):
        if event == "sample":
            live.append(supervisor.snapshot())

    supervisor.subscribe(sampled)
    assert supervisor.run() == 0
    return supervisor, live


def connection(snapshot: dict, label: str) -> dict:
    return next(c for c in snapshot["connections"] if c["label"] == label)


def mean(row: dict) -> float:
    return row["latency_sum"] / row["latency_count"]


@pytest.fixture(scope="module")
def runs():
    """The fast and the slow graph, each run once for the tests of this module."""
    return {"fast": run_to_the_end(FAST), "slow": run_to_the_end(SLOW)}


@pytest.mark.timeout(120)
def test_a_consumer_that_falls_behind_shows_a_latency_far_above_a_fast_one(runs):
    fast = connection(runs["fast"][0].snapshot(), FAST_LINK)
    slow = connection(runs["slow"][0].snapshot(), SLOW_LINK)
    for row in (fast, slow):
        assert row["latency_count"] == COUNT == row["packets"]
    # ~0.6 s of queueing on average against wake-up times of microseconds (a loaded
    # machine makes those milliseconds): at least 20x, and the same for the median
    assert mean(slow) > 20 * mean(fast), (mean(slow), mean(fast))
    assert mean(slow) > 0.1  # COUNT x 2 ms of sleeping cannot go faster
    snapshot = runs["slow"][0].snapshot()
    assert snapshot["latency_bounds"] == list(LATENCY_BOUNDS)
    p50 = {}
    for name, row in (("fast", fast), ("slow", slow)):
        buckets = row["latency_buckets"]
        assert len(buckets) == len(LATENCY_BOUNDS) + 1 and buckets[-1] == COUNT
        assert buckets == sorted(buckets)  # cumulative
        p50[name] = next(b for b, n in zip(LATENCY_BOUNDS, buckets, strict=False) if n >= COUNT / 2)
    assert p50["slow"] >= 20 * p50["fast"], p50


@pytest.mark.timeout(120)
def test_the_snapshot_shows_the_recent_latency_while_packets_queue(runs):
    _, live = runs["slow"]
    recent = [connection(s, SLOW_LINK) for s in live]
    recent = [c for c in recent if c["latency_p50"] is not None]
    assert recent, "no snapshot during the run had a recent latency"
    for row in recent:
        assert 0 < row["latency_p50"] <= row["latency_p99"]
        assert row["latency_mean"] > 0
    # the queue is long after the first few packets: most recent values show it
    assert max(row["latency_p50"] for row in recent) > 0.05
    # and the live table renders them
    from rich.console import Console

    from fbp.runtime.status import render_tables

    console = Console(width=200, record=True)
    console.print(render_tables(runs["slow"][0].board, final=True))
    text = console.export_text()
    assert "latency mean" in text and " ms " in text
    console.print(render_tables(runs["slow"][0].board, final=False))
    assert "latency p50" in console.export_text()


@pytest.mark.timeout(120)
def test_the_scrape_has_a_consistent_histogram_per_connection_with_its_node(runs):
    supervisor = runs["slow"][0]
    snapshot = supervisor.snapshot()
    taken = {p["name"]: p["packets_in"] for p in snapshot["processes"]}
    families = {
        family.name: family
        for family in text_string_to_metric_families(render_metrics(supervisor.snapshot).decode())
    }
    histogram = families["fbp_connection_latency_seconds"]
    assert histogram.type == "histogram"
    by_link: dict[str, dict] = {}
    for sample in histogram.samples:
        assert sample.labels["node"] == "local"
        entry = by_link.setdefault(sample.labels["connection"], {"buckets": []})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        else:
            entry[sample.name.rsplit("_", 1)[1]] = sample.value
    assert set(by_link) == {SLOW_LINK, "Slow.OUT -> Drop.IN"}
    for label, entry in by_link.items():
        consumer = label.split(" -> ")[1].split(".")[0]
        # _count is every packet the consumer took, the +Inf bucket is _count, and the
        # buckets only grow
        assert entry["count"] == taken[consumer] == COUNT
        edges = [edge for edge, _ in entry["buckets"]]
        assert edges == [*LATENCY_BOUNDS, float("inf")]
        counts = [value for _, value in entry["buckets"]]
        assert counts == sorted(counts) and counts[-1] == entry["count"]
        assert entry["sum"] == pytest.approx(connection(snapshot, label)["latency_sum"])
    # every connection and process series carries the host, `local` for this one
    for family in families.values():
        for sample in family.samples:
            if sample.name.startswith(("fbp_connection_", "fbp_process_")):
                assert sample.labels["node"] == "local", sample


@pytest.mark.timeout(90)
def test_a_running_network_serves_latency_in_its_snapshot_and_metrics(network):
    # Seq fills the throttle's 64 KiB ring at once, which it drains at 200/s: packets wait
    # there for seconds, and not at all between the throttle and the sink.
    running = network(
        "Seq(core/Sequence) OUT -> IN Thr(core/Throttle:capacity=64KiB) OUT -> IN Drop(core/Drop)\n"
        "'200' -> RATE Thr\n"
    )
    # The first packets pass before the queue forms (seen on a loaded machine: 0.26 ms),
    # so the recent window is read until it holds queued ones.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snapshot = json.loads(get(running.entry, "/api/snapshot"))
        rows = {c["label"]: c for c in snapshot["connections"]}
        if len(rows) == 2 and all(row["latency_p50"] for row in rows.values()):
            queued, fast = rows["Seq.OUT -> Thr.IN"], rows["Thr.OUT -> Drop.IN"]
            if queued["latency_p50"] > 20 * fast["latency_p50"]:
                break
        time.sleep(0.3)
    else:
        pytest.fail(f"no queue's latency 20x the sink's within 30 s: {rows}")
    text = get(running.entry, "/metrics").decode()
    counts = {
        sample.labels["connection"]: sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fbp_connection_latency_seconds_count"
    }
    assert counts["Thr.OUT -> Drop.IN"].value > 0
    assert counts["Thr.OUT -> Drop.IN"].labels["node"] == "local"
    status, _, err = running.stop()
    assert status == 130, err
