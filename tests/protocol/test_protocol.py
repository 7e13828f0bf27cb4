"""The FBP network protocol spoken by `fbp runtime`, through a real WebSocket client.

Every message the runtime sends in these tests is validated against the JSON schemas of
the npm package fbp-protocol@0.9.8 (the `Client` fixture checks each on arrival).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


def test_runtime_prints_one_line_and_binds_localhost(runtime):
    assert runtime.line.startswith("fbp runtime: listening on ws://127.0.0.1:")
    assert "noflo" in runtime.line


def test_getruntime_reports_capabilities(client):
    reply = client.request("runtime", "getruntime")
    payload = reply["payload"]
    assert reply["command"] == "runtime"
    assert payload["type"] == "fbp"
    for capability in ("protocol:graph", "protocol:component", "protocol:network"):
        assert capability in payload["capabilities"]


def test_component_list_describes_ports(client):
    client.send("component", "list")
    components = {}
    while True:
        message = client.receive()
        if message["command"] == "componentsready":
            break
        assert message["command"] == "component", message
        components[message["payload"]["name"]] = message["payload"]
    assert message["payload"] == len(components)
    repeat = components["core/Repeat"]
    assert [p["id"] for p in repeat["inPorts"]] == ["in"]
    assert [p["id"] for p in repeat["outPorts"]] == ["out", "error"]
    sequence = components["core/Sequence"]
    count = next(p for p in sequence["inPorts"] if p["id"] == "count")
    assert count["type"] == "int" and count["default"] == -1
    drop_outports = components["core/Drop"]["outPorts"]
    assert [(p["id"], p["type"]) for p in drop_outports] == [("error", "object")]


def test_graph_errors_are_clear(client):
    client.request("graph", "clear", {"id": "errors"})
    missing = client.request(
        "graph", "addnode", {"id": "A", "component": "core/Repeat", "graph": "nowhere"}
    )
    assert missing == {
        "protocol": "graph",
        "command": "error",
        "payload": {"message": "Requested graph not found"},
    }
    unnamed = client.request("graph", "addnode", {"id": "A", "component": "core/Repeat"})
    assert unnamed["payload"]["message"] == "No graph specified"
    client.request("graph", "addnode", {"id": "A", "component": "core/Repeat", "graph": "errors"})
    edge = client.request(
        "graph",
        "addedge",
        {
            "src": {"node": "A", "port": "out"},
            "tgt": {"node": "B", "port": "in"},
            "graph": "errors",
        },
    )
    assert edge["command"] == "error"
    assert "no node 'B'" in edge["payload"]["message"] and "A" in edge["payload"]["message"]
    group = client.request("graph", "addgroup", {"name": "g", "nodes": ["A"], "graph": "errors"})
    assert group["command"] == "error" and "not supported" in group["payload"]["message"]


def test_network_runs_on_processes_and_rings_and_shows_packets(client, graph_builder):
    graph_builder(
        client,
        "count",
        "Seq(core/Sequence) OUT -> IN Pass(core/Repeat)\n"
        "Pass OUT -> IN Sink(core/Drop)\n'5' -> COUNT Seq",
    )
    client.send("network", "start", {"graph": "count"})
    started = client.wait_for("network", "started")
    assert started["payload"]["started"] is True
    values = {"Seq() OUT -> IN Pass()": [], "Pass() OUT -> IN Sink()": []}
    disconnected = set()
    while len(disconnected) < 2:
        message = client.receive()
        payload = message["payload"]
        if message["protocol"] != "network":
            continue
        if message["command"] == "data" and "src" in payload:
            values[payload["id"]].append(payload["data"])
        elif message["command"] == "disconnect":
            disconnected.add(payload["id"])
        assert message["command"] != "error", message
    # Each value crossed a shared-memory ring between two OS processes to reach the tap.
    assert values == {
        "Seq() OUT -> IN Pass()": [0, 1, 2, 3, 4],
        "Pass() OUT -> IN Sink()": [0, 1, 2, 3, 4],
    }
    status = client.wait_for("network", "status")["payload"]
    assert status == {"graph": "count", "running": False, "started": True}
    stopped = client.request("network", "stop", {"graph": "count"})
    assert stopped["command"] == "stopped" and stopped["payload"]["started"] is False


def test_edits_to_a_running_network_are_refused_and_stop_is_graceful(client, graph_builder):
    # A small ring before the throttle keeps the backlog a graceful stop drains short.
    graph_builder(
        client,
        "live",
        "Seq(core/Sequence) OUT -> IN Slow(core/Throttle:capacity=4096)\n"
        "Slow OUT -> IN Sink(core/Drop)\n'200' -> RATE Slow",
    )
    client.send("network", "start", {"graph": "live"})
    client.wait_for("network", "data", where=lambda p: p.get("src", {}).get("node") == "Slow")
    refused = client.request(
        "graph", "addnode", {"id": "Extra", "component": "core/Drop", "graph": "live"}
    )
    assert refused["command"] == "error"
    assert "running network" in refused["payload"]["message"]
    assert "network:stop" in refused["payload"]["message"]
    status = client.request("network", "getstatus", {"graph": "live"})["payload"]
    assert status == {"graph": "live", "running": True, "started": True}
    again = client.request("network", "start", {"graph": "live"}, reply="started")
    assert again["command"] == "error" and "still running" in again["payload"]["message"]
    client.send("network", "stop", {"graph": "live"})
    stopped = client.wait_for("network", "stopped")["payload"]
    assert stopped["running"] is False and stopped["started"] is False
    assert stopped["uptime"] > 0
    accepted = client.request(
        "graph", "addnode", {"id": "Extra", "component": "core/Drop", "graph": "live"}
    )
    assert accepted["command"] == "addnode"


def test_a_graph_that_cannot_run_is_reported_and_nothing_starts(client, graph_builder):
    graph_builder(client, "broken", "A(core/Repeat) OUT -> IN B(core/NoSuchThing)")
    reply = client.request("network", "start", {"graph": "broken"}, reply="started")
    assert reply["command"] == "error"
    assert "NoSuchThing" in reply["payload"]["message"]
    status = client.request("network", "getstatus", {"graph": "broken"})["payload"]
    assert status == {"graph": "broken", "running": False, "started": False}


def test_selected_edges_limit_what_is_watched(client, graph_builder):
    graph_builder(
        client,
        "picked",
        "Seq(core/Sequence) OUT -> IN Pass(core/Repeat)\n"
        "Pass OUT -> IN Sink(core/Drop)\n'3' -> COUNT Seq",
    )
    selection = [{"src": {"node": "Pass", "port": "out"}, "tgt": {"node": "Sink", "port": "in"}}]
    reply = client.request("network", "edges", {"graph": "picked", "edges": selection})
    assert reply["payload"]["edges"] == selection
    client.send("network", "start", {"graph": "picked"})
    client.wait_for("network", "disconnect")
    client.wait_for("network", "status")
    ids = {
        m["payload"]["id"]
        for m in client.received
        if m["command"] == "data"
        and m["payload"].get("graph") == "picked"
        and "src" in m["payload"]
    }
    assert ids == {"Pass() OUT -> IN Sink()"}
    client.request("network", "stop", {"graph": "picked"})


def test_the_schema_check_can_fail(schemas):
    assert schemas.errors(
        {"protocol": "network", "command": "status", "payload": {"graph": "g"}}
    )  # `running` is required
    assert schemas.errors({"protocol": "network", "command": "invented", "payload": {}})
    assert not schemas.errors(
        {"protocol": "network", "command": "status", "payload": {"graph": "g", "running": False}}
    )


def test_a_secret_is_enforced(make_runtime, make_client):
    process = make_runtime("--secret", "s3cret")
    refused = make_client(process.url).request("runtime", "getruntime")
    assert refused["command"] == "error" and "secret" in refused["payload"]["message"]
    allowed = make_client(process.url, secret="s3cret").request("runtime", "getruntime")
    assert allowed["command"] == "runtime"


def test_a_second_stop_kills_a_network_that_drains_slowly(client, graph_builder):
    # 16 MiB of queued numbers at 5 per second would take hours to drain gracefully.
    graph_builder(
        client,
        "stuck",
        "Seq(core/Sequence) OUT -> IN Slow(core/Throttle)\n"
        "Slow OUT -> IN Sink(core/Drop)\n'5' -> RATE Slow",
    )
    client.send("network", "start", {"graph": "stuck"})
    client.wait_for("network", "data", where=lambda p: p.get("src", {}).get("node") == "Slow")
    client.send("network", "stop", {"graph": "stuck"})
    status = client.request("network", "getstatus", {"graph": "stuck"})["payload"]
    assert status == {"graph": "stuck", "running": True, "started": False}
    client.send("network", "stop", {"graph": "stuck"})
    stopped = client.wait_for("network", "stopped", timeout=20)["payload"]
    assert stopped["running"] is False and stopped["started"] is False


FRAGILE_LIBRARY = '''
from fbp.component import Component, InPort, OutPort, component
from fbp.types import Int


class Runs(Component):
    """Two runs of two numbers, each run in brackets."""

    outports = [OutPort("OUT", Int, "numbers")]

    def generate(self):
        for run in ("run1", "run2"):
            self.out.OUT.open_bracket(run)
            yield 0
            yield 1
            self.out.OUT.close_bracket(run)


@component(inports=[InPort("IN", Int, "numbers")], outports=[OutPort("OUT", Int, "the same")])
def Fragile(value):
    """Pass numbers on, except 2."""
    if value == 2:
        raise ValueError("two is not allowed")
    return value
'''


def test_prints_and_failed_packets_reach_the_client(
    make_runtime, make_client, graph_builder, tmp_path
):
    (tmp_path / "mine.py").write_text(FRAGILE_LIBRARY)
    process = make_runtime("--path", str(tmp_path))
    client = make_client(process.url)
    graph_builder(
        client,
        "fragile",
        "Seq(core/Sequence) OUT -> IN Frag(mine/Fragile) OUT -> IN Show(core/Output)\n"
        "'4' -> COUNT Seq",
    )
    client.send("network", "start", {"graph": "fragile"})
    problem = client.wait_for("network", "processerror")["payload"]
    assert problem["id"] == "Frag" and "two is not allowed" in problem["error"]
    assert "seq=2" in problem["error"]
    failed = client.wait_for("network", "error")["payload"]
    assert "1 packet(s) failed" in failed["message"]
    printed = [m["payload"]["message"] for m in client.received if m["command"] == "output"]
    assert printed == ["0", "1", "3"]


def test_data_events_are_sampled_at_the_rate_asked(make_runtime, make_client, graph_builder):
    process = make_runtime("--rate", "5")
    client = make_client(process.url)
    graph_builder(
        client, "fast", "Seq(core/Sequence) OUT -> IN Sink(core/Drop)\n'2000' -> COUNT Seq"
    )
    client.send("network", "start", {"graph": "fast"})
    client.wait_for("network", "disconnect")
    values = [
        m["payload"]["data"]
        for m in client.received
        if m["command"] == "data" and "src" in m["payload"]
    ]
    # 2000 packets pass; at 5 per second per connection only a handful are reported,
    # the first ones of each one-second window, in order.
    assert 1 <= len(values) <= 5 * 10
    assert values[:5] == list(range(len(values[:5])))
    assert values == sorted(values)


def test_brackets_are_shown_as_groups(make_runtime, make_client, graph_builder, tmp_path):
    (tmp_path / "mine.py").write_text(FRAGILE_LIBRARY)
    process = make_runtime("--path", str(tmp_path))
    client = make_client(process.url)
    graph_builder(client, "runs", "Src(mine/Runs) OUT -> IN Sink(core/Drop)")
    client.send("network", "start", {"graph": "runs"})
    client.wait_for("network", "disconnect")
    events = [
        (m["command"], m["payload"].get("group", m["payload"].get("data")))
        for m in client.received
        if m["command"] in ("begingroup", "data", "endgroup")
    ]
    assert events == [
        ("begingroup", "run1"),
        ("data", 0),
        ("data", 1),
        ("endgroup", "run1"),
        ("begingroup", "run2"),
        ("data", 0),
        ("data", 1),
        ("endgroup", "run2"),
    ]


def test_a_taken_port_is_a_clear_error(runtime, run_fbp):
    result = run_fbp("runtime", "--port", runtime.port, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{runtime.port}" in result.stderr
    assert result.stdout == ""


def test_graph_changes_reach_every_client(runtime, make_client):
    editor, watcher = make_client(runtime.url), make_client(runtime.url)
    editor.request("graph", "clear", {"id": "shared"})
    watcher.wait_for("graph", "clear", where=lambda p: p["id"] == "shared")
    editor.request("graph", "addnode", {"id": "N", "component": "core/Drop", "graph": "shared"})
    seen = watcher.wait_for("graph", "addnode", where=lambda p: p["graph"] == "shared")
    assert seen["payload"] == {
        "id": "N",
        "component": "core/Drop",
        "metadata": {},
        "graph": "shared",
    }


def test_packets_go_through_exported_ports(client):
    client.request("graph", "clear", {"id": "exported", "main": True})
    client.request(
        "graph", "addnode", {"id": "Pass", "component": "core/Repeat", "graph": "exported"}
    )
    client.send(
        "graph", "addinport", {"public": "in", "node": "Pass", "port": "in", "graph": "exported"}
    )
    ports = client.wait_for("runtime", "ports")["payload"]
    assert ports["inPorts"] == [
        {
            "id": "in",
            "type": "all",
            "required": False,
            "addressable": False,
            "description": "packets to pass on",
        }
    ]
    client.request(
        "graph", "addoutport", {"public": "out", "node": "Pass", "port": "out", "graph": "exported"}
    )
    client.send("network", "start", {"graph": "exported"})
    client.wait_for("network", "started")
    for event, payload in (
        ("connect", None),
        ("data", "hello"),
        ("data", [1, 2]),
        ("disconnect", None),
    ):
        packet = {"port": "in", "event": event, "graph": "exported"}
        if payload is not None:
            packet["payload"] = payload
        sent = client.request("runtime", "packet", packet, reply="packetsent")
        assert sent["command"] == "packetsent", sent

    def outputs():
        return [
            m["payload"]
            for m in client.received
            if m["command"] == "packet" and m["payload"]["event"] == "data"
        ]

    while len(outputs()) < 2:
        client.receive()
    assert [(p["port"], p["payload"]) for p in outputs()] == [("out", "hello"), ("out", [1, 2])]
    missing = client.request(
        "runtime",
        "packet",
        {"port": "nope", "event": "data", "payload": 1, "graph": "exported"},
        reply="packetsent",
    )
    assert missing["command"] == "error" and "exported inports: in" in missing["payload"]["message"]
    # The exported inport stays open until the stop closes it; then the network drains.
    stopped = client.request("network", "stop", {"graph": "exported"})
    assert stopped["command"] == "stopped"
