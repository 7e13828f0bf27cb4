"""The fbp exception family.

Every error a user can cause derives from `FBPError`. Errors that have a natural built-in
counterpart inherit it too (msgpack's habit), so callers may catch either.
"""

from __future__ import annotations


class FBPError(Exception):
    """Base class of every error fbp raises on purpose."""


class GraphError(FBPError, ValueError):
    """A problem in a graph, located in its source text.

    Attributes:
        message: what rule was broken, with the bad value and what would be valid.
        file: path of the `.fbp`/JSON file, or "<string>".
        line: 1-based line number, or None when the problem has no single location.
        col: 1-based column number, or None.
        source_line: the text of that line, shown with a caret under `col`.
        hint: what to do about it, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
        source_line: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file if file is not None else "<string>"
        self.line = line
        self.col = col
        self.source_line = source_line
        self.hint = hint
        super().__init__(self.format())

    @property
    def location(self) -> str:
        """`file:line:col`, as far as it is known."""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def format(self) -> str:
        """Render as `file:line:col: error: message`, the source line, a caret and the hint."""
        text = f"{self.location}: error: {self.message}"
        if self.source_line is not None:
            shown = self.source_line.rstrip("\n").expandtabs(1)
            text += f"\n    {shown}"
            if self.col is not None:
                text += "\n    " + " " * max(self.col - 1, 0) + "^"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ComponentError(FBPError, LookupError):
    """A component cannot be found, loaded or declared correctly."""


class PortTypeError(FBPError, TypeError):
    """A value or a connection does not fit a port's declared type."""


class PortError(FBPError):
    """Base of the errors a port operation raises (modelled on trio's channel errors)."""


class ClosedPort(PortError):
    """This side closed the port and then used it again."""


class BrokenConnection(PortError):
    """The other side went away: the consumer closed, so nothing sent can be delivered."""


class EndOfStream(PortError):
    """The producer closed and every record has been received."""


class RingFull(FBPError, TimeoutError):
    """A ring had no space before the timeout expired."""


class RingEmpty(FBPError, TimeoutError):
    """A ring had no record before the timeout expired."""


class RecordTooLarge(FBPError, ValueError):
    """A record can never fit in the ring, however long one waits."""


class NetworkError(FBPError, RuntimeError):
    """A running network failed; `fbp run` exits non-zero with its summary."""
