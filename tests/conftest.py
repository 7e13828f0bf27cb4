"""Fixtures shared by every test.

Two guards run around each test: it must use the installed package (not the source tree),
and it must leave no shared-memory segment and no child process behind.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

import fbp

REPO = pathlib.Path(__file__).resolve().parent.parent
SHM = pathlib.Path("/dev/shm")
# Segment names are `fbp<tag>-<owner pid>-...`. A tag per test session keeps this suite's
# leak check blind to segments of other fbp runs on the same machine; children inherit it.
os.environ["FBP_SHM_TAG"] = f"t{os.getpid()}"
SEGMENT_PREFIX = f"fbp{os.environ['FBP_SHM_TAG']}-"


def pytest_sessionstart(session):
    installed = pathlib.Path(fbp.__file__).resolve()
    if installed.parent == REPO / "fbp":
        raise pytest.UsageError(
            f"tests imported fbp from the source tree ({installed}); install the package "
            "(`pip install '.[test]'`) and run `pytest` from a virtual environment."
        )
    # Supervisors run inside this process start its janitor (fbp.runtime.janitor) once; it
    # lives as long as the session, so start it before any test counts child processes.
    from fbp.runtime.janitor import ensure_janitor

    ensure_janitor()


def fbp_segments() -> set[str]:
    """Names of shared-memory segments in /dev/shm created by this test session."""
    if not SHM.is_dir():
        return set()
    return {p.name for p in SHM.iterdir() if p.name.startswith(SEGMENT_PREFIX)}


def _is_janitor(entry: pathlib.Path) -> bool:
    try:
        return b"fbp.runtime.janitor" in (entry / "cmdline").read_bytes()
    except OSError:
        return False


def child_pids(root: int | None = None) -> set[int]:
    """All live descendants of `root` (default: this process), read from /proc."""
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; fields start after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z" or _is_janitor(entry):
            continue  # a janitor (fbp.runtime.janitor) outlives runs on purpose
        parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail the test if it leaves an fbp shared-memory segment or a child process behind."""
    segments_before = fbp_segments()
    children_before = child_pids()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked_segments = fbp_segments() - segments_before
        leaked_children = child_pids() - children_before
        if not (leaked_segments or leaked_children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in leaked_children:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for name in leaked_segments:
        try:
            (SHM / name).unlink()
        except FileNotFoundError:
            pass
    assert not leaked_segments, f"test leaked shared-memory segments: {sorted(leaked_segments)}"
    assert not leaked_children, f"test leaked child processes: {sorted(leaked_children)}"


FBP_EXE = str(pathlib.Path(sys.executable).parent / "fbp")


@pytest.fixture
def run_fbp():
    """Run the installed `fbp` console script; returns the CompletedProcess (text mode)."""

    def run(*args, timeout=60, check=False, **kwargs):
        return subprocess.run(
            [FBP_EXE, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            **kwargs,
        )

    return run
