"""The run folder (how `fbp top`, `fbp ui` and scrapers find a run) and the metric names.

Fast tests without a network: real files in a private folder, real (dead and live) pids.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fbp.observe.metrics import render_metrics
from fbp.observe.runs import find_run, list_runs, register_run, run_folder

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "dashboard.md"


@pytest.fixture
def runs_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / "fbp" / "runs"


def _dead_pid() -> int:
    # a reaped child's pid names no process (until the kernel reuses it, which takes a
    # full wrap of the pid space)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_folder_is_private_and_an_entry_is_readable_only_by_its_owner(runs_home):
    path = register_run("watched", "/data/watched.fbp", "http://127.0.0.1:1", "secret" * 4)
    assert path.parent == runs_home == run_folder()
    assert oct(runs_home.stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    entry = json.loads(path.read_text())
    assert entry["pid"] == os.getpid() and entry["graph"] == "watched"
    assert set(entry) >= {"pid", "graph", "file", "url", "token", "started"}


def test_a_stale_entry_is_ignored_and_removed(runs_home):
    register_run("alive", "alive.fbp", "http://127.0.0.1:1", "t" * 16)
    stale = runs_home / f"{_dead_pid()}.json"
    stale.write_text(json.dumps({"pid": int(stale.stem), "graph": "gone", "url": "", "token": ""}))
    (runs_home / "broken.json").write_text("{not json")

    assert [entry["graph"] for entry in list_runs()] == ["alive"]
    assert not stale.exists()
    assert find_run()["graph"] == "alive"


def test_find_run_names_the_rule_when_it_cannot_choose(runs_home):
    with pytest.raises(LookupError, match=r"no fbp run is running .*fbp run FILE"):
        find_run()
    register_run("first", "/data/first.fbp", "http://127.0.0.1:1", "a" * 16)
    # a second live run of this user: the parent of this test process stands in for it
    other = runs_home / f"{os.getppid()}.json"
    other.write_text(
        json.dumps(
            {"pid": os.getppid(), "graph": "second", "file": "/data/second.fbp",
             "url": "http://127.0.0.1:2", "token": "b" * 16, "started": 1.0}
        )
    )  # fmt: skip
    # oldest first, each with its pid, graph name and file
    with pytest.raises(LookupError, match=r"(?s)several networks.*by pid or graph.*second.*first"):
        find_run()
    assert find_run("second")["url"] == "http://127.0.0.1:2"
    assert find_run(str(os.getpid()))["graph"] == "first"
    assert find_run("first.fbp")["graph"] == "first"
    with pytest.raises(LookupError, match=r"no running network matches 'third'"):
        find_run("third")


SNAPSHOT = {
    "graph": "g",
    "state": "running",
    "elapsed": 2.5,
    "processes": [
        {"name": "Thr", "process": "Thr", "component": "core/Throttle", "state": "running",
         "cpu": 0.25, "rss": 2**20, "errors": 1, "restarts": 0, "node": None,
         "packets_in": 7, "packets_out": 6},
    ],
    "connections": [
        {"label": "Thr.OUT -> Drop.IN", "src": "Thr.OUT", "tgt": "Drop.IN", "packets": 6,
         "bytes": 60, "fill_bytes": 20, "fill_records": 2, "capacity": 1024,
         "full_waits": 3, "drops": 0, "host": "b", "latency_sum": 0.003,
         "latency_buckets": [1, 3, 4]},
    ],
    "latency_bounds": [1e-05, 0.001],
}  # fmt: skip


def test_the_documented_metric_names_are_exactly_the_exported_ones():
    section = DOCS.read_text().split("## Prometheus", 1)[1].split("```", 1)[0]
    documented = set(re.findall(r"`(fbp_[a-z_]+)`", section))
    text = render_metrics(lambda: SNAPSHOT).decode()
    families = list(text_string_to_metric_families(text))
    exported = {
        sample.name
        for family in families
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    # a histogram is documented by its name too, beside its _bucket, _count and _sum
    exported |= {family.name for family in families if family.type == "histogram"}
    assert documented == exported
    values = {
        (sample.name, sample.labels.get("connection") or sample.labels.get("process")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values[("fbp_connection_packets_total", "Thr.OUT -> Drop.IN")] == 6
    assert values[("fbp_connection_fill_packets", "Thr.OUT -> Drop.IN")] == 2
    assert values[("fbp_process_cpu_seconds_total", "Thr")] == 0.25
    assert values[("fbp_process_resident_memory_bytes", "Thr")] == 2**20
    assert values[("fbp_process_errors_total", "Thr")] == 1
    latency = {
        (sample.name, sample.labels.get("le")): sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("fbp_connection_latency_seconds")
    }
    assert latency[("fbp_connection_latency_seconds_bucket", "1e-05")].value == 1
    assert latency[("fbp_connection_latency_seconds_bucket", "0.001")].value == 3
    assert latency[("fbp_connection_latency_seconds_bucket", "+Inf")].value == 4
    assert latency[("fbp_connection_latency_seconds_count", None)].value == 4
    assert latency[("fbp_connection_latency_seconds_sum", None)].value == 0.003
    # the host the ring lives on; a process without a host falls back to its node=
    assert {sample.labels["node"] for sample in latency.values()} == {"b"}
