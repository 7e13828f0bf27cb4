"""Fixtures for the graph tests: the corpus, and the reference parser (npm fbp@1.8.0).

The reference runs in ONE node process for the whole session: every case of the corpus and
of graphs/ is parsed in both case modes up front, and tests look their result up.
"""

from __future__ import annotations

import json
import pathlib
import random
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


RANDOM_SEED = 2026
RANDOM_COUNT = 1500


def random_fbp_texts(seed: int = RANDOM_SEED, count: int = RANDOM_COUNT) -> list[str]:
    """Random, mostly-wrong .fbp texts built from the language's pieces (deterministic)."""
    rng = random.Random(seed)
    names = ["A", "B", "c", "_d", "Ee-1", "true", "IN", "OUT", "x"]
    ports = ["IN", "OUT", "in", "Out.x", "P_1", "DATA"]
    components = ["core/Repeat", "X", "a/b/C", "my-lib/Y", "", "3d"]
    metadata = ["", ":x=1", ":y=2,x=3", ":r", ":a=b", ":workers=4,node=gpu1", ":a=b=c", ":x=abc"]
    metadata += [":,", ":x=-1", ":n=a.b"]
    iips = ["'v'", "'it\\'s'", "''", "5", "-1.5", "[1,2]", '{"a": [true, null]}', '"s"']
    iips += ["'multi\nline'", '{\n"k": 1\n}', "null", "'open"]

    def node():
        roll, name = rng.random(), rng.choice(names)
        if roll < 0.4:
            return name
        if roll < 0.8:
            return f"{name}({rng.choice(components)}{rng.choice(metadata)})"
        if roll < 0.9:
            return f"{name}()"
        return f"({rng.choice(components)}{rng.choice(metadata)})"

    def port():
        name = rng.choice(ports)
        return name + (f"[{rng.randint(0, 12)}]" if rng.random() < 0.2 else "")

    def space():
        return rng.choice([" ", " ", " ", "", "  ", "\t"])

    def statement():
        roll = rng.random()
        if roll < 0.06:
            return f"INPORT={node()}.{port()}:{rng.choice(ports)}"
        if roll < 0.1:
            return f"OUTPORT={node()}.{port()}:{rng.choice(ports)}"
        if roll < 0.13:
            return f"DEFAULT_{rng.choice(['INPORT', 'OUTPORT'])}={rng.choice(ports)}"
        if roll < 0.18:
            return rng.choice(["# @name Foo", "  # @runtime py", "# comment", "#@x y", "# @k v"])
        parts = [
            rng.choice(
                [node(), f"{node()} {port()}", rng.choice(iips), f"{port()} {node()} {port()}"]
            )
        ]
        for _ in range(rng.randint(0, 3)):
            parts.append(
                rng.choice(
                    [f"{port()} {node()} {port()}", node(), f"{port()} {node()}", rng.choice(iips)]
                )
            )
        if rng.random() < 0.9:
            parts.append(rng.choice([f"{port()} {node()}", node()]))
        if rng.random() < 0.1:
            return " ".join(parts)
        arrow = space() + "->" + space()
        return arrow.join(parts)

    # Half the texts declare every name first, so more of them pass validation.
    declarations = "".join(f"{name}(lib/C{number})\n" for number, name in enumerate(names))
    texts = []
    for _ in range(count):
        pieces = [declarations] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 5)):
            pieces.append(statement())
            pieces.append(rng.choice(["\n", "\n", ", ", ",\n", " # c\n", "\r\n", "\n\n", " "]))
        texts.append("".join(pieces))
    return texts


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
        read=read,
        header=header,
        case_id=case_id,
        valid=valid_cases,
        invalid=invalid_cases,
        random_texts=random_fbp_texts,
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
    for number, text in enumerate(random_fbp_texts()):
        cases.append({"text": text, "caseSensitive": False})
        keys.append((f"random/{number}", False))
    result = subprocess.run(
        [node, str(HERE / "reference_parse.js"), str(where)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(zip(keys, json.loads(result.stdout), strict=False))
