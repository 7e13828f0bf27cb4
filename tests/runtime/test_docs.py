"""The examples in docs/components.md and docs/running.md work as the pages say.

Fenced blocks `python file=NAME` and `fbp file=NAME` are written to a folder; plain
`python` blocks are executed there (with the folder importable); `console` blocks run each
`$ fbp ...` command there and compare its stdout with the lines that follow.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FBP = os.path.join(os.path.dirname(sys.executable), "fbp")
BLOCK = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(page: str):
    return BLOCK.findall((REPO / "docs" / page).read_text())


def materialize(page: str, folder: pathlib.Path):
    for _kind, name, text in blocks(page):
        if name:
            (folder / name).write_text(text)


def console_runs(page: str):
    runs = []
    for kind, _, text in blocks(page):
        if kind != "console":
            continue
        command, expected = None, []
        for line in text.splitlines() + ["$ "]:
            if line.startswith("$ "):
                if command:
                    runs.append((command, "\n".join(expected) + "\n" if expected else ""))
                command, expected = line[2:].strip(), []
            else:
                expected.append(line)
    return runs


@pytest.mark.parametrize("page", ["components.md", "running.md"])
@pytest.mark.timeout(120)
def test_console_examples_print_what_the_page_says(page, tmp_path):
    materialize(page, tmp_path)
    runs = console_runs(page)
    assert runs
    for command, expected in runs:
        words = shlex.split(command)
        assert words[0] == "fbp"
        result = subprocess.run(
            [FBP, *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.stdout == expected, f"{command}\n{result.stderr}"


@pytest.mark.parametrize("page", ["components.md", "running.md"])
def test_python_examples_run(page, tmp_path, monkeypatch):
    materialize(page, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = [text for kind, name, text in blocks(page) if kind == "python" and not name]
    assert code
    for number, text in enumerate(code):
        # Running the documented example is the point of this test.
        exec(compile(text, f"docs/{page} python block {number + 1}", "exec"), {})  # noqa: S102
    sys.modules.pop("scaling", None)


def test_first_library_is_listed(tmp_path):
    materialize("components.md", tmp_path)
    result = subprocess.run(
        [FBP, "components", "scaling", "--path", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in ("scaling/Scale", "scaling/Stats", "scaling/Frames", "FACTOR", "default 2.0"):
        assert name in result.stdout
