"""Fixtures of the runtime tests."""

from __future__ import annotations

import pathlib

import pytest


@pytest.fixture
def graph_file(tmp_path):
    """Write .fbp text to a file; returns its path."""

    def write(text: str, name: str = "test.fbp") -> pathlib.Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
