"""Fixtures of the ring tests: rings that are always unlinked, and peer processes."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

from fbp.ring import Ring

PEER_SCRIPT = pathlib.Path(__file__).with_name("ring_peer.py")


class Peer:
    """A `ring_peer.py` child process; its stdout JSON lines arrive through `read()`."""

    def __init__(self, *args):
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - the fixture closes it
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER_SCRIPT), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float = 20.0) -> str:
        line = self.lines.get(timeout=timeout)
        if line is None:
            status = self.proc.wait()
            self.stderr.seek(0)
            raise EOFError(
                f"peer {self.proc.args[2:]} exited ({status}) without output; stderr:\n"
                + self.stderr.read()[-3000:]
            )
        return line

    def read(self, timeout: float = 20.0) -> dict:
        """The next JSON line the peer printed."""
        return json.loads(self.readline(timeout))

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def peer():
    """Start `ring_peer.py MODE ARGS...`; every peer is killed and reaped at teardown."""
    started: list[Peer] = []

    def start(*args) -> Peer:
        p = Peer(*args)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()
        p.proc.stdout.close()
        p.stderr.close()


@pytest.fixture
def make_ring():
    """Create rings owned by the test; each is closed and unlinked at teardown."""
    made: list[Ring] = []

    def make(capacity: int = 1 << 16, **kwargs) -> Ring:
        ring = Ring.create(capacity, **kwargs)
        made.append(ring)
        return ring

    yield make
    for ring in made:
        ring.close()
        ring.unlink()
