"""The examples in docs/ring.md run as written."""

from __future__ import annotations

import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "ring.md"


def test_python_examples_in_ring_doc_run(capsys):
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert blocks, "docs/ring.md should contain at least one python example"
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - our own documentation
    assert "done 5 records" in capsys.readouterr().out
