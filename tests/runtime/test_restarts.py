"""Restarts with replay, on_error policies and the loss ledger, with real processes and signals."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FBP = os.path.join(os.path.dirname(sys.executable), "fbp")
LIB = pathlib.Path(__file__).parent / "lib"

# The graph, with Throttle at 25 000 packets/s so the run takes about 8 s.
CHAOS = """
'200000' -> COUNT Seq(core/Sequence)
Seq OUT -> IN Thr(core/Throttle) OUT -> IN Rep(core/Repeat:workers=2,restart=always) \
OUT -> IN M(core/OrderedMerge) OUT -> IN Cnt(core/Counter) COUNT -> IN Out(core/Output)
'25000' -> RATE Thr
"""


def _pid_of(parent: int, title: str) -> int | None:
    """The child of `parent` whose process title is `title`."""
    listing = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(parent)], capture_output=True, text=True
    ).stdout
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if args.strip() == title:
            return int(pid)
    return None


class Chaos:
    """`fbp run` in the background, and signals for its processes (found by title)."""

    def __init__(self, *args) -> None:
        self.run = subprocess.Popen(
            [FBP, "run", *map(str, args), "--no-status"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def signal(self, process: str, signum=signal.SIGKILL, wait: float = 5.0) -> bool:
        """Send `signum` to the process titled `fbp: PROCESS`; False if it is not there."""
        deadline = time.monotonic() + wait
        while True:
            pid = _pid_of(self.run.pid, f"fbp: {process}")
            if pid is not None:
                os.kill(pid, signum)
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Wait for the end: (exit status, stdout, stderr)."""
        try:
            out, err = self.run.communicate(timeout=timeout)
        finally:
            if self.run.poll() is None:
                self.run.kill()
                self.run.communicate()
        return self.run.returncode, out, err


@pytest.mark.timeout(90)
def test_killing_workers_again_and_again_loses_nothing(tmp_path):
    graph = tmp_path / "chaos.fbp"
    graph.write_text(CHAOS)
    ledger = tmp_path / "ledger.json"
    chaos = Chaos(graph, "--ledger", ledger)
    time.sleep(2.0)
    for number in range(4):  # Rep#0, Rep#1, Rep#0, Rep#1, while packets flow
        assert chaos.signal(f"Rep#{number % 2}"), "worker not found"
        time.sleep(1.2)
    status, out, err = chaos.finish()
    assert status == 0, err
    assert out == "200000\n", err  # exactly once, in order: OrderedMerge drops the replays
    assert err.count("restart 1 of 10") == 2 and err.count("restart 2 of 10") == 2, err
    # Repeat is idle most of the time here, so a kill may find nothing to replay; the
    # ledger says what each restart gave again (see the next test for a busy worker).
    data = json.loads(ledger.read_text())
    replays = [e for e in data["entries"] if e["kind"] == "replayed"]
    assert {e["where"] for e in replays} <= {"Thr.OUT -> Rep#0.IN", "Thr.OUT -> Rep#1.IN"}
    assert all("killed by signal SIGKILL; restarted" in e["reason"] for e in replays)
    assert data["totals"]["replayed"] == sum(e["count"] for e in replays)
    assert data["totals"]["failed"] == data["totals"]["lost"] == 0


BUSY = """
'3000' -> COUNT Seq(core/Sequence) OUT -> IN Slow(core/Throttle:restart=on-crash)
'1000' -> RATE Slow
Slow OUT -> IN M(core/OrderedMerge) OUT -> IN Cnt(core/Counter) COUNT -> IN Out(core/Output)
"""


@pytest.mark.timeout(60)
def test_a_busy_worker_killed_gets_its_packets_again(tmp_path):
    # Throttle holds the batch it received while it paces it out: a kill always finds
    # packets received and not finished, which must come again, and those it had already
    # sent come twice: OrderedMerge keeps one.
    graph = tmp_path / "busy.fbp"
    graph.write_text(BUSY)
    ledger = tmp_path / "ledger.json"
    chaos = Chaos(graph, "--ledger", ledger)
    for _ in range(2):
        time.sleep(1.0)
        assert chaos.signal("Slow")
    status, out, err = chaos.finish(40)
    assert status == 0, err
    assert out == "3000\n", err
    data = json.loads(ledger.read_text())
    (entry,) = [e for e in data["entries"] if e["kind"] == "replayed"]
    assert entry["where"] == "Seq.OUT -> Slow.IN" and entry["count"] >= 2
    assert "dropped" in err and "duplicate seq" in err  # the merge saw the replays
    assert "loss ledger" in err


FAILING = """
'1000' -> COUNT Seq(core/Sequence) OUT -> IN F(probe/FailEvery{meta}) OUT -> IN C(core/Counter)
'100' -> EVERY F
C COUNT -> IN Out(core/Output)
"""


@pytest.mark.timeout(60)
def test_on_error_skip_counts_exactly_the_failed_packets(tmp_path):
    graph = tmp_path / "skip.fbp"
    graph.write_text(FAILING.format(meta=":on_error=skip"))
    ledger = tmp_path / "ledger.json"
    result = subprocess.run(
        [FBP, "run", str(graph), "--path", str(LIB), "--no-status", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 1  # failed packets make the run fail ...
    assert result.stdout == "990\n"  # ... but the rest went on
    data = json.loads(ledger.read_text())
    assert data["totals"] == {"failed": 10, "replayed": 0, "dropped": 0, "lost": 0}
    (entry,) = data["entries"]
    assert entry["where"] == "F.IN" and entry["reason"] == "ValueError"
    assert entry["seqs"] == list(range(0, 1000, 100))


@pytest.mark.timeout(60)
def test_on_error_restart_gives_up_after_max_restarts(tmp_path):
    # a poison packet comes back after every restart: the limit ends it, reported
    graph = tmp_path / "poison.fbp"
    graph.write_text(FAILING.format(meta=":on_error=restart,max_restarts=2"))
    result = subprocess.run(
        [FBP, "run", str(graph), "--path", str(LIB), "--no-status"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 1
    assert "restart 1 of 2" in result.stderr and "restart 2 of 2" in result.stderr
    assert "restart 3" not in result.stderr
    assert "F: PacketFailed: packet seq=0 on IN failed" in result.stderr


@pytest.mark.timeout(60)
def test_bad_restart_metadata_is_reported_at_the_process(tmp_path):
    graph = tmp_path / "bad.fbp"
    graph.write_text("'3' -> COUNT S(core/Sequence) OUT -> IN R(core/Repeat:restart=sometimes)\n")
    result = subprocess.run([FBP, "run", str(graph)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"{graph}:1:" in result.stderr
    assert "restart='sometimes' must be one of never, always, on-crash" in result.stderr


@pytest.mark.timeout(60)
def test_a_process_that_dies_for_good_leaves_its_waiting_packets_in_the_ledger(tmp_path):
    graph = tmp_path / "crash.fbp"
    graph.write_text(
        "S(probe/Endless) OUT -> IN C(probe/Crash) OUT -> IN D(core/Drop)\n'0.001' -> DELAY S\n"
    )
    ledger = tmp_path / "ledger.json"
    result = subprocess.run(
        [FBP, "run", str(graph), "--path", str(LIB), "--no-status", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 1
    data = json.loads(ledger.read_text())
    lost = {e["reason"]: e for e in data["entries"] if e["kind"] == "lost"}
    entry = lost.pop("C exited with status 3")
    assert entry["where"] == "S.OUT -> C.IN"
    assert entry["count"] >= 1  # at least the packet it died on
    # and what S sent in the moments before it was stopped, into a connection nobody read
    assert set(lost) <= {"sent after its consumer was gone"}
    assert all(e["where"] == "S.OUT -> C.IN" for e in lost.values())


@pytest.mark.timeout(60)
def test_a_stopped_worker_is_detected_as_hung_killed_and_restarted(tmp_path):
    graph = tmp_path / "hang.fbp"
    graph.write_text(BUSY.replace("restart=on-crash", "restart=on_crash,hang_timeout=2"))
    chaos = Chaos(graph)
    time.sleep(1.0)
    assert chaos.signal("Slow", signal.SIGSTOP)
    stopped = time.monotonic()
    status, out, err = chaos.finish(40)
    assert status == 0, err
    assert "Slow hung (no heartbeat for 2 s)" in err
    assert "Slow killed by signal SIGKILL: restart 1 of 10" in err
    assert out == "3000\n"
    assert time.monotonic() - stopped < 35


@pytest.mark.timeout(60)
def test_a_process_stopped_while_it_still_imports_is_found_hung_too(tmp_path):
    # slowstart's module takes 1.5 s to import: SIGSTOP it then; it never said it runs
    graph = tmp_path / "early.fbp"
    graph.write_text(
        "S(slowstart/Count:hang_timeout=2) OUT -> IN R(core/Repeat) OUT -> IN D(core/Drop)\n"
    )
    chaos = Chaos(graph, "--path", LIB)
    assert chaos.signal("S", signal.SIGSTOP)
    stopped = time.monotonic()
    status, _, err = chaos.finish(40)
    assert status == 1, err
    assert "S hung (no heartbeat for 2 s)" in err
    assert "S (slowstart/Count" in err and "killed by signal SIGKILL" in err
    assert time.monotonic() - stopped < 20


ENDS = """
Seq(core/Sequence) OUT -> IN Thr(core/Throttle:capacity=4KiB)
Thr OUT -> IN Sink(probe/Sleepy:capacity=4KiB)
'200' -> RATE Thr
'0.01' -> SECONDS Sink
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("victim", ["Seq", "Sink"])
def test_killing_a_source_or_a_sink_ends_the_run_cleanly_and_says_so(tmp_path, victim):
    graph = tmp_path / "ends.fbp"
    graph.write_text(ENDS)
    ledger = tmp_path / "ledger.json"
    chaos = Chaos(graph, "--path", LIB, "--ledger", ledger)
    time.sleep(1.5)
    assert chaos.signal(victim)
    status, _, err = chaos.finish(40)
    assert status == 1, err
    assert f"{victim} (" in err and "killed by signal SIGKILL" in err
    data = json.loads(ledger.read_text())
    if victim == "Sink":
        # what waited for the dead sink is lost, and the ledger says so (and what waited
        # upstream, once the producer found its consumer gone)
        lost = {e["where"]: e["count"] for e in data["entries"] if e["kind"] == "lost"}
        assert lost.get("Thr.OUT -> Sink.IN", 0) >= 1, lost


HYPOTHESIS_GRAPH = """
'2000' -> COUNT Seq(core/Sequence) OUT -> IN Thr(core/Throttle)
'2000' -> RATE Thr
Thr OUT -> IN W(core/Repeat:workers=2,restart=always) OUT -> IN M(core/OrderedMerge)
M OUT -> IN Rec(probe/Record)
'{out}' -> PATH Rec
"""


@pytest.mark.timeout(240)
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    schedule=st.lists(
        st.tuples(st.floats(min_value=0.05, max_value=0.4), st.integers(0, 1)),
        min_size=1,
        max_size=3,
    )
)
def test_random_kill_schedules_every_seq_arrives_once_or_is_in_the_ledger(tmp_path, schedule):
    folder = tmp_path / f"run{time.monotonic_ns()}"
    folder.mkdir()
    out, ledger = folder / "rows", folder / "ledger.json"
    graph = folder / "chaos.fbp"
    graph.write_text(HYPOTHESIS_GRAPH.format(out=out))
    chaos = Chaos(graph, "--path", LIB, "--ledger", ledger)
    time.sleep(0.5)
    for delay, worker in schedule:
        time.sleep(delay)
        chaos.signal(f"W#{worker}", wait=0.0)  # it may be restarting right now
    status, _, err = chaos.finish()
    assert status == 0, err
    seqs = [
        json.loads(line)["seq"]
        for path in folder.glob("rows.*")
        for line in path.read_text().splitlines()
    ]
    data = json.loads(ledger.read_text())
    accounted = {
        seq
        for entry in data["entries"]
        if entry["kind"] in ("failed", "dropped", "lost")
        for seq in entry["seqs"]
    }
    missing = set(range(2000)) - set(seqs)
    assert missing <= accounted, sorted(missing)[:10]
    assert len(seqs) == len(set(seqs)), "a seq arrived twice"
    assert seqs == sorted(seqs)
