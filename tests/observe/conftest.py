"""Running networks to observe: real `fbp run` processes with their endpoint."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

FBP = os.path.join(os.path.dirname(sys.executable), "fbp")

LIBRARY = textwrap.dedent(
    '''
    """Components for the observation tests."""
    from fbp.component import Component, InPort, OutPort
    from fbp.types import Any


    class Announce(Component):
        """Pass packets on; publish how many went by as the preview 'latest'."""

        inports = [InPort("IN", Any, "anything")]
        outports = [OutPort("OUT", Any, "the same")]

        def setup(self):
            self.count = 0

        def process(self, packet):
            self.count += 1
            self.publish_preview({"packets": self.count}, name="latest")
            return packet.value
    '''
)


class RunningNetwork:
    """An `fbp run` in the background, with its registry entry."""

    def __init__(self, graph: pathlib.Path, runs: pathlib.Path, *extra: str) -> None:
        self.runs = runs
        self.process = subprocess.Popen(
            [FBP, "run", str(graph), "--no-status", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "XDG_RUNTIME_DIR": str(runs)},
            cwd=graph.parent,
        )
        self.entry = self._wait_for_entry()

    def _wait_for_entry(self) -> dict:
        path = self.runs / "fbp" / "runs" / f"{self.process.pid}.json"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if path.exists():
                return json.loads(path.read_text())
            if self.process.poll() is not None:
                raise AssertionError(f"fbp run ended early:\n{self.process.stderr.read()}")
            time.sleep(0.1)
        raise AssertionError("fbp run never registered its endpoint")

    @property
    def registry_file(self) -> pathlib.Path:
        return self.runs / "fbp" / "runs" / f"{self.process.pid}.json"

    def stop(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


@pytest.fixture
def runs_dir(tmp_path):
    folder = tmp_path / "xdg"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def network(tmp_path, runs_dir):
    """start(graph_text, *fbp_run_options) -> RunningNetwork; stopped at the end."""
    started = []
    (tmp_path / "observed.py").write_text(LIBRARY)

    def start(text: str, *extra: str) -> RunningNetwork:
        graph = tmp_path / "watched.fbp"
        graph.write_text(text)
        running = RunningNetwork(graph, runs_dir, "--path", str(tmp_path), *extra)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            try:
                running.stop()  # graceful: its segments are unlinked
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.communicate(timeout=30)
