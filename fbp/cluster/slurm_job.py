"""The batch step of an fbp Slurm job: `fbp slurm job FOLDER`, the script's last line.

On the allocation's first node it

1. reads the job folder's spec.json, and the allocation's nodes (`scontrol show
   hostnames`);
2. starts one `fbp agent` on every other node in one `srun` step (`--overlap --whole`:
   the processes an agent starts may use all the CPUs and memory the job has there); each
   agent listens on a free port and announces its address in `agents/NODE.json`;
3. waits for every announcement: a step that ends early, or a node silent for the
   spec's agent_timeout, ends the job with the agents' own words quoted from their logs;
4. writes placement.json and says where every host name runs;
5. is the coordinator: `fbp run GRAPH --hosts NAME=local|NAME=tcp://... --keys ...`,
   with the run options given at submit time;
6. stops the agents, writes result.json and exits with the run's status, which becomes
   Slurm's job state (COMPLETED or FAILED).

While the run serves its dashboard (127.0.0.1 of the first node, token-protected), the
job folder holds dashboard.json (mode 0600) with its address and token, so `fbp slurm
status` can say how to reach it from the login node.

SIGTERM (`fbp slurm cancel`, or the time limit drawing near: the script asks for
`--signal=B:TERM@60`) drains the run like Ctrl-C; before the run started it stops the
agents and ends the job.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from fbp.cluster.slurm import JobFolder, SlurmError, slurm_command

__all__ = ["allocation_nodes", "run_job"]

AGENTS_STOP = 15.0  # seconds the agents get to end their processes before srun is killed
AGENTS_STEP = "fbp-agents"  # the job step's name


def allocation_nodes() -> list[str]:
    """The job's node names in allocation order (the batch step runs on the first).

    Raises:
        SlurmError: not inside a Slurm job, or scontrol failed.
    """
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        raise SlurmError(
            "fbp slurm job runs inside a Slurm allocation (no SLURM_JOB_NODELIST): "
            "use `fbp slurm submit FILE` to submit a graph"
        )
    return slurm_command("scontrol", "show", "hostnames", nodelist).split()


def _say(text: str) -> None:
    print(f"fbp slurm: {text}", file=sys.stderr, flush=True)


class _Stop(Exception):
    """SIGTERM arrived before the run started."""


def run_job(path: str) -> int:
    """Run the job of the folder at `path` (see the module docstring); its exit status.

    Raises:
        SlurmError: the folder or the allocation is not usable (nothing started).
    """
    folder = JobFolder(pathlib.Path(path))
    spec = folder.spec
    job = os.environ.get("SLURM_JOB_ID", "?")
    nodes = allocation_nodes()
    if len(nodes) < spec["nodes"]:
        raise SlurmError(
            f"the job asked for {spec['nodes']} nodes but has {len(nodes)} ({', '.join(nodes)})"
        )
    nodes = nodes[: spec["nodes"]]

    def stop(signum, frame):
        raise _Stop

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    agents = None
    status = 1
    try:
        endpoints: dict[str, str] = {}
        if len(nodes) > 1:
            agents = _start_agents(folder, spec)
            endpoints = _wait_for_agents(folder, spec, nodes[1:], agents)
        hosts = {
            name: {
                "node": nodes[number - 1],
                "endpoint": None if number == 1 else endpoints[nodes[number - 1]],
            }
            for name, number in spec["place"].items()
        }
        folder.write("placement.json", {"job": job, "coordinator": nodes[0], "hosts": hosts})
        _say(f"job {job} on {', '.join(nodes)}; coordinator on {nodes[0]}")
        for name, where in hosts.items():
            role = "coordinator" if where["endpoint"] is None else f"agent {where['endpoint']}"
            _say(f"host {name} -> {where['node']} ({role})")
        # from here on SIGTERM drains the run (the supervisor's handler); before its
        # handler is in place, it interrupts the start-up (fbp run then exits 130)
        for sig in previous:
            signal.signal(sig, signal.default_int_handler)
        found = threading.Event()
        threading.Thread(
            target=_publish_dashboard, args=(folder, nodes[0], found), daemon=True
        ).start()
        try:
            status = _coordinate(folder, spec, hosts)
        finally:
            found.set()
            (folder.path / "dashboard.json").unlink(missing_ok=True)
    except _Stop:
        _say("stopped before the run started (SIGTERM): nothing ran")
        status = 143
    except SlurmError as exc:
        _say(str(exc))
        status = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_agents(agents, job)
        folder.write(
            "result.json",
            {
                "job": job,
                "status": status,
                "ended": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            },
        )
    _say(f"job {job} ended with exit status {status}")
    return status


def _coordinate(folder: JobFolder, spec: dict, hosts: dict) -> int:
    from fbp.cli import main

    entries = [
        f"{name}={'local' if where['endpoint'] is None else where['endpoint']}"
        for name, where in hosts.items()
    ]
    command = ["run", str(folder.path / spec["graph"]), "--keys", spec["keys"], *spec["run"]]
    if entries:
        command[2:2] = ["--hosts", ",".join(entries)]
    return main(command)


def _publish_dashboard(folder: JobFolder, node: str, stop: threading.Event) -> None:
    """Copy the run's registration (it runs in this process) into the job folder."""
    from fbp.observe.runs import run_folder

    registration = run_folder() / f"{os.getpid()}.json"
    while not stop.wait(0.2):
        try:
            entry = json.loads(registration.read_text())
        except (OSError, ValueError):
            continue
        path = folder.path / "dashboard.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token
        with os.fdopen(fd, "w") as handle:
            json.dump({"node": node, "url": entry["url"], "token": entry["token"]}, handle)
        return


def _start_agents(folder: JobFolder, spec: dict) -> subprocess.Popen:
    for stale in (folder.path / "agents").glob("*.json"):
        stale.unlink()  # a requeued job must not read the last attempt's addresses
    others = spec["nodes"] - 1
    command = [
        "srun",
        f"--nodes={others}",
        f"--ntasks={others}",
        "--ntasks-per-node=1",
        "--relative=1",
        "--overlap",
        "--whole",
        "--kill-on-bad-exit=0",
        f"--job-name={AGENTS_STEP}",
        # each agent's output into agent-NODE.log (srun's %N is the host's name, which
        # nodes sharing a host have in common)
        "bash",
        "-c",
        'exec "$@" >"$0/agent-$SLURMD_NODENAME.log" 2>&1',
        str(folder.path),
        spec["python"],
        "-m",
        "fbp",
        "agent",
        "--listen",
        "tcp://0.0.0.0:0",
        "--announce",
        str(folder.path / "agents" / "{node}.json"),
        "--keys",
        spec["keys"],
    ]
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SlurmError(
            "`srun` not found inside the job: Slurm's client commands are "
            "needed on the compute nodes too"
        ) from None


def _wait_for_agents(folder: JobFolder, spec: dict, nodes: list[str], agents) -> dict[str, str]:
    """{node: endpoint} once every node's agent announced itself.

    Raises:
        SlurmError: the agents' step ended, or the timeout passed, first.
    """
    deadline = time.monotonic() + float(spec.get("agent_timeout", 120))
    endpoints: dict[str, str] = {}
    while len(endpoints) < len(nodes):
        for node in nodes:
            if node not in endpoints:
                announced = folder.read(f"agents/{node}.json")
                if announced:
                    endpoints[node] = announced["endpoint"]
        if len(endpoints) == len(nodes):
            break
        missing = [node for node in nodes if node not in endpoints]
        if agents.poll() is not None:
            raise SlurmError(
                f"the agents' step ended (exit status {agents.returncode}) before "
                f"{', '.join(missing)} answered{_agent_logs(folder, missing)}"
            )
        if time.monotonic() > deadline:
            raise SlurmError(
                f"no agent answered on {', '.join(missing)} within "
                f"{spec.get('agent_timeout', 120):g} s (raise --agent-timeout if nodes start "
                f"slowly){_agent_logs(folder, missing)}"
            )
        time.sleep(0.1)
    return endpoints


def _agent_logs(folder: JobFolder, nodes: list[str], lines: int = 5) -> str:
    text = ""
    for node in nodes:
        log = folder.path / f"agent-{node}.log"
        try:
            last = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            last = ["(no output)"]
        text += f"\n  {log.name}:" + "".join(f"\n    {line}" for line in last)
    return text


def _stop_agents(agents: subprocess.Popen | None, job: str) -> None:
    """End the agents' step: each agent gets SIGTERM, kills what it runs and removes its
    rings; a step that does not end in time is killed.

    The signal goes through `scancel --signal=TERM JOB.STEP`: a SIGTERM to srun itself
    makes it kill the step outright (SIGKILL), which would leave the agents no time.
    """
    if agents is None or agents.poll() is not None:
        return
    try:
        steps = slurm_command("squeue", "--noheader", "--steps", "-j", job, "-o", "%i %j")
    except SlurmError:
        steps = ""
    step = next(
        (line.split()[0] for line in steps.splitlines() if line.endswith(AGENTS_STEP)), None
    )
    if step is None:
        agents.send_signal(signal.SIGTERM)
    else:
        # scancel answers "invalid job id" when the step ends before it finishes asking
        subprocess.run(["scancel", "--signal=TERM", step], capture_output=True, timeout=30)
    try:
        agents.wait(AGENTS_STOP)
    except subprocess.TimeoutExpired:
        agents.kill()
        agents.wait()
