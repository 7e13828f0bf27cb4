"""Fixtures for the graph tests: the corpus, and the reference parser (npm fbp@1.8.0).

The reference runs in ONE node process for the whole session: every case of the corpus and
of graphs/ is parsed in both case modes up front, and tests look their result up.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPUS = HERE / "corpus"
GRAPHS = REPO / "graphs"
REFERENCE_VERSION = "fbp@1.8.0"


def read(path: pathlib.Path) -> str:
    """File text exactly as written (no newline translation: CRLF cases must stay CRLF)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def valid_cases() -> list[pathlib.Path]:
    return sorted((CORPUS / "valid").glob("*.fbp")) + sorted(GRAPHS.glob("*.fbp"))


def invalid_cases() -> list[pathlib.Path]:
    return sorted((CORPUS / "invalid").glob("*.fbp"))


def header(text: str, key: str) -> str | None:
    """Value of a `# key: value` line at the top of a corpus file."""
    match = re.search(rf"^# {re.escape(key)}: ?(.*)$", text, flags=re.MULTILINE)
    return match.group(1) if match else None


def case_id(path: pathlib.Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def pytest_generate_tests(metafunc):
    """Parametrize `valid_path` / `invalid_path` over the corpus and graphs/."""
    if "valid_path" in metafunc.fixturenames:
        metafunc.parametrize("valid_path", valid_cases(), ids=case_id)
    if "invalid_path" in metafunc.fixturenames:
        metafunc.parametrize("invalid_path", invalid_cases(), ids=case_id)


@pytest.fixture(scope="session")
def corpus():
    """Helpers to read corpus cases (importlib mode cannot import conftest from tests)."""
    import types

    return types.SimpleNamespace(
        read=read, header=header, case_id=case_id, valid=valid_cases, invalid=invalid_cases
    )


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """Results of the reference parser: {(case_id, case_sensitive): result}.

    A result is {"ok": graph_json} or {"error": message, "line": n, "column": n}.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the reference parser (npm fbp@1.8.0)")
    where = tmp_path_factory.mktemp("reference")
    install = subprocess.run(
        [npm, "install", "--prefix", str(where), "--no-audit", "--no-fund", REFERENCE_VERSION],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, f"npm install {REFERENCE_VERSION} failed:\n{install.stderr}"
    paths = valid_cases() + invalid_cases()
    cases = [
        {"text": read(path), "caseSensitive": mode} for mode in (False, True) for path in paths
    ]
    keys = [(case_id(path), mode) for mode in (False, True) for path in paths]
    result = subprocess.run(
        [node, str(HERE / "reference_parse.js"), str(where)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(zip(keys, json.loads(result.stdout)))
