"""The client example in docs/protocol.md works against a real `fbp runtime`."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

PAGE = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(kind: str) -> list[str]:
    return [text for found, text in BLOCK.findall(PAGE) if found == kind]


@pytest.mark.timeout(60)
def test_python_client_example_prints_what_the_page_shows(runtime, tmp_path):
    (code,) = _blocks("python")
    (expected,) = _blocks("text")
    script = tmp_path / "client.py"
    script.write_text(code.replace("ws://127.0.0.1:3569/", runtime.url))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=50, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Each connection's packets in order; the two connections may interleave.
    for edge in ("Seq() OUT -> IN Pass()", "Pass() OUT -> IN Sink()"):
        mine = [line for line in lines if line.startswith(edge)]
        assert mine == [line for line in expected.splitlines() if line.startswith(edge)]
    assert sorted(lines) == sorted(expected.splitlines())


def test_the_page_states_the_real_listening_line(runtime):
    (console,) = [b for b in _blocks("console") if "listening" in b]
    shown = console.splitlines()[1]
    assert re.sub(r":\d+/", ":PORT/", shown) == re.sub(r":\d+/", ":PORT/", runtime.line.strip())
