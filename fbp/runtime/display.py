"""Showing a run: a live rich table on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.live import Live

from fbp.runtime.status import StatusBoard, render_tables

__all__ = ["LiveDisplay", "PlainLog", "stderr_console"]


def stderr_console() -> Console:
    """The console runtime messages go to: stderr, so stdout stays the components' own."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


class LiveDisplay:
    """A status table redrawn a few times a second on the terminal (stderr)."""

    def __init__(self) -> None:
        self.console = stderr_console()
        self.live = Live(
            console=self.console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def update(self, board: StatusBoard) -> None:
        """Redraw from the board."""
        self.live.update(render_tables(board))

    def log(self, message: str) -> None:
        """A runtime message above the table."""
        self.live.console.print(message, markup=False)

    def stop(self) -> None:
        """Remove the live table (the final summary is printed separately)."""
        self.live.stop()


class PlainLog:
    """Runtime messages as plain lines on stderr."""

    def __call__(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
