"""What components print, as `network:output` messages.

Component processes inherit the runtime's standard output (as under `fbp run`). The
forwarder puts a pipe in its place: each line read from it is still written to the
original stdout and also sent to every client as `network:output`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from fbp.protocol.messages import STRING_CHARACTERS_SENT, message

__all__ = ["OutputForwarder"]


class OutputForwarder(threading.Thread):
    """Capture file descriptor 1 and forward its lines.

    Args:
        emit: callable(message) that sends to every client (thread-safe).
    """

    def __init__(self, emit: Callable[[dict], None]) -> None:
        super().__init__(name="fbp-output-forwarder", daemon=True)
        self.emit = emit
        sys.stdout.flush()
        self.read_fd, write_fd = os.pipe()
        self.original_fd = os.dup(1)
        os.dup2(write_fd, 1)
        os.close(write_fd)

    def run(self) -> None:
        pending = b""
        while chunk := os.read(self.read_fd, 65536):
            try:
                os.write(self.original_fd, chunk)
            except OSError:
                pass  # nobody reads our stdout any more; clients still get the lines
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._send(line)
        if pending:
            self._send(pending)
        os.close(self.read_fd)

    def _send(self, line: bytes) -> None:
        text = line.decode(errors="replace")[:STRING_CHARACTERS_SENT]
        self.emit(message("network", "output", {"message": text, "type": "message"}))

    def close(self) -> None:
        """Give fd 1 back; the thread ends once every writer (children too) has let go."""
        sys.stdout.flush()
        os.dup2(self.original_fd, 1)
        os.close(self.original_fd)
        self.join(2)
