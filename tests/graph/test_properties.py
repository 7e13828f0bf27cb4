"""Property tests: random graphs survive .fbp and back; random text fails only with GraphError."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fbp.graph
from fbp.errors import GraphError
from fbp.graph import Connection, Export, Graph, PortRef, Process

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True)
components = st.from_regex(r"[A-Za-z0-9_\-/]{1,14}", fullmatch=True)
port_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,6}", fullmatch=True)
metadata_keys = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda k: k not in ("x", "y")
)
metadata_values = st.from_regex(r"[A-Za-z0-9_/\-.]{0,10}", fullmatch=True)
coordinates = st.one_of(
    st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32)
)
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | plain_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_text, inner, max_size=3),
    max_leaves=8,
)
annotation_values = st.from_regex(r"[^\s][^\n\r\u2028\u2029]{0,20}", fullmatch=True).filter(
    lambda v: v.strip() != ""
)


@st.composite
def graphs(draw):
    case_sensitive = draw(st.booleans())

    def port(name):
        return name if case_sensitive else name.lower()

    graph = Graph(case_sensitive=case_sensitive)
    for name in draw(st.lists(names, min_size=1, max_size=6, unique=True)):
        metadata = draw(st.dictionaries(metadata_keys, metadata_values, max_size=3))
        if draw(st.booleans()):
            metadata["x"] = draw(coordinates)
            metadata["y"] = draw(coordinates)
        graph.processes[name] = Process(name, draw(components), metadata, None)
    process_names = list(graph.processes)
    refs = st.builds(
        PortRef,
        st.sampled_from(process_names),
        port_names.map(port),
        st.none() | st.integers(0, 40),
    )
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            value = draw(json_values.filter(lambda v: v is not None and not isinstance(v, bool)))
            graph.connections.append(Connection(None, draw(refs), value))
        else:
            graph.connections.append(Connection(draw(refs), draw(refs)))
    for exports in (graph.inports, graph.outports):
        for public in draw(st.lists(port_names.map(port), max_size=2, unique=True)):
            target = draw(st.sampled_from(process_names))
            exports[public] = Export(public, target, port(draw(port_names)))
    if draw(st.booleans()):
        graph.properties["environment"] = {"type": draw(names)}
    for key in draw(st.lists(st.sampled_from(["name", "description", "author"]), unique=True)):
        graph.properties[key] = draw(annotation_values)
    return graph


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graphs_survive_fbp_and_back(graph):
    text = graph.to_fbp()
    again = fbp.graph.parse(text, case_sensitive=graph.case_sensitive)
    assert again.to_json() == graph.to_json(), text
    assert fbp.graph.validate(again) == [], text


fbp_alphabet = st.sampled_from(
    list("AB xy_-()[]:=,.'\"{}->#@\n\r\t\\/019") + ["->", "IN", "OUT", "INPORT=", "# @name "]
)
fbp_like_text = st.lists(fbp_alphabet, max_size=40).map("".join)


def _parse_anything(text: str) -> None:
    try:
        graph = fbp.graph.parse(text)
    except GraphError as exc:
        assert exc.line is not None and exc.col is not None, exc.format()
        assert exc.source_line is not None
        return
    json.dumps(graph.to_json())
    for problem in fbp.graph.validate(graph):
        assert isinstance(problem, GraphError)
    try:
        graph.to_fbp()
    except GraphError:
        pass


@settings(max_examples=1500, deadline=None)
@given(fbp_like_text)
def test_fbp_like_text_raises_only_graph_error(text):
    _parse_anything(text)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_raises_only_graph_error(text):
    _parse_anything(text)
