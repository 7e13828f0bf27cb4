"""`fbp run` end to end: real processes, real rings, real signals."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from fbp.ring import list_segments

pytestmark = pytest.mark.timeout(60)

FBP = str(os.path.join(os.path.dirname(sys.executable), "fbp"))
LIB = pathlib.Path(__file__).with_name("lib")
GRAPHS = pathlib.Path(__file__).resolve().parents[2] / "graphs"


def recorded(prefix: pathlib.Path) -> list[dict]:
    """Rows written by every probe/Record process whose PATH was `prefix`."""
    rows = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines())
    return rows


def test_count_graph_prints_exactly_100000(run_fbp):
    result = run_fbp("run", GRAPHS / "count.fbp")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "100000\n"
    assert "Rep#1" in result.stderr  # the summary lists both workers


def test_set_replaces_an_iip_and_quiet_prints_only_component_output(run_fbp):
    result = run_fbp("run", GRAPHS / "count.fbp", "--set", "Seq.COUNT=10", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "10\n"
    assert result.stderr == ""


def test_fan_in_serves_every_connection_fairly(run_fbp, graph_file, tmp_path):
    out = tmp_path / "rows"
    # T reads slower than A and B write, through small rings: both producers wait, so the
    # order T serves them in shows its fairness.
    graph = graph_file(f"""
'4000' -> COUNT A(core/Sequence) OUT -> IN KA(core/Kick)
'4000' -> COUNT B(core/Sequence) OUT -> IN KB(core/Kick)
'a' -> DATA KA
'b' -> DATA KB
KA OUT -> IN T(core/Throttle:capacity=8K) OUT -> IN R(probe/Record)
KB OUT -> IN T
'8000' -> RATE T
'{out}' -> PATH R
""")
    result = run_fbp("run", graph, "--path", LIB, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = recorded(out)
    values = [r["value"] for r in rows]
    assert sorted(r["seq"] for r in rows if r["value"] == "a") == list(range(4000))
    assert [r["seq"] for r in rows if r["value"] == "b"] == list(range(4000))  # in order
    # While both are sending (from the later first packet to the earlier last one), each
    # gets about half of the turns.
    both_start = max(values.index("a"), values.index("b"))
    both_end = min(len(values) - values[::-1].index(v) for v in "ab")
    window = values[both_start:both_end]
    assert len(window) > 1000, (both_start, both_end)
    assert 0.35 < window.count("a") / len(window) < 0.65


def test_fan_out_delivers_every_packet_to_each_target(run_fbp, graph_file, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    graph = graph_file(f"""
'200' -> COUNT S(core/Sequence)
S OUT -> IN R1(core/Repeat) OUT -> IN W1(probe/Record)
S OUT -> IN R2(core/Repeat) OUT -> IN W2(probe/Record)
'{one}' -> PATH W1
'{two}' -> PATH W2
""")
    result = run_fbp("run", graph, "--path", LIB, "--quiet")
    assert result.returncode == 0, result.stderr
    # log records reach fbp run's stderr prefixed with the process name
    assert "W1: INFO: recorded 200 packets" in result.stderr
    assert "W2: INFO: recorded 200 packets" in result.stderr
    for prefix in (one, two):
        rows = recorded(prefix)
        assert [r["seq"] for r in rows] == list(range(200))
        assert [r["value"] for r in rows] == list(range(200))


def test_array_ports_route_by_index(run_fbp, graph_file, tmp_path):
    out = tmp_path / "rows"
    graph = graph_file(f"""
'9' -> COUNT S(core/Sequence) OUT -> IN Sp(core/Split)
Sp OUT[0] -> IN[0] R(probe/Record)
Sp OUT[1] -> IN[1] R
Sp OUT[2] -> IN[2] R
'{out}' -> PATH R
""")
    result = run_fbp("run", graph, "--path", LIB, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = recorded(out)
    by_index = {i: [r["seq"] for r in rows if r["index"] == i] for i in range(3)}
    assert by_index == {0: [0, 3, 6], 1: [1, 4, 7], 2: [2, 5, 8]}


def test_workers_spread_packets_and_ordered_merge_restores_seq(run_fbp, graph_file, tmp_path):
    merged, direct = tmp_path / "merged", tmp_path / "direct"
    graph = graph_file(f"""
'3000' -> COUNT S(core/Sequence)
S OUT -> IN W(core/Repeat:workers=3) OUT -> IN M(core/OrderedMerge) OUT -> IN R(probe/Record)
W OUT -> IN D(probe/Record)
'{merged}' -> PATH R
'{direct}' -> PATH D
""")
    result = run_fbp("run", graph, "--path", LIB)
    assert result.returncode == 0, result.stderr
    assert [r["seq"] for r in recorded(merged)] == list(range(3000))
    assert sorted(r["seq"] for r in recorded(direct)) == list(range(3000))
    for worker in ("W#0", "W#1", "W#2"):
        assert worker in result.stderr


def test_arrays_written_in_the_ring_slot_arrive_with_metadata(run_fbp, graph_file, tmp_path):
    out = tmp_path / "rows"
    graph = graph_file(f"""
'4' -> COUNT F(probe/Frames) OUT -> IN R(core/Repeat) OUT -> IN W(probe/Record)
'{out}' -> PATH W
""")
    result = run_fbp("run", graph, "--path", LIB, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = recorded(out)
    assert [r["seq"] for r in rows] == [0, 1, 2, 3]
    assert [r["value"]["sum"] for r in rows] == [64 * 64 * s for s in range(4)]
    assert rows[0]["value"]["dtype"] == "uint16" and rows[0]["value"]["shape"] == [64, 64]
    assert rows[3]["meta"] == {"run": 1}


def test_brackets_travel_through_rings_and_stream_iips_reach_one_worker(
    run_fbp, graph_file, tmp_path
):
    out = tmp_path / "rows"
    graph = graph_file(
        f"""
R(probe/Runs) OUT -> IN P(core/Repeat) OUT -> IN W(probe/Record)
'{out}' -> PATH W
'hello' -> IN O(core/Output:workers=2)
"""
    )
    result = run_fbp("run", graph, "--path", LIB, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    rows = [(r.get("bracket", 0), r["value"]) for r in recorded(out)]
    assert rows == [
        (1, "run-1"), (0, "run-1/0"), (0, "run-1/1"), (2, "run-1"),
        (1, "run-2"), (0, "run-2/0"), (0, "run-2/1"), (2, "run-2"),
    ]  # fmt: skip


def test_exceptions_are_reported_sent_to_error_and_the_component_goes_on(
    run_fbp, graph_file, tmp_path
):
    good, bad = tmp_path / "good", tmp_path / "bad"
    graph = graph_file(f"""
'10' -> COUNT S(core/Sequence) OUT -> IN F(probe/FailEvery)
F OUT -> IN G(probe/Record)
F ERROR -> IN B(probe/Record)
'{good}' -> PATH G
'{bad}' -> PATH B
""")
    result = run_fbp("run", graph, "--path", LIB)
    assert result.returncode == 1
    assert [r["value"] for r in recorded(good)] == [1, 2, 4, 5, 7, 8]
    errors = recorded(bad)
    assert [r["seq"] for r in errors] == [0, 3, 6, 9]
    assert errors[1]["value"]["error"] == "ValueError: 3 is a multiple of 3"
    assert errors[1]["value"]["process"] == "F"
    assert "F: error in process() for packet seq=3 on IN: ValueError" in result.stderr
    assert "Traceback" in result.stderr
    assert "4 packet(s) failed" in result.stderr


def test_a_process_that_dies_is_reported_and_the_run_fails(run_fbp, graph_file):
    graph = graph_file("""
S(probe/Endless) OUT -> IN C(probe/Crash) OUT -> IN D(core/Drop)
'0.001' -> DELAY S
""")
    result = run_fbp("run", graph, "--path", LIB, timeout=30)
    assert result.returncode == 1
    assert "C (probe/Crash, pid" in result.stderr
    assert "exited with status 3" in result.stderr


def test_type_mismatch_names_both_ports_types_and_line(run_fbp, graph_file):
    graph = graph_file("""'3' -> COUNT S(core/Sequence)
S OUT -> IN F(probe/FloatFrames)
""")
    result = run_fbp("run", graph, "--path", LIB)
    assert result.returncode == 1
    assert f"{graph}:2:" in result.stderr
    assert (
        "type mismatch: S.OUT (core/Sequence) sends Int, but F.IN (probe/FloatFrames) accepts "
        "Array(float32, ndim=2)" in result.stderr
    )
    assert "nothing was started" in result.stderr


def test_bad_iip_points_at_its_line(run_fbp, graph_file):
    graph = graph_file("""# counts
'ten' -> COUNT S(core/Sequence) OUT -> IN O(core/Output)
""")
    result = run_fbp("run", graph)
    assert result.returncode == 1
    assert f"{graph}:2:" in result.stderr
    assert "IIP 'ten' -> COUNT S: expected an integer (Int)" in result.stderr
    assert "'ten' -> COUNT S(core/Sequence)" in result.stderr  # the source line is shown


def test_unknown_port_and_component_are_reported_before_start(run_fbp, graph_file):
    graph = graph_file("""'3' -> COUNTS S(core/Sequence) OUT -> IN O(core/Outptu)
""")
    result = run_fbp("run", graph)
    assert result.returncode == 1
    assert "has no inport 'COUNTS'" in result.stderr and "did you mean COUNT" in result.stderr
    assert "Did you mean 'core/Output'" in result.stderr


def test_timeout_stops_sources_and_exits_124(run_fbp, graph_file, tmp_path):
    out = tmp_path / "rows"
    graph = graph_file(f"""
S(probe/Endless) OUT -> IN W(probe/Record)
'{out}' -> PATH W
""")
    result = run_fbp("run", graph, "--path", LIB, "--timeout", "1.5")
    assert result.returncode == 124, result.stderr
    rows = recorded(out)
    assert rows and [r["seq"] for r in rows] == list(range(len(rows)))  # the sink finished


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _titles(parent: int) -> str:
    """`ps -o args` of the children of `parent` (other fbp runs may share the machine)."""
    return subprocess.run(
        ["ps", "-o", "args=", "--ppid", str(parent)], capture_output=True, text=True, check=False
    ).stdout


def test_ctrl_c_drains_and_exits_130_with_titles_visible(graph_file, tmp_path):
    out = tmp_path / "rows"
    graph = graph_file(
        f"""
S(probe/Endless) OUT -> IN R(core/Repeat:workers=2) OUT -> IN W(probe/Record)
'0.01' -> DELAY S
'{out}' -> PATH W
""",
        name="ctrlc.fbp",
    )
    proc = subprocess.Popen(
        [FBP, "run", str(graph), "--path", str(LIB)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(
            lambda: all(t in _titles(proc.pid) for t in ("fbp: S", "fbp: R#1", "fbp: W"))
        )
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    rows = recorded(out)
    assert rows, stderr  # the sink finished and wrote what it had
    assert sorted(r["seq"] for r in rows) == list(range(len(rows)))  # nothing lost in draining


def test_second_ctrl_c_aborts_at_once(graph_file):
    # A sink that never finishes on its own keeps the run alive after the first Ctrl-C.
    graph = graph_file(
        """
S(probe/Endless) OUT -> IN T(core/Throttle) OUT -> IN D(core/Drop)
'0.0' -> DELAY S
'1' -> RATE T
""",
        name="abort.fbp",
    )
    proc = subprocess.Popen(
        [FBP, "run", str(graph), "--path", str(LIB)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(lambda: "fbp: T" in _titles(proc.pid))
        time.sleep(1.0)  # the source fills the ring in front of the 1/s throttle
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # still draining a full ring at 1 packet/s
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=15)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "second interrupt" in stderr


def test_ctrl_c_while_a_source_is_still_importing_stops_it_cleanly(graph_file):
    # The stop (SIGUSR1) must not reach a source before it can take it: it would die of
    # the signal instead of finishing (seen with a cancelled Slurm job right at its start).
    graph = graph_file(
        "S(slowstart/Count) OUT -> IN R(core/Repeat) OUT -> IN D(core/Drop)\n", name="early.fbp"
    )
    proc = subprocess.Popen(
        [FBP, "run", str(graph), "--path", str(LIB), "--no-observe"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "fbp: started" in line:
                break
        proc.send_signal(signal.SIGINT)  # the source is importing for another ~1.5 s
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "".join(lines) + rest
    assert proc.returncode == 130, stderr
    assert "killed by signal" not in stderr
    assert "fbp: S finished" in stderr


def _alive(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_children_die_with_a_killed_supervisor(graph_file):
    graph = graph_file(
        """
S(probe/Endless) OUT -> IN D(core/Drop)
""",
        name="orphans.fbp",
    )
    proc = subprocess.Popen(
        [FBP, "run", str(graph), "--path", str(LIB)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _wait_for(lambda: "fbp: D" in _titles(proc.pid) and "fbp: S" in _titles(proc.pid))
        segments = [s.name for s in list_segments() if s.owner_pid == proc.pid]
        children = [
            int(pid)
            for pid, command in (
                line.split(None, 1)
                for line in subprocess.run(
                    ["ps", "-o", "pid=,args=", "--ppid", str(proc.pid)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.splitlines()
            )
            if "fbp.runtime.janitor" not in command  # it outlives the run on purpose
        ]
    finally:
        proc.kill()
        proc.wait()
    assert len(children) == 2
    assert _wait_for(lambda: not any(_alive(pid) for pid in children), 5)
    # its janitor removes the dead run's segments (the connection's ring, the dashboard's tap)
    assert len(segments) == 2, segments
    assert _wait_for(lambda: not any(s.owner_pid == proc.pid for s in list_segments()), 5)


@pytest.mark.timeout(300)
def test_every_graph_with_implemented_components_runs(run_fbp, tmp_path):
    ran = []
    # replay.fbp reads the file sx_hitfinding.fbp writes, so it runs last
    for graph in sorted(GRAPHS.glob("*.fbp"), key=lambda g: (g.name == "replay.fbp", g.name)):
        if run_fbp("check", graph).returncode != 0:
            continue  # uses components not implemented yet (science, zmq, ...)
        # graphs write their files relative to where they run (fbp-output/...)
        result = run_fbp("run", graph, "--timeout", "60", cwd=tmp_path, timeout=120)
        assert result.returncode == 0, f"{graph}: {result.stderr}"
        ran.append(graph.name)
    assert {"count.fbp", "sx_hitfinding.fbp", "replay.fbp"} <= set(ran)


def test_fbp_check_reports_component_and_type_problems(run_fbp, graph_file):
    graph = graph_file("""'3' -> COUNT S(core/Sequence)
S OUT -> IN B(core/Batch)
'-' -> SIZE B
B OUT[1] -> IN O(core/Output)
""")
    result = run_fbp("check", graph)
    assert result.returncode == 1
    assert f"{graph}:3:" in result.stderr and "expected an integer" in result.stderr
    assert f"{graph}:4:" in result.stderr and "B.OUT is not an array port" in result.stderr
    assert run_fbp("check", GRAPHS / "count.fbp").returncode == 0


def test_bad_workers_metadata_is_reported_at_the_process(run_fbp, graph_file):
    graph = graph_file("""'3' -> COUNT S(core/Sequence) OUT -> IN R(core/Repeat:workers=many)
""")
    result = run_fbp("run", graph)
    assert result.returncode == 1
    assert "workers='many' must be a whole number from 1 to 256" in result.stderr


def test_batching_frames_larger_than_the_ring_does_not_deadlock(run_fbp, graph_file, tmp_path):
    out = tmp_path / "rows"
    # 6 frames of 512 KiB batched by 5 need more than B's 1 MiB ring if B held them there.
    graph = graph_file(
        f"""
'6' -> COUNT F(probe/Frames) OUT -> IN B(core/Batch:capacity=1M) OUT -> IN W(probe/Record)
'512' -> SIZE F
'5' -> SIZE B
'{out}' -> PATH W
"""
    )
    result = run_fbp("run", graph, "--path", LIB, "--quiet", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    assert [r["value"]["shape"] for r in recorded(out)] == [[5, 512, 512], [1, 512, 512]]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 3])
def test_substreams_stay_whole_across_workers(run_fbp, graph_file, tmp_path, workers):
    out = tmp_path / "rows"
    graph = graph_file(
        f"""
'4' -> RUNS S(probe/Series)
'40' -> SIZE S
S OUT -> IN T(probe/Tag:workers={workers}) OUT -> IN W(probe/Record)
'{out}' -> PATH W
"""
    )
    result = run_fbp("run", graph, "--path", LIB, "--quiet", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    rows = recorded(out)
    # one OPEN and one CLOSE per substream, whatever the number of workers ...
    brackets = [(r["bracket"], r["value"]) for r in rows if "bracket" in r]
    assert brackets == [(kind, f"run-{n}") for n in range(4) for kind in (1, 2)]
    # ... every value inside its own substream, and tagged by a worker that saw its OPEN
    current, seen = None, {n: [] for n in range(4)}
    for row in rows:
        if "bracket" in row:
            current = row["value"] if row["bracket"] == 1 else None
            continue
        bracket, value = row["value"].split("|")
        assert bracket == current and value.startswith(f"{current}/"), (row, current)
        seen[int(current.split("-")[1])].append(value)
    assert all(
        sorted(values) == sorted(f"run-{n}/{i}" for i in range(40)) for n, values in seen.items()
    )
