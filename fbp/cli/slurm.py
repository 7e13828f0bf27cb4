"""`fbp slurm`: run a network on a Slurm allocation."""

from __future__ import annotations

import argparse
import sys

COMMAND = "slurm"
HELP = "submit a network to Slurm (one agent per node), show its status, cancel it"
DESCRIPTION = """\
Run a graph across the nodes of a Slurm allocation. `submit` checks the graph here, maps
its node= names onto the allocation's nodes, writes a job folder (under ./fbp-slurm/, on a
file system every node sees) and submits a batch script with `sbatch --parsable`. In the
job, the first node runs the coordinator (`fbp run --hosts ...`: its names and every
process without node= run there) and `srun` starts one `fbp agent` on each other node;
connections between nodes become lossless ZeroMQ links, encrypted with a key pair made
for the job (docs/hosts.md, docs/slurm.md).

Placement: node= names, in order of first appearance in the graph, go to nodes 1, 2, ...;
--place NAME=K puts a name on node K (names may share a node). --nodes defaults to as many
nodes as the names need.

Any option fbp does not know is passed to sbatch as it is (write them as --opt=value,
after FILE): --partition=..., --time=..., --cpus-per-task=N (N CPUs on every node, for the
processes there), --exclusive, --account=... Everything after `--` goes to sbatch too, also
names fbp uses itself (e.g. `-- --quiet -q normal` for sbatch's --quiet and --qos). The job
drains like Ctrl-C 60 s before its time limit, and on `fbp slurm cancel`.

Slurm's accounting (sacct) is not needed: `status` asks squeue while the controller knows
the job and reads the job folder's result.json afterwards.

actions:
  submit FILE     check, write the job folder, sbatch it; prints the job id and placement
  status [JOB]    state, nodes, placement and the last lines of output (JOB: an id or a
                  job folder; without: every job under --dir)
  cancel JOB      drain and stop a running job (sources stop, files close), then end it
                  (after --drain-timeout); --force ends it at once; a pending job is
                  simply removed
  job FOLDER      what the batch script runs inside the allocation (not for typing)

exit status: submit 0 once sbatch accepted the job; status 0 (1 for an unknown job);
cancel 0 when the job has ended.

examples:
  fbp slurm submit graphs/two_hosts.fbp --partition=beamline --time=02:00:00
  fbp slurm submit graphs/two_hosts.fbp --dry-run     # the script and placement only
  fbp slurm submit split.fbp --nodes 3 --place store=1 --cpus-per-task=16 --set Sim.FRAMES=0
  fbp slurm status 4242
  fbp slurm cancel 4242
"""

# sbatch options arrive as arguments fbp does not declare
ACCEPTS_UNKNOWN = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of `fbp slurm`."""
    from fbp.cli.run import add_run_options

    parser.add_argument("action", choices=["submit", "status", "cancel", "job"], help="what to do")
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="FILE|JOB",
        help="submit: the graph; status: job ids or folders; cancel: a job id or folder",
    )
    parser.add_argument(
        "--nodes", type=int, metavar="N", help="nodes to ask for (default: as the graph needs)"
    )
    parser.add_argument(
        "--place",
        action="append",
        default=[],
        metavar="NAME=K",
        help="run the processes with node=NAME on node K of the allocation (1: the "
        "coordinator's); repeatable or comma-separated",
    )
    parser.add_argument(
        "--dir",
        default="fbp-slurm",
        metavar="DIR",
        help="where job folders are made and looked for (default ./fbp-slurm; must be "
        "visible on every node)",
    )
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="seconds the job waits for its agents to start (default 120)",
    )
    add_run_options(parser, keys_help="use this CurveZMQ key folder instead of a new one per job")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="submit: check and write the job folder, print the batch script, submit nothing",
    )
    parser.add_argument(
        "--force", action="store_true", help="cancel: end the job at once, without draining"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="cancel: seconds to let the job drain before ending it outright (default 60)",
    )


def run(args) -> int:
    """Carry out one action; SlurmError and GraphError are printed by the CLI."""
    from fbp.cluster import slurm

    extra = list(getattr(args, "unknown", []))
    if extra and args.action != "submit":
        print(f"fbp slurm {args.action}: unknown options {' '.join(extra)}", file=sys.stderr)
        return 2
    if args.action == "submit":
        return _submit(args, extra)
    if args.action == "job":
        from fbp.cluster.slurm_job import run_job

        if len(args.targets) != 1:
            print("fbp slurm job: give the job folder", file=sys.stderr)
            return 2
        return run_job(args.targets[0])
    if args.action == "cancel" and len(args.targets) != 1:
        print("fbp slurm cancel: give one job id or job folder", file=sys.stderr)
        return 2
    folders = slurm.find_jobs(args.targets, args.dir)
    if args.action == "cancel":
        state = slurm.cancel(folders[0], force=args.force, timeout=args.drain_timeout)
        return 1 if state.active else 0
    if not folders:
        print(f"fbp slurm: no jobs under {args.dir}/ (submit one with `fbp slurm submit FILE`)")
        return 0
    for folder in folders:
        for line in slurm.status_lines(folder, slurm.query(folder)):
            print(line)
    return 0


def _submit(args, sbatch_options: list[str]) -> int:
    from fbp.cli.run import run_option_list
    from fbp.cluster import slurm
    from fbp.errors import GraphError

    if len(args.targets) != 1:
        print("fbp slurm submit: give one graph file", file=sys.stderr)
        return 2
    try:
        slurm.submit(
            args.targets[0],
            nodes=args.nodes,
            place=slurm.parse_place(args.place),
            run_options=run_option_list(args),
            paths=args.path,
            sets=args.set,
            keys=args.keys,
            sbatch_options=sbatch_options,
            base=args.dir,
            agent_timeout=args.agent_timeout,
            dry_run=args.dry_run,
        )
    except ExceptionGroup as group:
        for problem in group.exceptions:
            print(problem.format() if isinstance(problem, GraphError) else problem, file=sys.stderr)
        print(
            f"fbp slurm: {len(group.exceptions)} problem(s); nothing was submitted", file=sys.stderr
        )
        return 1
    return 0
