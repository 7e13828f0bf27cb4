"""Packet previews for network:data and the graph store, without a server."""

from __future__ import annotations

import numpy
import pytest

from fbp.protocol.graphs import GraphStore
from fbp.protocol.messages import ProtocolError, preview


def test_small_arrays_are_sent_whole_and_large_ones_summarised():
    assert preview(numpy.arange(4, dtype="int16")) == [0, 1, 2, 3]
    frame = numpy.zeros((512, 512), "uint16")
    frame[3, 4] = 900
    summary = preview(frame)["array"]
    assert summary["shape"] == [512, 512] and summary["dtype"] == "uint16"
    assert summary["max"] == 900 and summary["min"] == 0


def test_values_become_json_safe():
    assert preview(float("nan")) == "nan"
    assert preview(b"\x00" * 10) == {"bytes": 10}
    assert preview({"a": numpy.float32(1.5)}) == {"a": 1.5}
    assert len(preview("x" * 10_000)) < 5000


def test_graph_store_builds_a_graph_the_runtime_can_plan():
    from fbp.registry import Registry
    from fbp.runtime.plan import make_plan

    store = GraphStore()
    store.handle("clear", {"id": "g", "name": "demo"})
    store.handle("addnode", {"id": "Seq", "component": "core/Sequence", "graph": "g"})
    store.handle(
        "addnode", {"id": "Sink", "component": "core/Drop", "graph": "g", "metadata": {"x": 10}}
    )
    store.handle(
        "addedge",
        {
            "src": {"node": "Seq", "port": "out"},
            "tgt": {"node": "Sink", "port": "in"},
            "graph": "g",
        },
    )
    store.handle(
        "addinitial", {"src": {"data": 3}, "tgt": {"node": "Seq", "port": "count"}, "graph": "g"}
    )
    store.handle("renamenode", {"from": "Sink", "to": "Bin", "graph": "g"})
    plan = make_plan(store.snapshot("g"), Registry())
    assert set(plan.processes) == {"Seq", "Bin"}
    assert plan.processes["Seq"].config == {"COUNT": 3}
    assert [(c.src.port, c.tgt.process, c.tgt.port) for c in plan.connections] == [
        ("OUT", "Bin", "IN")
    ]
    assert "Seq OUT -> IN Bin" in store.graphs["g"].to_fbp()


def test_removing_a_node_removes_its_edges_and_iips():
    store = GraphStore()
    store.handle("clear", {"id": "g"})
    store.handle("addnode", {"id": "A", "component": "core/Repeat", "graph": "g"})
    store.handle("addnode", {"id": "B", "component": "core/Drop", "graph": "g"})
    store.handle(
        "addedge",
        {"src": {"node": "A", "port": "out"}, "tgt": {"node": "B", "port": "in"}, "graph": "g"},
    )
    store.handle(
        "addinitial", {"src": {"data": "x"}, "tgt": {"node": "A", "port": "in"}, "graph": "g"}
    )
    replies = store.handle("removenode", {"id": "A", "graph": "g"})
    assert [r["command"] for r in replies] == ["removeedge", "removeinitial", "removenode"]
    assert store.graphs["g"].connections == []


def test_edits_are_refused_while_the_network_lives():
    store = GraphStore(is_live=lambda graph_id: True)
    store.graphs["g"] = __import__("fbp.graph", fromlist=["Graph"]).Graph()
    with pytest.raises(ProtocolError, match="running network.*network:stop"):
        store.handle("addnode", {"id": "A", "component": "core/Repeat", "graph": "g"})
