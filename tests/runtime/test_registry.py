"""Finding components: built-in libraries, user folders, `fbp components`."""

from __future__ import annotations

import json

import pytest

from fbp.errors import ComponentError
from fbp.registry import Registry

CORE = [
    "Batch",
    "Counter",
    "Drop",
    "Filter",
    "Kick",
    "Merge",
    "OrderedMerge",
    "Output",
    "Repeat",
    "Sequence",
    "Split",
    "Tee",
    "Throttle",
]

USER_LIBRARY = '''
from fbp.component import component, InPort, OutPort
from fbp.types import Int
from fbp_components.core import Repeat  # imported: stays core's, not listed here

@component(inports=[InPort("IN", Int, "numbers")], outports=[OutPort("OUT", Int, "plus one")])
def Increment(value):
    """Add one."""
    return value + 1
'''


def test_core_library_is_complete_and_documented():
    specs = Registry().library("core")
    assert sorted(specs) == CORE
    for spec in specs.values():
        assert spec.doc, spec.full_name
        assert spec.full_name.startswith("core/")
        for port in spec.inports + spec.outports:
            assert port.description, f"{spec.full_name}.{port.name}"


def test_user_folder_on_fbp_path(tmp_path, monkeypatch):
    (tmp_path / "mylib.py").write_text(USER_LIBRARY)
    monkeypatch.setenv("FBP_PATH", str(tmp_path))
    registry = Registry()
    assert "mylib" in registry.libraries()
    assert list(registry.library("mylib")) == ["Increment"]
    assert registry.get("mylib/Increment").doc == "Add one."


def test_unknown_names_suggest_the_closest(tmp_path):
    registry = Registry()
    with pytest.raises(ComponentError, match="Did you mean 'core/Sequence'"):
        registry.get("core/Sequense")
    with pytest.raises(ComponentError, match="did you mean 'core'"):
        registry.get("cor/Repeat")
    with pytest.raises(ComponentError, match="must be library/Name"):
        registry.get("Repeat")


def test_a_broken_user_file_names_itself(tmp_path):
    (tmp_path / "broken.py").write_text("def oops(:\n")
    with pytest.raises(
        ComponentError,
        match="(?s)'broken' .*broken.py.* failed to load: .*SyntaxError: invalid syntax",
    ):
        Registry([str(tmp_path)]).library("broken")


def test_fbp_components_lists_ports_types_defaults_and_docs(run_fbp, tmp_path):
    (tmp_path / "mylib.py").write_text(USER_LIBRARY)
    result = run_fbp("components", "--json", "--path", tmp_path)
    assert result.returncode == 0, result.stderr
    listed = {c["name"]: c for c in json.loads(result.stdout)}
    assert {f"core/{name}" for name in CORE} | {"mylib/Increment"} <= set(listed)
    sequence = listed["core/Sequence"]
    assert sequence["kind"] == "source"
    assert sequence["inports"][0] == {
        "name": "COUNT",
        "type": {"type": "Int"},
        "type_name": "Int",
        "description": "how many numbers to send; -1 sends forever",
        "config": True,
        "required": False,
        "default": -1,
        "array": False,
    }
    assert [p["name"] for p in sequence["outports"]] == ["OUT", "ERROR"]
    text = run_fbp("components", "core/Throttle").stdout
    assert "core/Throttle" in text and "RATE" in text and "default 10000.0" in text
    assert "Pass packets on at no more than RATE packets per second" in text


def test_entry_point_libraries_are_found(tmp_path, monkeypatch):
    (tmp_path / "vendor_components.py").write_text(USER_LIBRARY)
    dist = tmp_path / "vendor_fbp-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vendor-fbp\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fbp.components]\nvendor = vendor_components\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    assert registry.get("vendor/Increment").full_name == "vendor/Increment"
    monkeypatch.delitem(__import__("sys").modules, "vendor_components")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("style", ["from .helpers import twice", "from mylib.helpers import twice"])
def test_a_package_library_imports_its_own_modules(run_fbp, tmp_path, style):
    package = tmp_path / "mylib"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package library."""\nfrom .ops import Double\n')
    (package / "ops.py").write_text(
        "from fbp.component import InPort, OutPort, component\n"
        "from fbp.types import Int\n"
        f"{style}\n\n\n"
        '@component(inports=[InPort("IN", Int, "n")], outports=[OutPort("OUT", Int, "2n")])\n'
        "def Double(n):\n"
        '    """Double it."""\n'
        "    return twice(n)\n"
    )
    (package / "helpers.py").write_text("def twice(n):\n    return 2 * n\n")
    graph = tmp_path / "g.fbp"
    graph.write_text(
        "'3' -> COUNT Seq(core/Sequence) OUT -> IN D(mylib/Double) OUT -> IN Out(core/Output)\n"
    )
    result = run_fbp("run", graph, "--path", tmp_path, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "2", "4"]
