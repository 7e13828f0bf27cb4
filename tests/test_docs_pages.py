"""Pages of docs/ (xray, nexus, detector, dashboard): examples run, graph snippets parse.

Each plain ```python block runs in a fresh folder; each ```fbp block must parse.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from fbp.graph import parse

REPO = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = ("xray.md", "nexus.md", "detector.md", "dashboard.md")


def blocks(page: str, kind: str) -> list[str]:
    text = (REPO / "docs" / page).read_text()
    return [body for k, body in BLOCK.findall(text) if k == kind]


@pytest.mark.parametrize(
    ("page", "number"),
    [(page, number) for page in PAGES for number in range(len(blocks(page, "python")))],
)
def test_python_examples_run(page, number, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(blocks(page, "python")[number], f"{page} python block {number}", "exec")
    exec(code, {})  # noqa: S102 - the page's own example


@pytest.mark.parametrize("page", [page for page in PAGES if blocks(page, "fbp")])
def test_graph_snippets_parse(page):
    snippets = blocks(page, "fbp")
    assert snippets
    for text in snippets:
        assert parse(text, file=page).processes
