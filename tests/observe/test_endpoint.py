"""The observation endpoint of a real `fbp run`: token, snapshot, metrics, previews, top, ui."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

FBP = os.path.join(os.path.dirname(sys.executable), "fbp")

ENDLESS = """
Seq(core/Sequence) OUT -> IN Thr(core/Throttle:capacity=64KiB) OUT -> IN Drop(core/Drop)
'200' -> RATE Thr
"""

FRAMES = """
'0' -> FRAMES Sim(detector/Simulate)
'eiger2-500k' -> MODEL Sim
'8' -> RATE Sim
'1' -> HIT_RATE Sim
Sim OUT -> IN Say(observed/Announce) OUT -> IN Sum(xray/Sum) OUT -> IN Drop(core/Drop)
"""


def get(entry: dict, path: str, token: str | None = "from-entry"):
    token = entry["token"] if token == "from-entry" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(entry["url"] + path, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def counters(entry: dict) -> dict:
    values = {}
    for family in text_string_to_metric_families(get(entry, "/metrics").decode()):
        for sample in family.samples:
            if sample.name == "fbp_connection_packets_total":
                values[sample.labels["connection"]] = sample.value
            if sample.name == "fbp_process_cpu_seconds_total":
                values[("cpu", sample.labels["instance"])] = sample.value
    return values


def fbp(*args, runs_dir):
    return subprocess.run(
        [FBP, *args],
        capture_output=True,
        text=True,
        timeout=30,
        # no COLUMNS: `fbp top --once` into a pipe must not cut names on its own
        env={
            **{key: value for key, value in os.environ.items() if key != "COLUMNS"},
            "XDG_RUNTIME_DIR": str(runs_dir),
        },
    )


@pytest.mark.timeout(90)
def test_metrics_move_the_token_is_enforced_and_the_entry_goes_at_the_end(network, runs_dir):
    running = network(ENDLESS)
    entry = running.entry
    assert entry["url"].startswith("http://127.0.0.1:") and len(entry["token"]) >= 16
    assert oct(os.stat(running.registry_file.parent).st_mode & 0o777) == "0o700"

    for token in (None, "wrong-token"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(entry, "/metrics", token=token)
        assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(entry["url"] + "/api/snapshot?token=nope", timeout=10)
    # the token in the URL works too (the dashboard link)
    url = f"{entry['url']}/api/snapshot?token={entry['token']}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert json.loads(response.read())["file"].endswith("watched.fbp")

    time.sleep(1.5)
    first = counters(entry)
    time.sleep(1.5)
    second = counters(entry)
    label = "Thr.OUT -> Drop.IN"
    assert second[label] > first[label] > 0
    assert second[("cpu", "Thr")] >= first[("cpu", "Thr")] > 0

    snapshot = json.loads(get(entry, "/api/snapshot"))
    assert snapshot["state"] == "running"
    assert {p["name"] for p in snapshot["processes"]} == {"Seq", "Thr", "Drop"}

    status, _, err = running.stop()
    assert status == 130, err
    assert not running.registry_file.exists()


@pytest.mark.timeout(90)
def test_previews_of_frames_and_published_previews(network):
    running = network(FRAMES)
    entry = running.entry
    graph = json.loads(get(entry, "/api/graph"))
    frames = next(c for c in graph["connections"] if c["src"] == "Sim" and c["src_port"] == "OUT")
    sums = next(c for c in graph["connections"] if c["src"] == "Sum")
    deadline = time.monotonic() + 30
    image = plot = published = None
    while time.monotonic() < deadline and not (image and plot and published):
        image = json.loads(get(entry, f"/api/preview?connection={frames['connection']}"))
        plot = json.loads(get(entry, f"/api/preview?connection={sums['connection']}"))
        published = json.loads(get(entry, "/api/published")).get("Say/latest")
        image = image if image.get("kind") == "image" else None
        plot = plot if plot.get("kind") == "scalars" else None
        time.sleep(0.3)
    assert image is not None, "no image preview of Sim.OUT"
    assert image["shape"] == [512, 1028] and image["width"] <= 256 and image["height"] <= 256
    assert len(image["pixels"]) > 1000
    assert plot is not None and plot["values"]["value"] > 0  # Sum's total counts
    assert published is not None and published["kind"] == "scalars"
    assert published["values"]["packets"] >= 1
    status, _, err = running.stop()
    assert status == 130, err


@pytest.mark.timeout(90)
def test_fbp_top_once_and_fbp_ui_find_the_run(network, runs_dir):
    running = network(ENDLESS)
    time.sleep(1.5)
    top = fbp("top", "--once", runs_dir=runs_dir)
    assert top.returncode == 0, top.stderr
    for text in ("processes", "connections", "Seq", "core/Throttle", "Thr.OUT -> Drop.IN",
                 "running", "RSS MiB", "restarts", "latency p50"):  # fmt: skip
        assert text in top.stdout, top.stdout
    # how long packets waited in each connection, with its unit
    assert re.search(r"\d+ (us|ms)|\d\.\d\d s", top.stdout), top.stdout
    ui = fbp("ui", runs_dir=runs_dir)
    assert ui.returncode == 0, ui.stderr
    assert ui.stdout.strip() == f"{running.entry['url']}/?token={running.entry['token']}"
    listed = fbp("ui", "--list", runs_dir=runs_dir)
    assert str(running.process.pid) in listed.stdout
    remote = fbp(
        "top", "--once", "--url", running.entry["url"], "--token", "bad", runs_dir=runs_dir
    )
    assert remote.returncode == 1 and "refused the token" in remote.stderr
    _live_top_leaves_on_q(runs_dir)
    assert running.process.poll() is None  # leaving `fbp top` leaves the network alone
    running.stop()
    gone = fbp("top", "--once", runs_dir=runs_dir)
    assert gone.returncode == 1 and "no fbp run is running" in gone.stderr


def _live_top_leaves_on_q(runs_dir) -> None:
    """The live view in a real terminal (a pty) refreshes, and `q` leaves it."""
    import pty
    import select

    controller, terminal = pty.openpty()
    top = subprocess.Popen(
        [FBP, "top", "--interval", "0.3"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runs_dir), "COLUMNS": "200"},
        close_fds=True,
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 20
        while seen.count(b"connections") < 2 and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.5)[0]:
                seen += os.read(controller, 65536)
        assert seen.count(b"connections") >= 2, seen[-2000:]  # at least one refresh
        os.write(controller, b"q")
        assert top.wait(timeout=10) == 0
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()
        os.close(controller)
