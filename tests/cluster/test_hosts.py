"""Runs across hosts with real agents, real ZeroMQ links and real processes.

Loopback tests run the agents on 127.0.0.1 (no privileges needed); the tests marked
`hosts` run each host in its own network namespace, so links can be cut and hosts lost.
Blobs carry their seq and a CRC32 and are big enough (128 KiB) to cross as zero-copy
frames; check/Verify reports how many arrived, how many distinct, how many corrupt.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from fbp.ring import list_segments

FBP_EXE = str(pathlib.Path(sys.executable).parent / "fbp")
LIB = pathlib.Path(__file__).parent / "lib"


def fbp_run(*args, namespace=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """`fbp run ARGS` (in `namespace`), text output, no live table."""
    command = [FBP_EXE, "run", *map(str, args), "--no-status", "--no-observe"]
    if namespace:
        command = ["ip", "netns", "exec", namespace, *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def wait_for(predicate, timeout: float) -> bool:
    """Poll `predicate` until true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


PIPELINE = """\
'{count}' -> COUNT Src(check/Blobs)
'{rate}' -> RATE Pace(core/Throttle)
Src OUT -> IN Pace OUT -> IN Work(core/Repeat:node=b,workers=2)
Work OUT -> IN Check(check/Verify:node=c) REPORT -> IN Out(core/Output)
"""


def _graph(tmp_path, count=300, rate=0.0):
    path = tmp_path / "split.fbp"
    path.write_text(PIPELINE.format(count=count, rate=rate))
    return path


def _hosts(b, c) -> str:
    return f"b={b.endpoint},c={c.endpoint}"


def _our_segments() -> list[str]:
    tag = os.environ["FBP_SHM_TAG"]
    return [s.name for s in list_segments() if s.tag == tag]


@pytest.mark.timeout(120)
def test_a_pipeline_over_three_hosts_delivers_every_blob_intact(tmp_path, agents):
    b, c = agents(), agents()
    result = fbp_run(_graph(tmp_path), "--hosts", _hosts(b, c), "--path", LIB)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "received=300 unique=300 corrupt=0 max=299"
    # every host's processes and links report, and are in the one summary
    for line in (
        "[b] fbp: started 6 process(es), 4 ring(s)",  # 2 workers, 2 links in, 2 out
        "[b] fbp: Work#1 finished",
        "[c] fbp: Check finished",
        "fbp: bridge:c3-0-0>b finished",
        "[b] fbp: bridge:c4-1-0>c finished",
    ):
        assert line in result.stderr
    summary = result.stderr.split("fbp run summary")[1]
    assert "Work#0" in summary and "│ b " in summary and "│ c " in summary


@pytest.mark.timeout(60)
def test_check_shows_where_processes_run_and_which_connections_cross(tmp_path, run_fbp):
    result = run_fbp(
        "check",
        _graph(tmp_path),
        "--hosts",
        "b=tcp://10.9.9.2:7000,c=tcp://10.9.9.3:7000",
        env={**os.environ, "FBP_PATH": str(LIB)},
    )
    assert result.returncode == 0, result.stderr
    assert "host local (this process (coordinator)): Src, Pace, Out" in result.stdout
    assert "host b (agent tcp://10.9.9.2:7000): Work" in result.stdout
    assert "link c3-0-1: Pace.OUT -> Work#1.IN  [local -> b]" in result.stdout
    assert "link c5-0-0: Check.REPORT -> Out.IN  [c -> local]" in result.stdout


@pytest.mark.timeout(60)
def test_a_node_no_host_names_is_reported_at_its_line(tmp_path, run_fbp):
    result = run_fbp(
        "check",
        _graph(tmp_path),
        "--hosts",
        "b=tcp://10.9.9.2:7000",
        env={**os.environ, "FBP_PATH": str(LIB)},
    )
    assert result.returncode == 1
    assert "split.fbp:4:" in result.stderr
    assert "node='c', which --hosts does not name" in result.stderr
    assert "add c=tcp://HOST:PORT" in result.stderr


@pytest.mark.timeout(60)
def test_an_agent_that_does_not_answer_stops_the_run_before_anything_starts(tmp_path, agents):
    b = agents()
    started = time.monotonic()
    hosts = f"b={b.endpoint},c=tcp://127.0.0.1:9"
    result = fbp_run(_graph(tmp_path), "--hosts", hosts, "--path", LIB)
    assert result.returncode == 1
    assert time.monotonic() - started < 20
    assert "no answer from agent c at tcp://127.0.0.1:9" in result.stderr
    assert "start `fbp agent --listen" in result.stderr
    assert "fbp: started" not in result.stderr
    assert not _our_segments()


@pytest.mark.timeout(120)
def test_keys_encrypt_the_run_and_a_wrong_key_is_refused(tmp_path, agents, run_fbp):
    good, other = tmp_path / "keys", tmp_path / "other"
    assert run_fbp("keys", "generate", good).returncode == 0
    assert run_fbp("keys", "generate", other).returncode == 0
    assert oct((good / "fbp.key_secret").stat().st_mode & 0o777) == "0o600"
    again = run_fbp("keys", "generate", good)
    assert again.returncode == 1 and "--force" in again.stderr
    b, c = agents(keys=good), agents(keys=good)
    graph = _graph(tmp_path, count=50)
    ok = fbp_run(graph, "--hosts", _hosts(b, c), "--path", LIB, "--keys", good)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "received=50 unique=50 corrupt=0 max=49"
    refused = fbp_run(graph, "--hosts", _hosts(b, c), "--path", LIB, "--keys", other)
    assert refused.returncode == 1
    assert f"agent b at {b.endpoint} refused us" in refused.stderr
    plain = fbp_run(graph, "--hosts", _hosts(b, c), "--path", LIB)
    assert plain.returncode == 1 and "refused us" in plain.stderr
    assert "refused a peer" in b.stop()  # the agent reports it too


@pytest.mark.timeout(120)
def test_ctrl_c_on_the_coordinator_drains_every_host(tmp_path, agents):
    b, c = agents(), agents()
    graph = _graph(tmp_path, count=100000, rate=200.0)
    run = subprocess.Popen(
        [FBP_EXE, "run", graph, "--hosts", _hosts(b, c), "--path", LIB, "--no-status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    received = int(out.split("received=")[1].split()[0])
    assert 0 < received < 100000
    assert f"unique={received} corrupt=0" in out  # what was sent arrived, once, intact
    for agent in (b, c):
        assert wait_for(lambda a=agent: not _children(a.pid), 10), "a host kept processes"
        assert agent.popen.poll() is None  # the agents serve on
    assert wait_for(lambda: not _our_segments(), 5)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] != "Z" and "janitor" not in _cmdline(entry):
                found.append(int(entry))
    return found


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


# -- hosts in network namespaces ------------------------------------------------------


def _ns_agents(hosts, agents, keys=None):
    return [
        agents(f"tcp://{address}:7000", namespace=name, keys=keys)
        for name, address in zip(hosts["names"][1:], hosts["addresses"][1:], strict=True)
    ]


@pytest.mark.timeout(180)
def test_three_hosts_in_namespaces_and_a_four_second_link_cut(tmp_path, hosts, agents):
    b, c = _ns_agents(hosts, agents)
    graph = _graph(tmp_path, count=2000, rate=250.0)  # about 8 s
    cut_done = threading.Event()

    def cut() -> None:
        time.sleep(3.0)
        veth = ["ip", "-n", hosts["names"][2], "link", "set", hosts["veths"][2]]
        subprocess.run([*veth, "down"], check=True)
        time.sleep(4.0)
        subprocess.run([*veth, "up"], check=True)
        cut_done.set()

    cutter = threading.Thread(target=cut)
    cutter.start()
    started = time.monotonic()
    result = fbp_run(
        graph, "--hosts", _hosts(b, c), "--path", LIB, namespace=hosts["names"][0], timeout=150
    )
    cutter.join()
    assert cut_done.is_set()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "received=2000 unique=2000 corrupt=0 max=1999"
    assert time.monotonic() - started > 7.0  # the cut fell inside the run


@pytest.mark.timeout(180)
def test_an_agent_killed_mid_run_is_reported_and_nothing_survives(tmp_path, hosts, agents):
    b, c = _ns_agents(hosts, agents)
    graph = _graph(tmp_path, count=100000, rate=500.0)
    run = subprocess.Popen(
        [
            "ip", "netns", "exec", hosts["names"][0],
            FBP_EXE, "run", graph, "--hosts", _hosts(b, c), "--path", LIB,
            "--no-status", "--host-timeout", "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(4.0)
    assert _children(c.pid), "host c runs nothing"
    c.popen.kill()  # kill -9 of the agent: its processes die with it
    killed = time.monotonic()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    assert time.monotonic() - killed < 3 + 10 + 10  # host timeout, grace, margin
    assert f"host c ({c.endpoint}) lost: no word from its agent for 3 s" in err
    assert wait_for(lambda: not _children(b.pid), 10), "host b kept processes"
    assert wait_for(lambda: not _our_segments(), 30), _our_segments()


SIDE_BRANCH = """\
'{count}' -> COUNT Src(check/Blobs)
'{rate}' -> RATE Pace(core/Throttle)
Src OUT -> IN Pace OUT -> IN Work(core/Repeat:node=b)
Work OUT -> IN Check(check/Verify) REPORT -> IN Out(core/Output)
Pace OUT -> IN View(core/Drop:node=c)
"""


@pytest.mark.timeout(180)
def test_with_on_host_loss_continue_the_rest_of_the_run_goes_on(tmp_path, hosts, agents):
    # c only watches a copy of the stream; losing it must not lose the main branch
    b, c = _ns_agents(hosts, agents)
    graph = tmp_path / "side.fbp"
    graph.write_text(SIDE_BRANCH.format(count=3000, rate=500.0))  # about 6 s
    ledger = tmp_path / "ledger.json"
    run = subprocess.Popen(
        [
            "ip", "netns", "exec", hosts["names"][0],
            FBP_EXE, "run", graph, "--hosts", _hosts(b, c), "--path", LIB,
            "--no-status", "--no-observe", "--host-timeout", "2",
            "--on-host-loss", "continue", "--ledger", ledger,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert wait_for(lambda: _children(c.pid), 20), "host c runs nothing"
    time.sleep(1.0)  # blobs flow to c and on through b
    c.popen.kill()
    out, err = run.communicate(timeout=90)
    assert run.returncode == 1, err  # a host was lost: not a clean run, but a whole one
    assert f"host c ({c.endpoint}) lost: no word from its agent for 2 s" in err
    assert "the run goes on without host c (--on-host-loss continue)" in err
    assert "stopping the sources" not in err
    assert out.strip() == "received=3000 unique=3000 corrupt=0 max=2999", err
    assert ledger.exists(), err
    lost = {
        e["where"]: e["count"]
        for e in json.loads(ledger.read_text())["entries"]
        if e["kind"] == "lost"
    }
    # what waited for c, and what Pace sent after c's link ended: every blob is accounted
    assert sum(count for where, count in lost.items() if "View" in where) >= 1, lost
    assert wait_for(lambda: not _children(b.pid), 10), "host b kept processes"
    assert wait_for(lambda: not _our_segments(), 30), _our_segments()


@pytest.mark.timeout(120)
def test_a_host_that_refuses_the_run_is_reported_and_the_run_ends_cleanly(tmp_path, agents):
    # Components found through FBP_PATH here only: the agents cannot plan the graph and
    # refuse. The link towards c then never starts (its receiver never bound): it must
    # end too, and the run with it.
    b, c = agents(), agents()
    graph = tmp_path / "refused.fbp"
    graph.write_text(SIDE_BRANCH.replace("core/Drop", "check/Verify").format(count=50, rate=0))
    result = subprocess.run(
        [FBP_EXE, "run", graph, "--hosts", _hosts(b, c), "--no-status", "--no-observe"],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "FBP_PATH": str(LIB)},
    )
    assert result.returncode == 1, result.stderr
    assert "host c refused the run: the graph does not check here" in result.stderr
    assert "no component library 'check'" in result.stderr
    assert "Traceback" not in result.stderr
    assert wait_for(lambda: not _children(b.pid) and not _children(c.pid), 10)
    assert wait_for(lambda: not _our_segments(), 30), _our_segments()


@pytest.mark.timeout(60)
def test_show_draws_one_coloured_box_per_host_and_bold_links(tmp_path, run_fbp):
    result = run_fbp("show", _graph(tmp_path), "--format", "dot")
    assert result.returncode == 0, result.stderr
    dot = result.stdout
    assert 'subgraph "cluster_host_b"' in dot and 'subgraph "cluster_host_c"' in dot
    assert dot.count('label="host ') == 2
    colours = [
        line.split('fillcolor="')[1][:7] for line in dot.splitlines() if 'label="host' in line
    ]
    assert len(set(colours)) == 2  # each host its own colour
    crossing = [line for line in dot.splitlines() if "penwidth=2.5" in line]
    assert len(crossing) == 3  # Pace -> Work, Work -> Check, Check -> Out
    if shutil.which("dot"):
        svg = run_fbp("show", _graph(tmp_path), "--format", "svg")
        assert svg.returncode == 0 and "host b" in svg.stdout, svg.stderr


@contextlib.contextmanager
def _observed_run(tmp_path, b, c):
    """The three-host pipeline with its dashboard; yields get(path) -> bytes of its API."""
    import urllib.request

    graph = _graph(tmp_path, count=100000, rate=100.0)
    run = subprocess.Popen(
        [FBP_EXE, "run", graph, "--hosts", _hosts(b, c), "--path", LIB, "--no-status", "--ui"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        while "dashboard at" not in line:
            line = run.stderr.readline()
            assert line, "the run ended before serving its dashboard"
        base, token = line.split("dashboard at ")[1].strip().split("/?token=")

        def get(path: str) -> bytes:
            request = urllib.request.Request(
                base + path, headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read()

        yield get
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)


@pytest.mark.timeout(120)
def test_the_dashboard_shows_and_previews_processes_on_other_hosts(tmp_path, agents):
    b, c = agents(), agents()
    with _observed_run(tmp_path, b, c) as fetch:

        def get(path: str):
            return json.loads(fetch(path))

        def remote_running():
            processes = {p["name"]: p for p in get("/api/snapshot")["processes"]}
            check = processes.get("Check", {})
            return check.get("host") == "c" and check.get("packets_in", 0) > 0

        assert wait_for(remote_running, 20), get("/api/snapshot")
        # connection 4 is Work -> Check: produced on host b, watched from here
        preview = {}

        def previewed():
            preview.update(get("/api/preview?connection=4"))
            return preview.get("kind") not in (None, "waiting")

        assert wait_for(previewed, 20), preview
        assert preview["host"] == "b"


@pytest.mark.timeout(120)
def test_rings_on_other_hosts_report_their_latency_and_host(tmp_path, agents):
    from prometheus_client.parser import text_string_to_metric_families

    b, c = agents(), agents()
    with _observed_run(tmp_path, b, c) as get:

        def measured_everywhere():
            rows = json.loads(get("/api/snapshot"))["connections"]
            hosts = {row["host"] for row in rows if row["latency_p50"] is not None}
            return hosts >= {"local", "b", "c"}

        # each host's rings are timed there and their numbers forwarded to the coordinator
        assert wait_for(measured_everywhere, 30), get("/api/snapshot")
        rows = json.loads(get("/api/snapshot"))["connections"]
        for row in rows:
            assert 0 <= row["latency_count"] <= row["packets"]
            assert row["latency_buckets"][-1] == row["latency_count"]
        counts = [
            sample
            for family in text_string_to_metric_families(get("/metrics").decode())
            for sample in family.samples
            if sample.name == "fbp_connection_latency_seconds_count"
        ]
        assert {sample.labels["node"] for sample in counts if sample.value > 0} >= {
            "local", "b", "c"
        }  # fmt: skip
        # a ring taken from by a bridge sender is on the sending host, and says so
        to_b = [s for s in counts if s.labels["connection"].endswith("(to b)")]
        assert to_b and all(s.labels["node"] == "local" for s in to_b)
