"""The Graph model: round trips through JSON and .fbp, files, networkx view, validation hook."""

from __future__ import annotations

import json

import networkx
import pytest

import fbp.graph
from fbp.errors import GraphError
from fbp.graph import Connection, Graph, PortRef, Process


def test_roundtrip_fbp_json_fbp_json_is_identical(valid_path, corpus):
    text = corpus.read(valid_path)
    if corpus.header(text, "roundtrip") == "no":
        pytest.skip("anonymous processes named with '/' cannot be written back (documented)")
    for case_sensitive in (False, True):
        first = fbp.graph.parse(text, case_sensitive=case_sensitive).to_json()
        from_json = fbp.graph.graph_from_json(json.loads(json.dumps(first)))
        written = from_json.to_fbp()
        second = fbp.graph.parse(written, case_sensitive=case_sensitive).to_json()
        assert second == first, written
        assert fbp.graph.validate(fbp.graph.parse(written, case_sensitive=case_sensitive)) == []


def test_anonymous_process_with_two_slashes_cannot_be_written():
    graph = fbp.graph.parse("(a/b/C) -> IN (a/b/C)")
    assert list(graph.processes) == ["_a_b/C_1", "_a_b/C_2"]
    with pytest.raises(GraphError, match="process name '_a_b/C_1' cannot be written"):
        graph.to_fbp()


def test_load_and_save_both_formats(tmp_path):
    source = tmp_path / "net.fbp"
    source.write_text("# @name net\n'5' -> COUNT Seq(core/Sequence) OUT -> IN Out(core/Output)\n")
    graph = fbp.graph.load(source)
    assert graph.file == str(source)
    assert graph.processes["Seq"].location.line == 2
    fbp.graph.save(graph, tmp_path / "net.json")
    fbp.graph.save(graph, tmp_path / "copy.fbp")
    from_json = fbp.graph.load(tmp_path / "net.json")
    from_copy = fbp.graph.load(tmp_path / "copy.fbp")
    assert from_json.to_json() == graph.to_json() == from_copy.to_json()
    assert json.loads((tmp_path / "net.json").read_text()) == graph.to_json()


def test_loading_a_missing_file_is_a_graph_error(tmp_path):
    with pytest.raises(GraphError, match="cannot read graph file"):
        fbp.graph.load(tmp_path / "missing.fbp")


def test_bad_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "processes": {,\n}\n')
    with pytest.raises(GraphError) as info:
        fbp.graph.load(path)
    assert (info.value.line, info.value.col) == (2, 17)


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "must be an object"),
        ({"processes": []}, "'processes' must be an object"),
        ({"processes": {"A": {"component": 3}}}, "'component' must be a string"),
        ({"connections": [{"src": {"process": "A"}}]}, "'tgt'"),
        ({"connections": [{"tgt": {"process": "A", "port": "in", "index": -1}}]}, "index"),
        ({"connections": [{"tgt": {"process": "A", "port": "in"}}]}, "neither 'src' nor 'data'"),
        ({"inports": {"x": {"process": "A"}}}, "string 'process' and 'port'"),
    ],
)
def test_json_with_the_wrong_shape_is_rejected(data, message):
    with pytest.raises(GraphError, match=message):
        fbp.graph.graph_from_json(data)


def test_json_iip_of_null_and_edge_metadata_survive():
    data = {
        "processes": {"A": {"component": "core/Repeat"}, "B": {"component": "core/Drop"}},
        "connections": [
            {"data": None, "tgt": {"process": "A", "port": "in"}},
            {
                "src": {"process": "A", "port": "out"},
                "tgt": {"process": "B", "port": "in", "index": 2},
                "metadata": {"route": 3},
            },
        ],
    }
    graph = fbp.graph.graph_from_json(data)
    assert graph.connections[0].is_iip and graph.connections[0].data is None
    out = graph.to_json()
    assert out["connections"][1]["metadata"] == {"route": 3}
    assert out["connections"][1]["tgt"] == {"process": "B", "port": "in", "index": 2}
    with pytest.raises(GraphError, match="reads `null ->` as a process name"):
        graph.to_fbp()


def test_networkx_view():
    graph = fbp.graph.parse(
        "'5' -> COUNT Seq(core/Sequence) OUT -> IN Rep(core/Repeat:workers=2)\n"
        "Rep OUT -> IN[0] M(core/Merge)\nSeq OUT -> IN[1] M\n"
    )
    view = graph.nx
    assert isinstance(view, networkx.MultiDiGraph)
    assert set(view.nodes) == {"Seq", "Rep", "M"}
    assert view.nodes["Rep"]["metadata"] == {"workers": "2"}
    assert view.nodes["Seq"]["iips"] == [(PortRef("Seq", "count"), "5")]
    assert view.number_of_edges("Seq", "M") == 1
    assert view.number_of_edges() == 3
    assert list(networkx.topological_sort(view)) == ["Seq", "Rep", "M"]


def test_locations_point_at_processes_and_connections():
    graph = fbp.graph.parse("\n  A(core/Repeat) OUT -> IN B(core/Drop)\n", file="x.fbp")
    a, b = graph.processes["A"], graph.processes["B"]
    assert (a.location.file, a.location.line, a.location.col) == ("x.fbp", 2, 3)
    assert (b.location.line, b.location.col) == (2, 28)
    connection = graph.connections[0]
    assert (connection.location.line, connection.location.col) == (2, 3)
    assert connection.target_location.col == 28
    assert a.location.source_line == "  A(core/Repeat) OUT -> IN B(core/Drop)"


def test_graph_error_renders_location_caret_and_hint():
    graph = fbp.graph.parse("A(core/Repeat)\n", file="g.fbp")
    error = graph.error("bad workers value 'x'", graph.processes["A"].location, hint="use N")
    assert error.format().splitlines() == [
        "g.fbp:1:1: error: bad workers value 'x'",
        "    A(core/Repeat)",
        "    ^",
        "  hint: use N",
    ]


def test_validate_runs_extra_checks_and_sorts_by_position():
    graph = fbp.graph.parse("A(core/Repeat)\nB(core/Drop)\nA OUT -> IN B\n")

    def no_drops(g: Graph):
        for process in g.processes.values():
            if process.component == "core/Drop":
                yield g.error("core/Drop is not allowed here", process.location)

    def first_line(g: Graph):
        yield g.error("first line problem", g.processes["A"].location)

    problems = fbp.graph.validate(graph, extra_checks=[no_drops, first_line])
    assert [(p.line, p.message) for p in problems] == [
        (1, "first line problem"),
        (2, "core/Drop is not allowed here"),
    ]
    assert fbp.graph.validate(graph, checks=()) == []


def test_validate_reports_every_problem_not_just_the_first():
    graph = fbp.graph.parse("A OUT -> IN B(core/Drop)\n'x' -> IN C\nD()\n")
    messages = [p.message for p in fbp.graph.validate(graph)]
    assert messages == [
        "source process 'A' is not defined",
        "IIP target process 'C' is not defined",
        "process 'D' has no component",
    ]


def test_hand_built_graph_serialises():
    graph = Graph(case_sensitive=True)
    graph.processes["Src"] = Process("Src", "core/Sequence", {"x": -1.5, "y": 20}, None)
    graph.processes["Out"] = Process("Out", "core/Output", {}, None)
    graph.connections.append(Connection(PortRef("Src", "Out"), PortRef("Out", "In", 3)))
    graph.connections.append(Connection(None, PortRef("Src", "Count"), {"n": [1, "it's"]}))
    text = graph.to_fbp()
    again = fbp.graph.parse(text, case_sensitive=True)
    assert again.to_json() == graph.to_json()
    assert "Src(core/Sequence:x=-1.5,y=20)" in text


def test_public_names_of_fbp_graph():
    assert sorted(fbp.graph.__all__) == sorted(
        [
            "Check", "Connection", "Export", "Graph", "Location", "PortRef", "Process",
            "STRUCTURAL_CHECKS", "graph_from_json", "load", "parse", "save", "validate",
        ]
    )  # fmt: skip
    for name in fbp.graph.__all__:
        assert getattr(fbp.graph, name) is not None


def test_name_and_runtime_properties():
    graph = fbp.graph.parse("# @runtime python\n# @name demo\nA(core/Repeat)\n")
    assert (graph.name, graph.runtime) == ("demo", "python")
    assert (fbp.graph.parse("").name, fbp.graph.parse("").runtime) == (None, None)
