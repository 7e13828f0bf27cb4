"""The supervisor's public surface for observers: events, taps, snapshot(), stop()."""

from __future__ import annotations

import json
import threading

import pytest

from fbp.codec import decode
from fbp.errors import EndOfStream, RingEmpty
from fbp.graph import parse
from fbp.registry import Registry
from fbp.ring import RecordKind, Ring, new_segment_name
from fbp.runtime.plan import make_plan
from fbp.runtime.supervisor import EVENTS, EXIT_INTERRUPTED, Supervisor

FINITE = """
'50' -> COUNT Seq(core/Sequence) OUT -> IN Thr(core/Throttle) OUT -> IN Drop(core/Drop)
'1000' -> RATE Thr
"""
# Small rings: a graceful stop drains what is queued at the throttled rate.
ENDLESS = """
Seq(core/Sequence) OUT -> IN Thr(core/Throttle:capacity=4KiB) OUT -> IN Drop(core/Drop)
'500' -> RATE Thr
"""


def _supervisor(text: str) -> Supervisor:
    return Supervisor(make_plan(parse(text, file="observed.fbp"), Registry()))


@pytest.mark.timeout(60)
def test_events_arrive_in_order_with_their_documented_fields():
    supervisor = _supervisor(FINITE)
    seen: list[tuple[str, set]] = []
    supervisor.subscribe(lambda event, **fields: seen.append((event, set(fields))))

    assert supervisor.run() == 0

    events = [event for event, _ in seen]
    assert events[0] == "built"
    assert events[-1] == "finished"
    assert events.count("started") == 1
    # A short source may finish before the others are set up: "started" still comes once,
    # between "built" and "finished".
    assert events.count("exit") == 3
    for event, fields in seen:
        assert fields == set(EVENTS[event]), event
    assert supervisor.started.is_set()


@pytest.mark.timeout(60)
def test_a_failing_observer_is_reported_and_the_run_goes_on():
    supervisor = _supervisor(FINITE)
    messages: list[str] = []
    supervisor.log = messages.append

    def broken(event, **fields):
        raise ValueError("observer bug")

    supervisor.subscribe(broken)
    assert supervisor.run() == 0
    assert any("observer failed on 'built'" in m and "observer bug" in m for m in messages)


@pytest.mark.timeout(60)
def test_a_tap_added_at_build_receives_every_packet_of_the_connection():
    supervisor = _supervisor(FINITE)
    taps: list[Ring] = []

    def tap(event, **fields):
        if event == "built":
            name = new_segment_name("observer-tap")
            taps.append(Ring.create(1 << 20, name))
            supervisor.add_output("Seq", "OUT", None, name)

    supervisor.subscribe(tap)
    try:
        assert supervisor.run() == 0
        reader = Ring.attach(taps[0].name, "consumer")
        values = []
        try:
            while True:
                record = reader.recv(timeout=0)
                if record.kind == RecordKind.DATA:
                    values.append(decode(record, record.kind).value)
                record.release()
        except (EndOfStream, RingEmpty):
            pass
        reader.close()
    finally:
        for ring in taps:
            ring.close()
            ring.unlink()
    assert values == list(range(50))


@pytest.mark.timeout(60)
def test_outputs_cannot_be_added_once_processes_run():
    supervisor = _supervisor(FINITE)
    problems: list[Exception] = []

    def late(event, **fields):
        if event == "started":
            try:
                supervisor.add_output("Seq", "OUT", None, "nowhere")
            except RuntimeError as exc:
                problems.append(exc)

    supervisor.subscribe(late)
    assert supervisor.run() == 0
    assert problems and "outputs can only be added at build" in str(problems[0])


@pytest.mark.timeout(60)
def test_snapshot_is_json_and_counts_move_and_stop_ends_an_endless_network():
    supervisor = _supervisor(ENDLESS)
    snapshots: list[dict] = []

    def watch():
        try:
            supervisor.started.wait(20)
            for _ in range(50):
                snapshot = supervisor.snapshot()
                if snapshot["connections"]:
                    snapshots.append(json.loads(json.dumps(snapshot)))
                if len(snapshots) > 3 and snapshot["connections"][-1]["packets"] > 20:
                    break
                threading.Event().wait(0.2)
        finally:
            supervisor.stop()

    watcher = threading.Thread(target=watch)
    watcher.start()
    status = supervisor.run()
    watcher.join(5)

    assert status == EXIT_INTERRUPTED
    first, last = snapshots[0], snapshots[-1]
    assert first["graph"] == "observed.fbp"
    assert {p["name"] for p in last["processes"]} == {"Seq", "Thr", "Drop"}
    assert all(p["state"] == "running" and p["rss"] > 0 for p in last["processes"])
    seq_to_thr = [c for c in last["connections"] if c["src"] == "Seq.OUT"]
    assert seq_to_thr and seq_to_thr[0]["tgt"] == "Thr.IN"
    assert seq_to_thr[0]["connection"] == 0
    assert last["connections"][-1]["packets"] > first["connections"][-1]["packets"]
    assert supervisor.snapshot()["state"] == "finished"
