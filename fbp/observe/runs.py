"""Where running networks can be found: one small JSON file per `fbp run`.

Each run that serves its observation endpoint writes `<pid>.json` = {pid, graph, file,
url, token, started} into the user's run folder (`$XDG_RUNTIME_DIR/fbp/runs`, else
`/tmp/fbp-runs-<uid>`, mode 0700: the token is a secret) and removes it at the end. A file
whose process is gone (killed) is ignored and removed by the next look.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import time

__all__ = ["RunEntry", "find_run", "list_runs", "register_run", "run_folder"]

RunEntry = dict


def run_folder() -> pathlib.Path:
    """The user's folder of run files (created, private)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = (
        pathlib.Path(base) / "fbp" / "runs"
        if base and os.path.isdir(base)
        else pathlib.Path(tempfile.gettempdir()) / f"fbp-runs-{os.getuid()}"
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def register_run(graph: str, file: str, url: str, token: str) -> pathlib.Path:
    """Announce this process's run; returns the file to remove at the end."""
    path = run_folder() / f"{os.getpid()}.json"
    entry = {
        "pid": os.getpid(),
        "graph": graph,
        "file": file,
        "url": url,
        "token": token,
        "started": time.time(),
    }
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(entry, handle)
    os.replace(temporary, path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs() -> list[RunEntry]:
    """Every live run of this user, oldest first (stale files are removed)."""
    runs = []
    for path in sorted(run_folder().glob("*.json")):
        try:
            entry = json.loads(path.read_text())
            pid = int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(pid):
            path.unlink(missing_ok=True)
            continue
        runs.append(entry)
    return sorted(runs, key=lambda entry: entry.get("started", 0))


def find_run(which: str | None = None) -> RunEntry:
    """The run a user means: the only one, or the one whose pid or graph name is `which`.

    Raises:
        LookupError: no run, or several and `which` does not pick one (the message lists
            them).
    """
    runs = list_runs()
    if which:
        chosen = [
            run
            for run in runs
            if str(run["pid"]) == which
            or run.get("graph") == which
            or pathlib.Path(run.get("file", "")).name == which
        ]
    else:
        chosen = runs
    if len(chosen) == 1:
        return chosen[0]
    listing = "\n".join(
        f"  pid {run['pid']}: {run.get('graph')} ({run.get('file')})" for run in runs
    )
    if not runs:
        raise LookupError("no fbp run is running for this user (start one with `fbp run FILE`)")
    if not chosen:
        raise LookupError(f"no running network matches {which!r}; running:\n{listing}")
    raise LookupError(f"several networks are running; name one by pid or graph:\n{listing}")
