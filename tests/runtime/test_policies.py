"""Delivery policies: a slow consumer on `latest` or `sampled` never slows its producer."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

FBP = os.path.join(os.path.dirname(sys.executable), "fbp")
LIB = pathlib.Path(__file__).parent / "lib"

# 1500 packets at 500/s (3 s) to a fast counter and to a viewer that needs 50 ms a packet:
# reliable, the viewer's small ring would hold the producer to 20 packets/s (75 s).
GRAPH = """
'1500' -> COUNT Seq(core/Sequence) OUT -> IN Thr(core/Throttle)
'500' -> RATE Thr
Thr OUT -> IN All(core/Counter) COUNT -> IN Out(core/Output)
Thr OUT -> IN View(probe/Sleepy:capacity=4KiB,{policy}) OUT -> IN Seen(core/Counter)
Seen COUNT -> IN Out
"""


def run(tmp_path, policy):
    graph = tmp_path / "viewer.fbp"
    graph.write_text(GRAPH.format(policy=policy))
    ledger = tmp_path / "ledger.json"
    started = time.monotonic()
    result = subprocess.run(
        [FBP, "run", str(graph), "--path", str(LIB), "--no-status", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    counts = sorted(int(line) for line in result.stdout.split())
    return counts, elapsed, json.loads(ledger.read_text()), result.stderr


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "policy", ["policy=latest", "policy=latest,keep=4", "policy=sampled,rate=5", "policy_IN=latest"]
)
def test_a_slow_viewer_drops_instead_of_slowing_the_producer(tmp_path, policy):
    (seen, everything), elapsed, ledger, err = run(tmp_path, policy)
    assert everything == 1500  # the reliable branch got every packet
    assert 1 <= seen < 500  # the viewer kept up only with a fraction
    # not held to the viewer's pace (that would take 75 s); generous for a loaded machine
    assert elapsed < 30, err
    (entry,) = [e for e in ledger["entries"] if e["kind"] == "dropped"]
    assert entry["where"] == "Thr.OUT -> View.IN"
    assert entry["reason"] == f"policy={policy.split(',')[0].split('=')[1]}"
    assert ledger["totals"]["dropped"] == entry["count"]
    assert entry["count"] == 1500 - seen  # every packet is either seen or in the ledger
    if "sampled" in policy:
        assert seen <= 5 * elapsed + 5  # at most RATE a second


@pytest.mark.timeout(60)
def test_bad_policy_metadata_is_reported(tmp_path):
    graph = tmp_path / "bad.fbp"
    graph.write_text("'3' -> COUNT S(core/Sequence) OUT -> IN V(core/Drop:policy=newest)\n")
    result = subprocess.run([FBP, "run", str(graph)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "policy='newest' must be one of reliable, latest, sampled" in result.stderr


@pytest.mark.timeout(90)
def test_a_json_graph_gives_one_connection_its_policy(tmp_path):
    from fbp.graph import parse

    text = GRAPH.format(policy="capacity=4KiB").replace(",capacity=4KiB)", ")")
    graph = parse(text, file="viewer.fbp").to_json()
    for edge in graph["connections"]:
        if edge.get("tgt", {}).get("process") == "View" and "src" in edge:
            edge["metadata"] = {"policy": "latest"}
    path = tmp_path / "viewer.json"
    path.write_text(json.dumps(graph))
    result = subprocess.run(
        [
            FBP,
            "run",
            str(path),
            "--path",
            str(LIB),
            "--no-status",
            "--ledger",
            str(tmp_path / "l.json"),
        ],
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert result.returncode == 0, result.stderr
    seen, everything = sorted(int(line) for line in result.stdout.split())
    assert everything == 1500 and seen < 500
    ledger = json.loads((tmp_path / "l.json").read_text())
    assert ledger["totals"]["dropped"] == 1500 - seen
