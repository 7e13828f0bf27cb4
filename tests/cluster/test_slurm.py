"""`fbp slurm` against a real Slurm: slurmctld, three slurmd and munged on this host.

The cluster is Debian's slurm-wlm and munge (installed by .ci/system-packages), started
directly (no systemd) with their own ports, state and munge socket in a temporary folder:
three fake nodes n1-n3 (`slurmd -N NAME`), `bf_interval=1` so jobs start within a second.
Jobs inherit the test's environment (sbatch --export=ALL), so the shared-memory leak check
sees their segments; processes they leave are found by that environment too.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from fbp.ring import list_segments

FBP_EXE = str(pathlib.Path(sys.executable).parent / "fbp")
LIB = pathlib.Path(__file__).parent / "lib"
REPO = pathlib.Path(__file__).resolve().parents[2]
NODES = ("n1", "n2", "n3")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "srun")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


SLURM_CONF = """\
ClusterName=fbptest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.socket
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd-%n.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
InactiveLimit=0
MinJobAge=600
KillWait=5
{nodes}
PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """A real Slurm controller with fake nodes, all on this host, in `folder`."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder
        folder.chmod(0o755)  # munged wants its socket's folder searchable by all
        ctld_port, *node_ports = _free_ports(1 + len(NODES))
        nodes = "\n".join(
            f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
            "CPUs=2 RealMemory=2000 State=UNKNOWN"
            for name, port in zip(NODES, node_ports, strict=True)
        )
        self.conf = folder / "slurm.conf"
        self.conf.write_text(
            SLURM_CONF.format(
                folder=folder, ctld_port=ctld_port, nodes=nodes, names=",".join(NODES)
            )
        )
        (folder / "state").mkdir()
        for name in NODES:
            (folder / "spool" / name).mkdir(parents=True)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._start(
            "munged",
            "--force",
            f"--socket={folder}/munge.socket",
            f"--key-file={key}",
            f"--log-file={folder}/munged.log",
            f"--pid-file={folder}/munged.pid",
            f"--seed-file={folder}/munged.seed",
        )
        self._start("slurmctld", "-i", "-f", str(self.conf))
        for name in NODES:
            self._start("slurmd", "-f", str(self.conf), "-N", name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = self.command("sinfo", "--noheader", "-N", "-o", "%T").stdout.split()
            if states == ["idle"] * len(NODES):
                return
            time.sleep(0.2)
        raise RuntimeError(f"slurm nodes did not become idle: {states}\n{self.logs()}")

    def _start(self, *command: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr}{self.logs()}")

    def command(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return subprocess.run(
            args, capture_output=True, text=True, env=self.env, timeout=60, **kwargs
        )

    def logs(self) -> str:
        """The daemons' logs (last lines), for failure messages."""
        text = ""
        for log in sorted(self.folder.glob("*.log")):
            text += f"\n--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:])
        return text

    def stop(self) -> None:
        """Cancel every job, stop the daemons, wait until they are gone."""
        self.command("scancel", "--full", "--user=root")
        pids = []
        for pidfile in self.folder.glob("*.pid"):
            try:
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
            except (ValueError, IndexError, ProcessLookupError):
                pass
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if pathlib.Path(f"/proc/{pid}").exists()]
            time.sleep(0.1)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-host Slurm with nodes n1-n3 (skips with the reason when missing)."""
    if os.geteuid() != 0:
        pytest.skip("a real Slurm needs root (slurmd starts jobs as their user)")
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        pytest.skip(
            f"Slurm or munge is not installed ({', '.join(missing)} missing): "
            "`bash .ci/system-packages` installs Debian's slurm-wlm and munge"
        )
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def fbp(cluster: SlurmCluster | None, cwd, *args, timeout=120) -> subprocess.CompletedProcess:
    """`fbp ARGS` in `cwd`, against `cluster` (None: no Slurm at all on PATH)."""
    env = (
        dict(cluster.env) if cluster else {**os.environ, "PATH": str(pathlib.Path(FBP_EXE).parent)}
    )
    return subprocess.run(
        [FBP_EXE, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def job_id(submitted: subprocess.CompletedProcess) -> str:
    """The job id `fbp slurm submit` printed."""
    assert submitted.returncode == 0, submitted.stderr
    first = submitted.stdout.splitlines()[0]
    assert first.startswith("fbp slurm: submitted job "), submitted.stdout
    return first.split()[4].rstrip(":")


def wait_for(predicate, timeout: float):
    """Poll `predicate` until it returns something true (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def job_state(cluster: SlurmCluster, job: str) -> str:
    """squeue's state of the job (it remembers ended jobs for MinJobAge)."""
    done = cluster.command("squeue", "--noheader", "--states=all", "-j", job, "-o", "%T")
    return done.stdout.strip()


def job_folder(tmp_path: pathlib.Path) -> pathlib.Path:
    """The only job folder under tmp_path/fbp-slurm."""
    (folder,) = (tmp_path / "fbp-slurm").iterdir()
    return folder


def stray_processes() -> list[str]:
    """Processes outside this test process's tree that carry this test session's tag:
    what a job left behind (janitors excluded: they end once they have cleaned up)."""
    tag = f"FBP_SHM_TAG={os.environ['FBP_SHM_TAG']}".encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if tag in environ.split(b"\0") and "fbp" in cmdline and "janitor" not in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def our_segments() -> list[str]:
    tag = os.environ["FBP_SHM_TAG"]
    return [s.name for s in list_segments() if s.tag == tag]


TWO_NODES = """\
'{count}' -> COUNT Src(check/Blobs:node=acq)
'{rate}' -> RATE Pace(core/Throttle:node=acq)
Src OUT -> IN Pace OUT -> IN Work(core/Repeat:node=gpu,workers=2)
Work OUT -> IN Check(check/Verify:node=acq) REPORT -> IN Out(core/Output)
"""


def _graph(tmp_path, count=300, rate=0.0) -> pathlib.Path:
    path = tmp_path / "split.fbp"
    path.write_text(TWO_NODES.format(count=count, rate=rate))
    return path


@pytest.mark.timeout(180)
def test_a_job_runs_on_two_nodes_and_says_where_everything_ran(slurm, tmp_path):
    graph = _graph(tmp_path)
    submitted = fbp(slurm, tmp_path, "slurm", "submit", graph, "--path", LIB, "--time=10")
    job = job_id(submitted)
    assert "on 2 node(s)" in submitted.stdout
    assert "node 1 (coordinator): acq: Src, Pace, Check, Out" in submitted.stdout
    assert "node 2 (agent): gpu: Work" in submitted.stdout

    assert wait_for(lambda: job_state(slurm, job) == "COMPLETED", 90), slurm.logs()
    folder = job_folder(tmp_path)
    output = (folder / "output.log").read_text()
    assert "received=300 unique=300 corrupt=0 max=299" in output, output
    assert "host acq -> n1 (coordinator)" in output
    assert "host gpu -> n2 (agent tcp://" in output
    assert "[gpu] fbp: Work#1 finished" in output
    placement = json.loads((folder / "placement.json").read_text())
    assert placement["coordinator"] == "n1"
    assert placement["hosts"]["gpu"]["node"] == "n2"
    assert json.loads((folder / "result.json").read_text())["status"] == 0
    assert "listening on tcp://" in (folder / "agent-n2.log").read_text()
    # the job made its own key pair: agents and links were encrypted
    assert "keys " + str(folder / "keys") in (folder / "agent-n2.log").read_text()

    status = fbp(slurm, tmp_path, "slurm", "status", job)
    assert status.returncode == 0, status.stderr
    assert f"job {job} ({graph}): COMPLETED" in status.stdout
    assert "on n[1-2], exit status 0" in status.stdout
    assert "host gpu -> n2 (agent tcp://" in status.stdout
    assert "fbp slurm: job " + job + " ended with exit status 0" in status.stdout
    assert wait_for(lambda: not stray_processes(), 10), stray_processes()


@pytest.mark.timeout(180)
def test_status_follows_a_running_job_and_cancel_drains_it(slurm, tmp_path):
    graph = _graph(tmp_path, count=1_000_000, rate=100.0)  # hours, unless cancelled
    job = job_id(fbp(slurm, tmp_path, "slurm", "submit", graph, "--path", LIB))
    folder = job_folder(tmp_path)
    assert wait_for(lambda: (folder / "placement.json").exists(), 60), slurm.logs()
    assert wait_for(lambda: "started" in (folder / "output.log").read_text(), 30)

    status = fbp(slurm, tmp_path, "slurm", "status")  # every job under ./fbp-slurm
    assert f"job {job} ({graph}): RUNNING" in status.stdout, status.stdout
    assert "host gpu -> n2 (agent tcp://" in status.stdout
    assert "output.log, last lines:" in status.stdout
    # the dashboard: where it listens, and that the printed way to it works (fake nodes
    # share this host, so no tunnel is needed here)
    (tunnel,) = [line for line in status.stdout.splitlines() if "dashboard on n1" in line]
    port = tunnel.split("ssh -N -L ")[1].split(":")[0]
    top_line = next(line for line in status.stdout.splitlines() if "fbp top --url" in line)
    token = top_line.split("--token ")[1].strip()
    assert oct((folder / "dashboard.json").stat().st_mode & 0o777) == "0o600"
    top = subprocess.run(
        [FBP_EXE, "top", "--url", f"http://127.0.0.1:{port}", "--token", token, "--once"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert top.returncode == 0, top.stderr
    assert "Work" in top.stdout and "gpu" in top.stdout

    started = time.monotonic()
    cancelled = fbp(slurm, tmp_path, "slurm", "cancel", job, "--drain-timeout", "60")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert f"job {job} asked to drain and stop" in cancelled.stdout
    assert "cancelled outright" not in cancelled.stdout  # it drained in time
    assert time.monotonic() - started < 60
    output = (folder / "output.log").read_text()
    assert "interrupted: stopping sources, draining" in output, output
    assert "[gpu] fbp: Work#0 finished" in output  # drained on the agent too, not killed
    assert "killed by signal" not in output
    # what crossed was checked: nothing corrupt, nothing lost between the hosts
    report = next(line for line in output.splitlines() if line.startswith("received="))
    fields = dict(item.split("=") for item in report.split())
    assert fields["corrupt"] == "0" and fields["received"] == fields["unique"]
    assert int(fields["max"]) + 1 == int(fields["received"])  # every seq up to the last
    assert json.loads((folder / "result.json").read_text())["status"] == 130
    assert not (folder / "dashboard.json").exists()  # its token is dead with the run
    after = fbp(slurm, tmp_path, "slurm", "status", job)
    assert "exit status 130" in after.stdout
    again = fbp(slurm, tmp_path, "slurm", "cancel", str(folder))
    assert "already ended" in again.stdout
    assert wait_for(lambda: not stray_processes(), 10), stray_processes()
    assert wait_for(lambda: not our_segments(), 10), our_segments()


@pytest.mark.timeout(120)
def test_agents_that_cannot_start_end_the_job_with_their_words(slurm, tmp_path):
    graph = _graph(tmp_path)
    # --hold is passed to sbatch: the job waits until the test broke its agents' command
    job = job_id(fbp(slurm, tmp_path, "slurm", "submit", graph, "--path", LIB, "--hold"))
    assert job_state(slurm, job) == "PENDING"
    folder = job_folder(tmp_path)
    spec = json.loads((folder / "spec.json").read_text())
    spec["python"] = str(tmp_path / "no-python-here")
    (folder / "spec.json").write_text(json.dumps(spec))
    assert slurm.command("scontrol", "release", job).returncode == 0

    assert wait_for(lambda: job_state(slurm, job) == "FAILED", 60), slurm.logs()
    output = (folder / "output.log").read_text()
    assert "the agents' step ended (exit status 127) before n2 answered" in output, output
    assert "no-python-here: No such file or directory" in output
    assert "fbp: started" not in output  # the coordinator never ran
    assert json.loads((folder / "result.json").read_text())["status"] == 1


@pytest.mark.timeout(60)
def test_a_pending_job_is_cancelled_at_once(slurm, tmp_path):
    job = job_id(fbp(slurm, tmp_path, "slurm", "submit", _graph(tmp_path), "--path", LIB, "--hold"))
    cancelled = fbp(slurm, tmp_path, "slurm", "cancel", job)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {job} cancelled (pending)" in cancelled.stdout
    assert job_state(slurm, job) == "CANCELLED"
    status = fbp(slurm, tmp_path, "slurm", "status", job)
    assert "CANCELLED" in status.stdout
    assert "no result recorded (cancelled before it started, or killed)" in status.stdout


def test_sbatch_refusing_an_option_is_reported_and_nothing_is_left(slurm, tmp_path):
    result = fbp(
        slurm, tmp_path, "slurm", "submit", _graph(tmp_path), "--path", LIB, "--partition=nosuch"
    )
    assert result.returncode == 1
    assert "`sbatch --parsable --partition=nosuch" in result.stderr
    assert "invalid partition" in result.stderr.lower()
    assert not list((tmp_path / "fbp-slurm").iterdir())


@pytest.mark.timeout(120)
def test_the_example_of_docs_slurm_runs_as_the_page_says(slurm, tmp_path):
    page = (REPO / "docs" / "slurm.md").read_text()
    (example,) = re.findall(r"^```fbp\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    graph = tmp_path / "example.fbp"
    graph.write_text(example)
    submitted = fbp(slurm, tmp_path, "slurm", "submit", graph, "--time=10")
    job = job_id(submitted)
    for line in ("node 1 (coordinator): acq: Numbers, Count, Show", "node 2 (agent): gpu: Work"):
        assert line in submitted.stdout and line in page
    assert wait_for(lambda: job_state(slurm, job) == "COMPLETED", 90), slurm.logs()
    output = (job_folder(tmp_path) / "output.log").read_text()
    assert "\n20000\n" in output, output  # every number crossed to gpu and back


# -- without a cluster: what is refused before anything is submitted ---------------------


def test_more_hosts_than_nodes_is_refused_with_what_to_do(tmp_path):
    result = fbp(None, tmp_path, "slurm", "submit", _graph(tmp_path), "--path", LIB, "--nodes", "1")
    assert result.returncode == 1
    assert "places processes on 2 hosts (acq, gpu) but --nodes is 1" in result.stderr
    assert "--place gpu=1" in result.stderr
    assert not (tmp_path / "fbp-slurm").exists()


def test_a_graph_error_is_reported_at_its_line_before_submitting(tmp_path):
    graph = tmp_path / "bad.fbp"
    graph.write_text("'3' -> COUNT Src(core/Sequence:node=a)\nSrc OUT -> IN Sink(core/Nope)\n")
    result = fbp(None, tmp_path, "slurm", "submit", graph)
    assert result.returncode == 1
    assert "bad.fbp:2:" in result.stderr and "core/Nope" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert not (tmp_path / "fbp-slurm").exists()


def test_a_dry_run_shows_the_script_and_placement_and_submits_nothing(tmp_path):
    result = fbp(None, tmp_path, "slurm", "submit", _graph(tmp_path), "--path", LIB,
                 "--dry-run", "--time=10", "--", "-q", "debug")  # fmt: skip
    assert result.returncode == 0, result.stderr  # no sbatch on PATH: nothing was asked
    assert "not submitted (--dry-run): " in result.stdout
    assert "node 2 (agent): gpu: Work" in result.stdout
    folder = job_folder(tmp_path)
    script = (folder / "job.sh").read_text()
    assert "    #SBATCH --nodes=2\n" in result.stdout  # the script is shown
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=1" in script
    assert f"exec {sys.executable} -m fbp slurm job {folder}" in script
    # sbatch's --time is not taken for fbp's --timeout (argparse would abbreviate)
    assert (
        f"submit it as it is with: sbatch --time=10 -q debug {folder / 'job.sh'}" in result.stdout
    )
    assert "--timeout" not in json.loads((folder / "spec.json").read_text())["run"]
    assert not (folder / "submitted.json").exists()
    assert oct((folder / "keys").stat().st_mode & 0o777) == "0o700"


def test_place_shares_nodes_and_rejects_unknown_names(tmp_path):
    from fbp.cluster.slurm import SlurmError, map_nodes, parse_place

    assert map_nodes(["a", "b", "c"], None, {}) == ({"a": 1, "b": 2, "c": 3}, 3)
    assert map_nodes(["a", "b", "c"], 3, parse_place(["c=1"])) == ({"a": 2, "b": 3, "c": 1}, 3)
    with pytest.raises(SlurmError, match=r"on 3 hosts \(a, b, c\) but --nodes is 2"):
        map_nodes(["a", "b", "c"], 2, parse_place(["c=1"]))
    assert map_nodes(["a", "b", "c"], None, parse_place(["a=2,c=2"])) == (
        {"a": 2, "b": 1, "c": 2},
        2,
    )
    assert map_nodes([], None, {}) == ({}, 1)
    with pytest.raises(SlurmError, match=r"--place x=1: the graph places nothing on node='x'"):
        map_nodes(["a"], None, {"x": 1})
    with pytest.raises(SlurmError, match=r"--place a=3: node numbers are 1..2"):
        map_nodes(["a"], 2, {"a": 3})
    with pytest.raises(SlurmError, match=r"must look like NAME=K"):
        parse_place(["gpu"])


def test_without_slurm_the_error_says_what_is_needed(tmp_path):
    result = fbp(None, tmp_path, "slurm", "submit", _graph(tmp_path), "--path", LIB)
    assert result.returncode == 1
    assert "`sbatch` not found: fbp slurm needs Slurm's client commands" in result.stderr
    assert not list((tmp_path / "fbp-slurm").iterdir())
    status = fbp(None, tmp_path, "slurm", "status", "4242")
    assert status.returncode == 1
    assert "no fbp job '4242'" in status.stderr
