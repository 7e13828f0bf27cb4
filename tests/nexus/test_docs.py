"""The examples in docs/nexus.md run as written; its graph snippets parse."""

from __future__ import annotations

import pathlib
import re

import pytest

from fbp.graph import parse

REPO = pathlib.Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGE = "nexus.md"


def blocks(kind):
    return [text for k, text in BLOCK.findall((REPO / "docs" / PAGE).read_text()) if k == kind]


@pytest.mark.parametrize("number", range(len(blocks("python"))))
def test_python_examples_run(number, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(blocks("python")[number], f"{PAGE} python block {number}", "exec")
    exec(code, {})  # noqa: S102 - the page's own example


def test_graph_snippets_parse():
    snippets = blocks("fbp")
    assert snippets
    for text in snippets:
        assert parse(text, file=PAGE).processes
