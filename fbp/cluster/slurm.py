"""Networks on a Slurm allocation: submit, status and cancel, from a login node.

`fbp slurm submit FILE` checks the graph where it is typed (so a mistake is reported at
its file:line:col, not in a job log an hour later), maps the graph's `node=` names onto
the nodes of the allocation, writes a *job folder* and submits its batch script with
`sbatch --parsable`. Inside the allocation the script runs `fbp slurm job FOLDER`
(`fbp.cluster.slurm_job`): one `fbp agent` per other node under `srun`, then the
coordinator on the first node.

Placement: names in order of first appearance go to nodes 1, 2, ... of the allocation
(`--place NAME=K` says otherwise; several names may share a node). Node 1 is where the
batch script runs: the coordinator, its names and every process without `node=` run there
as `local`; each other node runs an agent.

The job folder must be on a file system every node sees (the submit directory usually
is). It holds:

    spec.json        what the job runs (written before sbatch; the job reads only this)
    graph.fbp|.json  a copy of the graph as it was checked: later edits do not change it
    job.sh           the batch script
    keys/            a CurveZMQ key pair made for this job (mode 0700): only this job's
                     coordinator, agents and links can talk to each other
    agents/          one announcement {node, endpoint, pid} per agent
    placement.json   which host name runs on which node (written once the agents answer)
    dashboard.json   where the running job's dashboard listens, with its token (0600)
    output.log       the batch step's output: the coordinator's messages and summary
    agent-NODE.log   each agent's output
    submitted.json   {job, submitted, command}
    result.json      {status, ...} written by the job when it ends

Slurm's accounting daemon is often missing (Debian's default), so nothing here uses
`sacct`: a job's outcome is read from `squeue --states=all` while the controller still
remembers it, and from `result.json` after that.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fbp.errors import FBPError

__all__ = [
    "JobFolder",
    "JobState",
    "SlurmError",
    "cancel",
    "find_jobs",
    "map_nodes",
    "query",
    "submit",
]

DEFAULT_BASE = "fbp-slurm"
DRAIN_BEFORE_LIMIT = 60  # seconds before the time limit at which the job is asked to drain
_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}


class SlurmError(FBPError):
    """A Slurm command is missing or refused, or a job cannot be placed or found."""


def slurm_command(*args: str, timeout: float = 30.0) -> str:
    """Run a Slurm client command and return its stdout.

    Raises:
        SlurmError: the command is not installed, failed (with its message) or hung.
    """
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(
            f"`{args[0]}` not found: fbp slurm needs Slurm's client commands (sbatch, "
            "squeue, scancel, scontrol) on PATH; run it on a login node of the cluster"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{shlex.join(args)}` did not answer within {timeout:g} s") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise SlurmError(f"`{shlex.join(args)}` failed: {message}")
    return done.stdout


# -- placement ------------------------------------------------------------------------


def node_names(graph) -> list[str]:
    """The graph's `node=` names, in order of first appearance."""
    names: list[str] = []
    for process in graph.processes.values():
        node = process.metadata.get("node")
        if node is not None and str(node).strip() not in names:
            names.append(str(node).strip())
    return names


def map_nodes(names: list[str], nodes: int | None, place: dict[str, int]) -> tuple[dict, int]:
    """Map host names onto the allocation's nodes (1-based; node 1 runs the coordinator).

    Args:
        names: the graph's node= names (`node_names`).
        nodes: nodes asked for (`--nodes`), or None: as many as the mapping uses.
        place: explicit `--place NAME=K` entries.

    Returns:
        ({name: node number}, number of nodes to ask for).

    Raises:
        SlurmError: an unknown name in `place`, a node number out of range, or more
            names than nodes without `--place`.
    """
    for name, number in place.items():
        if name not in names:
            raise SlurmError(
                f"--place {name}={number}: the graph places nothing on node={name!r} "
                f"(its node names: {', '.join(names) or 'none'})"
            )
        if number < 1 or (nodes is not None and number > nodes):
            limit = f"1..{nodes}" if nodes is not None else "1 or more"
            raise SlurmError(f"--place {name}={number}: node numbers are {limit}")
    mapping = dict(place)
    free = [name for name in names if name not in mapping]
    taken = set(mapping.values())
    number = 1
    for name in free:
        while number in taken:
            number += 1
        mapping[name] = number
        taken.add(number)
    needed = max(mapping.values(), default=1)
    if nodes is None:
        nodes = needed
    elif needed > nodes:
        raise SlurmError(
            f"the graph places processes on {len(names)} hosts ({', '.join(names)}) but "
            f"--nodes is {nodes}: ask for --nodes {needed}, or share nodes with "
            f"--place NAME=K (e.g. --place {names[-1]}=1)"
        )
    return {name: mapping[name] for name in names}, nodes


def parse_place(entries: list[str]) -> dict[str, int]:
    """Read `--place NAME=K` options (each may hold several, comma-separated).

    Raises:
        SlurmError: an entry that is not NAME=K with K a number.
    """
    place: dict[str, int] = {}
    for entry in (part.strip() for text in entries for part in text.split(",")):
        if not entry:
            continue
        name, sep, value = entry.partition("=")
        if not sep or not value.strip().isdigit() or not name.strip():
            raise SlurmError(
                f"--place {entry!r} must look like NAME=K: the node= name and the node's "
                "number in the allocation (1 is the coordinator's node), e.g. --place gpu=2"
            )
        place[name.strip()] = int(value)
    return place


# -- the job folder -------------------------------------------------------------------


@dataclass
class JobFolder:
    """A submitted job's folder (see the module docstring for its files)."""

    path: pathlib.Path

    def read(self, name: str) -> dict | None:
        """One of the folder's JSON files, or None while it does not exist."""
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def write(self, name: str, data: dict) -> None:
        """Write a JSON file atomically (readers on other nodes never see half of it)."""
        temporary = self.path / f".{name}.tmp{os.getpid()}"
        temporary.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(temporary, self.path / name)

    @property
    def spec(self) -> dict:
        """What the job runs (spec.json).

        Raises:
            SlurmError: the folder has no readable spec.json.
        """
        spec = self.read("spec.json")
        if spec is None:
            raise SlurmError(f"{self.path}: not an fbp slurm job folder (no spec.json)")
        return spec

    @property
    def job_id(self) -> str | None:
        """The Slurm job id, once sbatch has answered."""
        submitted = self.read("submitted.json")
        return str(submitted["job"]) if submitted else None


def _new_folder(base: pathlib.Path, graph_file: str) -> JobFolder:
    stem = pathlib.Path(graph_file).stem or "graph"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        path = base / (f"{stem}-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            path.mkdir(parents=True)
            return JobFolder(path)
        except FileExistsError:
            continue
    raise SlurmError(f"cannot make a job folder under {base}")


def job_script(folder: JobFolder, spec: dict) -> str:
    """The batch script: options as #SBATCH lines (sbatch's own command line wins), then
    the batch step becomes `fbp slurm job FOLDER`, so scancel's signals reach it."""
    path = folder.path
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=fbp-{spec['name']}",
        f"#SBATCH --nodes={spec['nodes']}",
        # --cpus-per-task=N then means N CPUs on every node, for the processes there
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --output={path / 'output.log'}",
        # before the time limit: drain like Ctrl-C, so files are closed cleanly
        f"#SBATCH --signal=B:TERM@{DRAIN_BEFORE_LIMIT}",
        f"#SBATCH --comment=fbp:{path}",
        f"# written by `fbp slurm submit` on {socket.gethostname()} at {spec['submitted']}",
        f"# graph: {spec['source']}; what runs where: {path / 'spec.json'}",
        f"exec {shlex.quote(spec['python'])} -m fbp slurm job {shlex.quote(str(path))}",
        "",
    ]
    return "\n".join(lines)


def submit(
    graph_file: str,
    *,
    nodes: int | None = None,
    place: dict[str, int] | None = None,
    run_options: Sequence[str] = (),
    paths: Sequence[str] = (),
    sets: Sequence[str] = (),
    keys: str | None = None,
    sbatch_options: Sequence[str] = (),
    base: str = DEFAULT_BASE,
    agent_timeout: float = 120.0,
    dry_run: bool = False,
    log=print,
) -> JobFolder:
    """Check a graph, write its job folder, submit it; returns the folder.

    Args:
        graph_file: the .fbp or JSON graph.
        nodes: nodes to ask for, or None for as many as the graph's node= names need.
        place: `--place` entries {name: node number}.
        run_options: further `fbp run` options for the coordinator (e.g. --timeout 60).
        paths: component folders (made absolute: nodes resolve them on a shared FS).
        sets: `--set PROC.PORT=VALUE` options, checked here and passed on.
        keys: a key folder to use instead of a new one for this job.
        sbatch_options: passed to sbatch as given (partition, time, CPUs, ...).
        base: where job folders are made.
        agent_timeout: seconds the job waits for its agents to start.
        dry_run: write the folder and show the script and placement, submit nothing.
        log: callable(str) for the report.

    Raises:
        GraphError, ExceptionGroup: the graph does not check (nothing is submitted).
        SlurmError: placement or sbatch failed (the folder is removed).
    """
    from fbp.cli.run import apply_sets
    from fbp.cluster.keys import generate, load_keys
    from fbp.graph import load
    from fbp.registry import Registry
    from fbp.runtime.plan import make_plan

    graph = load(graph_file)
    apply_sets(graph, list(sets))
    paths = [os.path.abspath(p) for p in paths]
    plan = make_plan(graph, Registry(paths))
    names = node_names(graph)
    mapping, nodes = map_nodes(names, nodes, place or {})
    if keys is not None:
        load_keys(keys)  # a bad folder fails here, not inside the job
    folder = _new_folder(pathlib.Path(base).resolve(), graph_file)
    try:
        copy = folder.path / ("graph" + (pathlib.Path(graph_file).suffix or ".fbp"))
        shutil.copyfile(graph_file, copy)
        if keys is None:
            generate(folder.path / "keys")
        (folder.path / "agents").mkdir()
        spec = {
            "name": re.sub(r"[^A-Za-z0-9_.-]", "_", pathlib.Path(graph_file).stem) or "graph",
            "source": os.path.abspath(graph_file),
            "graph": copy.name,
            "nodes": nodes,
            "place": mapping,
            "processes": {
                name: [p for p in plan.processes if _node_of(graph, p) == name] for name in names
            },
            "unplaced": [p for p in plan.processes if _node_of(graph, p) is None],
            "run": [
                *[option for text in sets for option in ("--set", text)],
                *[option for path in paths for option in ("--path", path)],
                *run_options,
            ],
            "keys": os.path.abspath(keys) if keys else str(folder.path / "keys"),
            "python": sys.executable,
            "agent_timeout": agent_timeout,
            "submitted": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        folder.write("spec.json", spec)
        script = folder.path / "job.sh"
        script.write_text(job_script(folder, spec))
        command = ["sbatch", "--parsable", *sbatch_options, str(script)]
        if dry_run:
            log(f"fbp slurm: not submitted (--dry-run): {graph_file} on {nodes} node(s)")
            for line in describe_plan(spec):
                log(f"  {line}")
            log(f"  folder {_shown(folder.path)}; its batch script, {_shown(script)}:")
            log("".join(f"    {line}\n" for line in script.read_text().splitlines()).rstrip())
            log(f"  submit it as it is with: {shlex.join(command[:1] + command[2:])}")
            return folder
        job = slurm_command(*command).strip().split(";")[0]
    except BaseException:
        shutil.rmtree(folder.path, ignore_errors=True)
        raise
    folder.write("submitted.json", {"job": job, "submitted": spec["submitted"], "command": command})
    log(f"fbp slurm: submitted job {job}: {graph_file} on {nodes} node(s)")
    for line in describe_plan(spec):
        log(f"  {line}")
    log(f"  folder {_shown(folder.path)}: output.log; placement.json once it runs")
    log(f"  fbp slurm status {job}    fbp slurm cancel {job}")
    return folder


def _node_of(graph, process: str) -> str | None:
    node = graph.processes[process].metadata.get("node")
    return None if node is None else str(node).strip()


def describe_plan(spec: dict) -> list[str]:
    """Which processes run on which node of the allocation, from a job's spec."""
    lines = []
    for number in range(1, spec["nodes"] + 1):
        names = [name for name, k in spec["place"].items() if k == number]
        processes = [p for name in names for p in spec["processes"][name]]
        role = "coordinator" if number == 1 else "agent"
        if number == 1:
            processes += spec["unplaced"]
        what = ", ".join(names) + ": " if names else ""
        lines.append(f"node {number} ({role}): {what}{', '.join(processes) or 'nothing'}")
    return lines


def _shown(path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(path)


# -- finding jobs and their state -----------------------------------------------------


def find_jobs(references: list[str], base: str = DEFAULT_BASE) -> list[JobFolder]:
    """Job folders by job id or folder path; all under `base` (newest last) when none.

    Raises:
        SlurmError: a reference that is neither a job folder nor a job id known under
            `base` or to squeue (with what to do).
    """
    known = sorted(
        (JobFolder(path.parent) for path in pathlib.Path(base).glob("*/submitted.json")),
        key=lambda folder: (folder.read("submitted.json") or {}).get("submitted", ""),
    )
    if not references:
        return known
    found = []
    for reference in references:
        path = pathlib.Path(reference)
        if (path / "spec.json").is_file():
            found.append(JobFolder(path))
            continue
        matches = [folder for folder in known if folder.job_id == reference]
        if not matches and reference.isdigit():
            folder = _folder_from_squeue(reference)
            matches = [folder] if folder else []
        if not matches:
            raise SlurmError(
                f"no fbp job {reference!r}: not a job folder, and no folder under {base}/ "
                "has that job id (give the folder, or --dir where the job was submitted)"
            )
        found.append(matches[-1])
    return found


def _folder_from_squeue(job: str) -> JobFolder | None:
    try:
        comment = slurm_command("squeue", "--noheader", "--states=all", "-j", job, "-o", "%k")
    except SlurmError:
        return None
    comment = comment.strip()
    if comment.startswith("fbp:") and (pathlib.Path(comment[4:]) / "spec.json").is_file():
        return JobFolder(pathlib.Path(comment[4:]))
    return None


@dataclass
class JobState:
    """What Slurm and the job folder say about one job."""

    job: str
    state: str  # squeue's state (PENDING, RUNNING, COMPLETED, ...) or ENDED
    elapsed: str = ""
    nodelist: str = ""
    reason: str = ""
    exit_status: int | None = None  # the coordinator's, from result.json

    @property
    def active(self) -> bool:
        """True while Slurm still has the job queued or running."""
        return self.state in _ACTIVE


def query(folder: JobFolder) -> JobState:
    """The job's state now: squeue while the controller knows it, else result.json.

    Raises:
        SlurmError: the folder was never submitted, or squeue failed.
    """
    job = folder.job_id
    if job is None:
        raise SlurmError(f"{folder.path}: never submitted (no submitted.json)")
    result = folder.read("result.json")
    exit_status = None if result is None else int(result["status"])
    try:
        line = slurm_command(
            "squeue", "--noheader", "--states=all", "-j", job, "-o", "%i|%T|%M|%N|%r"
        ).strip()
    except SlurmError as exc:
        if "Invalid job id" not in str(exc):
            raise
        line = ""  # the controller has forgotten it (MinJobAge)
    for row in line.splitlines():
        fields = row.split("|")
        if fields[0] == job:
            state, elapsed, nodelist, reason = fields[1:5]
            return JobState(job, state, elapsed, nodelist, reason.strip("()"), exit_status)
    return JobState(job, "ENDED", exit_status=exit_status)


def status_lines(folder: JobFolder, state: JobState, tail: int = 5) -> list[str]:
    """A readable report of one job: state, placement, and the end of its output."""
    spec = folder.spec
    head = f"job {state.job} ({spec['source']}): {state.state}"
    if state.elapsed:
        head += f" for {state.elapsed}"
    if state.nodelist and state.state not in ("PENDING",):
        head += f" on {state.nodelist}"
    if state.state == "PENDING" and state.reason:
        head += f" ({state.reason})"
    if state.exit_status is not None:
        head += f", exit status {state.exit_status}"
    elif not state.active:
        head += ", no result recorded (cancelled before it started, or killed)"
    lines = [head, f"  folder {_shown(folder.path)}"]
    placement = folder.read("placement.json")
    if placement:
        lines.append(f"  coordinator on {placement['coordinator']}")
        for name, where in placement["hosts"].items():
            role = "coordinator" if where["endpoint"] is None else f"agent {where['endpoint']}"
            lines.append(f"  host {name} -> {where['node']} ({role})")
    else:
        lines += [f"  {line}" for line in describe_plan(spec)]
    dashboard = folder.read("dashboard.json") if state.active else None
    if dashboard:
        port = dashboard["url"].rsplit(":", 1)[1]
        node, token = dashboard["node"], dashboard["token"]
        lines += [
            f"  dashboard on {node}, port {port}: ssh -N -L {port}:127.0.0.1:{port} {node}",
            f"    then open http://127.0.0.1:{port}/?token={token}",
            f"    or: fbp top --url http://127.0.0.1:{port} --token {token}",
        ]
    output = folder.path / "output.log"
    if tail and output.is_file():
        last = output.read_text(errors="replace").splitlines()[-tail:]
        lines.append(f"  {_shown(output)}, last lines:")
        lines += [f"    {text}" for text in last]
    return lines


# -- cancelling -----------------------------------------------------------------------


def cancel(folder: JobFolder, *, force: bool = False, timeout: float = 60.0, log=print) -> JobState:
    """Cancel a job: a running one drains first (like Ctrl-C), a pending one just goes.

    The batch step gets SIGTERM (`scancel --batch --signal=TERM`): sources stop on every
    host, the rings drain, files close; then the job ends by itself. After `timeout`
    seconds, or at once with `force`, `scancel` ends it outright (Slurm kills every step).

    Returns:
        The job's state after cancelling.

    Raises:
        SlurmError: the job is unknown or scancel failed.
    """
    state = query(folder)
    if not state.active:
        log(f"fbp slurm: job {state.job} already ended ({state.state})")
        return state
    if force or state.state != "RUNNING":
        slurm_command("scancel", state.job)
        log(f"fbp slurm: job {state.job} cancelled ({state.state.lower()})")
    else:
        slurm_command("scancel", "--batch", "--signal=TERM", state.job)
        log(f"fbp slurm: job {state.job} asked to drain and stop (up to {timeout:g} s)")
    deadline = time.monotonic() + timeout
    while state.active and time.monotonic() < deadline:
        time.sleep(0.5)
        state = query(folder)
    if state.active:
        slurm_command("scancel", state.job)
        log(f"fbp slurm: job {state.job} did not stop within {timeout:g} s: cancelled outright")
        while state.active and time.monotonic() < deadline + 30:
            time.sleep(0.5)
            state = query(folder)
    log(f"fbp slurm: job {state.job} {state.state.lower()}")
    return state
