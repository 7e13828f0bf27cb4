"""`fbp parse`, `fbp check` and `fbp show` through the installed console script."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
GRAPHS = REPO / "graphs"
SX = GRAPHS / "sx_hitfinding.fbp"


@pytest.mark.npm
def test_parse_json_equals_reference_for_every_example_graph(run_fbp, reference):
    for path in sorted(GRAPHS.glob("*.fbp")):
        for flags, mode in (((), False), (("--case-sensitive",), True)):
            result = run_fbp("parse", path, "--json", *flags)
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout) == reference[(f"graphs/{path.stem}", mode)]["ok"]


def test_parse_json_keeps_reference_key_order_and_textual_connection_order(run_fbp):
    result = run_fbp("parse", GRAPHS / "count.fbp", "--json", check=True)
    data = json.loads(result.stdout)
    assert list(data) == [
        "inports",
        "outports",
        "groups",
        "processes",
        "connections",
        "properties",
        "caseSensitive",
    ]
    assert [c.get("src", {}).get("process") for c in data["connections"]] == [
        None,
        "Seq",
        "Rep",
        "Cnt",
    ]
    assert data["processes"]["Rep"] == {
        "component": "core/Repeat",
        "metadata": {"workers": "2"},
    }


def test_parse_summary_is_readable(run_fbp):
    out = run_fbp("parse", SX, check=True).stdout
    assert "graph sx_hitfinding (runtime python)" in out
    assert "Find     xray/PeakFinder  [workers=2]" in out
    assert "Sim OUT -> IN Dark" in out
    assert "'fbp-output/sx_hits.h5' -> PATH Images" in out


def test_parse_reads_json_graphs_and_stdin(run_fbp, tmp_path):
    as_json = run_fbp("parse", SX, "--json", check=True).stdout
    (tmp_path / "sx.json").write_text(as_json)
    again = run_fbp("parse", tmp_path / "sx.json", "--json", check=True).stdout
    assert json.loads(again) == json.loads(as_json)
    piped = run_fbp("parse", "-", "--json", input=SX.read_text(), check=True).stdout
    assert json.loads(piped) == json.loads(as_json)


def test_parse_syntax_error_exits_1_with_location(run_fbp, tmp_path):
    bad = tmp_path / "bad.fbp"
    bad.write_text("A(core/Repeat) OUT ->\nB(core/Drop)\n")
    result = run_fbp("parse", bad, "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{bad}:1:22: error: expected a target after '->'")
    assert lines[1] == "    A(core/Repeat) OUT ->"
    assert lines[2] == "    " + " " * 21 + "^"
    assert lines[3].startswith("  hint: ")


def test_check_passes_on_every_example_graph(run_fbp):
    paths = sorted(GRAPHS.glob("*.fbp"))
    result = run_fbp("check", *paths)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(paths) >= 6


def test_check_reports_every_problem_of_every_file(run_fbp, tmp_path):
    one = tmp_path / "one.fbp"
    one.write_text("B(core/Repeat)\nA(core/Repeat) -> B -> C(core/Drop)\n'x' -> IN Nope\n")
    two = tmp_path / "two.fbp"
    two.write_text("A(core/Repeat OUT -> IN B(core/Drop)\n")
    result = run_fbp("check", one, SX, two)
    assert result.returncode == 1
    err = result.stderr
    assert f"{one}:2:19: error: in the middle of a chain 'B' has no inport here" in err
    assert f"{one}:3:11: error: IIP target process 'Nope' is not defined" in err
    assert f"{two}:1:14: error: expected ')' or a component name, found a space" in err
    assert "3 problems in 2 of 3 file(s)" in err
    assert f"{SX}: ok" in result.stdout
    # every problem comes with its source line and a caret
    assert err.count("\n    ^") + err.count("^\n") >= 3


def test_show_dot_has_ports_on_edges_and_iips_as_notes(run_fbp, tmp_path):
    result = run_fbp("show", SX, "--format", "dot", check=True)
    dot = result.stdout
    assert dot.startswith('digraph "sx_hitfinding" {')
    assert '"Sim" -> "Dark" [taillabel="OUT", headlabel="IN"];' in dot
    assert '"Find" -> "Results" [taillabel="PEAKS", headlabel="PEAKS"];' in dot
    assert "shape=note" in dot and "label=\"'fbp-output/sx_hits.h5'\"" in dot
    assert '"Find" [label="Find\\nxray/PeakFinder\\nworkers=2"];' in dot
    out = tmp_path / "sx.dot"
    run_fbp("show", SX, "-o", out, check=True)
    assert out.read_text() == dot


def test_show_svg(run_fbp, tmp_path):
    out = tmp_path / "sx.svg"
    result = run_fbp("show", SX, "--format", "svg", "-o", out)
    if shutil.which("dot") is None:
        assert result.returncode == 1
        assert "needs the Graphviz `dot` program" in result.stderr
        assert "apt-get install graphviz" in result.stderr
        assert not out.exists()
    else:
        assert result.returncode == 0, result.stderr
        assert "<svg" in out.read_text()


def test_show_svg_without_graphviz_says_how_to_get_it(run_fbp, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "sx.svg"
    result = run_fbp("show", SX, "--format", "svg", "-o", out, env={"PATH": str(empty)})
    assert result.returncode == 1
    assert "needs the Graphviz `dot` program" in result.stderr
    assert "apt-get install graphviz" in result.stderr
    assert not out.exists()


def test_case_sensitive_ports_keep_their_case_in_summary_and_dot(run_fbp, tmp_path):
    path = tmp_path / "cs.fbp"
    path.write_text("# @runtime python\nA(core/Repeat) outPut -> inPut B(core/Drop)\n")
    summary = run_fbp("parse", path, "--case-sensitive", check=True).stdout
    assert "A outPut -> inPut B" in summary
    assert "A OUTPUT -> INPUT B" in run_fbp("parse", path, check=True).stdout
    dot = run_fbp("show", path, "--case-sensitive", check=True).stdout
    assert 'taillabel="outPut", headlabel="inPut"' in dot
