"""A watcher that unlinks a process's shared-memory segments when the process is killed.

A supervisor unlinks its rings when it ends, even on an exception; only `kill -9` (or a
crash of the interpreter) skips that. So every process that creates rings starts one
janitor: `python -m fbp.runtime.janitor PID`, in its own session (a Ctrl-C or a kill of
the run's process group does not reach it), reading a pipe from its owner. When the pipe
closes the owner has left (normally, or killed), and the janitor unlinks every fbp
segment still named with the owner's pid (`fbp-...-{pid}-...`, fbp.ring.new_segment_name):
normally none, but also those of a thread that could not finish (an agent's run).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time

__all__ = ["ensure_janitor"]

_DONE = b"done"
_lock = threading.Lock()
_janitor: subprocess.Popen | None = None


def ensure_janitor() -> None:
    """Start this process's janitor once (later calls do nothing); best effort."""
    global _janitor
    with _lock:
        if _janitor is not None and _janitor.poll() is None:
            return
        try:
            _janitor = subprocess.Popen(
                [sys.executable, "-P", "-m", "fbp.runtime.janitor", str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            return  # segments are still removed by the next run or `fbp doctor`
        atexit.register(_release, _janitor)


def _release(janitor: subprocess.Popen) -> None:
    try:
        janitor.stdin.write(_DONE)
        janitor.stdin.close()
    except (OSError, ValueError):
        pass


def _watch(owner: int) -> int:
    while sys.stdin.buffer.read1(64):
        pass
    from fbp.ring import _pid_alive, remove_segments_of

    # the pipe closes as the owner exits; its segments are garbage once it is gone
    deadline = time.monotonic() + 30.0
    while _pid_alive(owner) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _pid_alive(owner):
        remove_segments_of(owner)
    return 0


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1])))
