"""`fbp doctor`: find and remove shared-memory segments left behind by dead fbp processes."""

from __future__ import annotations

import argparse

from fbp.ring import list_segments, remove_stale_segments

COMMAND = "doctor"
HELP = "list fbp shared-memory segments and remove those whose owner died"
DESCRIPTION = """\
List the fbp shared-memory segments in /dev/shm (rings of running or crashed networks)
with their owner process and whether it is still alive, and remove the stale ones: a
segment whose owner is dead can never be unlinked by its owner any more.

Segment names are fbp{TAG}-{owner pid}-{random}[-{suffix}]; TAG comes from the
FBP_SHM_TAG environment variable (empty by default). Only segments with the current
tag are considered unless --all-tags is given. Segments of live owners are never touched.

Exit status: 0 when nothing stale remains, 1 with --dry-run if stale segments exist.

examples:
  fbp doctor                 # list, and remove segments of dead owners
  fbp doctor --dry-run       # only list; say what would be removed
  fbp doctor --all-tags      # also look at segments of other FBP_SHM_TAG values
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `fbp doctor`."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list segments and what would be removed, but remove nothing",
    )
    parser.add_argument(
        "--all-tags",
        action="store_true",
        help="consider segments of every FBP_SHM_TAG, not only the current one",
    )


def run(args: argparse.Namespace) -> int:
    """List segments, remove the stale ones unless --dry-run; return the exit status.

    Raises:
        OSError: a stale segment cannot be removed (e.g. it belongs to another user).
    """
    segments = list_segments(all_tags=args.all_tags)
    if not segments:
        print("no fbp shared-memory segments in /dev/shm")
        return 0
    removed = set() if args.dry_run else set(remove_stale_segments(all_tags=args.all_tags))
    stale = 0
    print(f"{'segment':<48} {'bytes':>12} {'owner':>8}  state")
    for info in segments:
        if info.owner_alive:
            state = "owner alive"
        elif info.name in removed:
            state = "owner dead: removed"
        else:
            state = "owner dead: stale"
            stale += 1
        print(f"{info.name:<48} {info.size:>12} {info.owner_pid:>8}  {state}")
    return 1 if stale else 0
