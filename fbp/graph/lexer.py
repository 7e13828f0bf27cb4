"""Character classes of the `.fbp` language and positions in source text.

The language has no separate token stream: which characters form a name depends on where it
stands (a process name may contain `-`, a port name `.`), exactly as in the reference
grammar. This module holds those classes and maps offsets to line/column for messages.
"""

from __future__ import annotations

import bisect
import re
import string

from fbp.graph.model import Location

LETTERS = frozenset(string.ascii_letters)
DIGITS = frozenset(string.digits)
NAME_START = LETTERS | {"_"}
NODE_CHARS = LETTERS | DIGITS | {"_", "-"}
PORT_CHARS = LETTERS | DIGITS | {"_", "."}
COMPONENT_CHARS = LETTERS | DIGITS | {"_", "-", "/"}
# The reference allows only [a-zA-Z/=_,0-9] in metadata; we also accept '-' and '.' so that
# x/y can be negative or fractional (a documented deviation).
REFERENCE_METADATA_CHARS = LETTERS | DIGITS | {"/", "=", "_", ","}
METADATA_CHARS = REFERENCE_METADATA_CHARS | {"-", "."}
ANNOTATION_KEY_CHARS = LETTERS | DIGITS | {"-", "_"}
NEWLINES = frozenset("\n\r\u2028\u2029")
JSON_WHITESPACE = frozenset(" \t\n\r")

NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
PORT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
COMPONENT_NAME = re.compile(r"[A-Za-z0-9_\-/]*\Z")
METADATA_TEXT = re.compile(r"[A-Za-z0-9_/\-.]*\Z")
ANNOTATION_KEY = re.compile(r"[A-Za-z0-9_\-]+\Z")
_LINE_BREAK = re.compile("\r\n|[\n\r\u2028\u2029]")


class SourceText:
    """Text of one graph file with offset -> (line, column) lookup."""

    def __init__(self, text: str, file: str = "<string>") -> None:
        self.text = text
        self.file = file
        # Line breaks as the reference counts them: \r\n is one, lone \r, \u2028 and \u2029
        # each end a line too.
        self._line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
        # Backtracking asks for the same places many times; locations are immutable.
        self._locations: dict[int, Location] = {}

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of `offset`."""
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def line_text(self, line: int) -> str:
        """Text of the 1-based `line`, without its line break."""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] if line < len(self._line_starts) else len(self.text)
        return self.text[start:end].rstrip("\r\n\u2028\u2029")

    def line_end(self, offset: int) -> int:
        """Offset of the line break (or end of text) of the line holding `offset`."""
        line, _ = self.line_col(offset)
        return self._line_starts[line - 1] + len(self.line_text(line))

    def location(self, offset: int) -> Location:
        """Location of `offset`, with the line's text for a caret display."""
        found = self._locations.get(offset)
        if found is None:
            line, col = self.line_col(offset)
            found = Location(self.file, line, col, self.line_text(line))
            self._locations[offset] = found
        return found


def describe_char(text: str, offset: int) -> str:
    """How to name what stands at `offset` in a message: a quoted word, end of line/file."""
    if offset >= len(text):
        return "end of file"
    char = text[offset]
    if char in NEWLINES:
        return "end of line"
    if char == "\t":
        return "a tab character"
    if char in NAME_START or char in DIGITS:
        end = offset
        while end < len(text) and text[end] in NODE_CHARS | PORT_CHARS:
            end += 1
        return f"'{text[offset:end]}'"
    if char == " ":
        return "a space"
    if char == "'":
        return "a quote (')"
    return f"'{char}'"
