"""The examples in docs/language.md work as the page says."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil

import pytest

import fbp.graph
from fbp.errors import GraphError

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
PAGE = (REPO / "docs" / "language.md").read_text()


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{re.escape(kind)}\n(.*?)^```", PAGE, flags=re.MULTILINE | re.DOTALL)


def test_page_has_examples():
    assert len(blocks("fbp")) >= 8
    assert len(blocks("fbp-invalid")) >= 1


@pytest.mark.parametrize("number", range(len(blocks("fbp"))))
def test_fbp_examples_are_valid(number):
    graph = fbp.graph.parse(blocks("fbp")[number], file=f"docs example {number + 1}")
    assert fbp.graph.validate(graph) == []


def test_invalid_examples_are_rejected():
    for text in blocks("fbp-invalid"):
        try:
            problems = fbp.graph.validate(fbp.graph.parse(text))
        except GraphError:
            continue
        assert problems


@pytest.fixture
def in_repo_copy(tmp_path):
    (tmp_path / "graphs").symlink_to(REPO / "graphs")
    old = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)


def test_python_example_runs(in_repo_copy):
    (code,) = blocks("python")
    namespace: dict = {}
    # Running the documented example is the point of this test.
    exec(compile(code, "docs/language.md", "exec"), namespace)  # noqa: S102
    graph = namespace["graph"]
    assert graph.processes["Find"].metadata == {"workers": "2"}
    assert fbp.graph.load(in_repo_copy / "copy.json").to_json() == graph.to_json()


def test_shell_examples_run(in_repo_copy, run_fbp):
    (script,) = [b for b in blocks("sh") if "fbp check" in b]
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "fbp"
        result = run_fbp(*words[1:], cwd=in_repo_copy)
        if "svg" in words and shutil.which("dot") is None:
            assert result.returncode == 1 and "graphviz" in result.stderr
            continue
        assert result.returncode == 0, result.stderr
    assert (in_repo_copy / "count.svg").exists() or shutil.which("dot") is None
