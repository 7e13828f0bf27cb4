"""fbp-protocol's own test suite (`fbp-init` + `fbp-test` from npm fbp-protocol@0.9.8)
passes against `fbp runtime`: all 22 tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXPECTED_TESTS = 22


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(90)
def test_fbp_protocol_suite_passes(fbp_protocol_dir):
    bin_dir = fbp_protocol_dir / "node_modules" / ".bin"
    port = _free_port()
    fbp = Path(sys.executable).parent / "fbp"
    # `exec` so the runtime is the shell's own process: fbp-test stops it with SIGTERM.
    command = f"exec {fbp} runtime --port {port}"
    init = subprocess.run(
        [
            bin_dir / "fbp-init",
            "--name",
            "fbp",
            "--port",
            str(port),
            "--command",
            command,
            "--collection",
            "core",
        ],
        cwd=fbp_protocol_dir,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    result = subprocess.run(
        [bin_dir / "fbp-test", "--no-colors"],
        cwd=fbp_protocol_dir,
        check=False,
        capture_output=True,
        text=True,
        timeout=80,
        env=env,
    )
    output = result.stdout + result.stderr
    passing = re.search(r"(\d+) passing", output)
    failing = re.search(r"(\d+) failing", output)
    assert passing, f"fbp-test printed no summary:\n{output}"
    assert not failing, f"fbp-test: {failing.group(0)}:\n{output}"
    assert int(passing.group(1)) == EXPECTED_TESTS, output
    assert result.returncode == 0, output
