"""JSON values as IIPs (`{"a": 1} -> OPTIONS P`), read the way the reference grammar reads them.

Like the reference (RFC 7159), whitespace around a value may include newlines, so objects and
arrays can span lines. Numbers follow JavaScript: integral values become `int`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fbp.errors import GraphError

MAX_DEPTH = 200
# (value, end offset), or None when no JSON value starts there (a JSON null is (None, end)).
Parsed = tuple[Any, int] | None
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_WHITESPACE = " \t\n\r"


def js_number(text: str) -> int | float:
    """A JSON number as JavaScript holds it: integral values within 2**53 become int."""
    value = float(text)
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


class JsonReader:
    """Reads one JSON value from `text` at an offset, reporting failures to `expect`.

    `expect(offset, what)` records what was expected where a match failed (for the furthest
    failure of the whole parse); `unterminated(offset, what)` records an opening quote or
    bracket that was never closed.
    """

    def __init__(
        self,
        text: str,
        expect: Callable[[int, str], None],
        unterminated: Callable[[int, str], None],
        error_at: Callable[[int, str, str | None], GraphError],
    ) -> None:
        self.text = text
        self.expect = expect
        self.unterminated = unterminated
        self.error_at = error_at

    def skip_ws(self, pos: int) -> int:
        text = self.text
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        return pos

    def json_text(self, pos: int) -> Parsed:
        """`ws value ws`; returns (value, end) or None."""
        result = self.value(self.skip_ws(pos), 0)
        if result is None:
            return None
        value, end = result
        return value, self.skip_ws(end)

    def value(self, pos: int, depth: int) -> Parsed:
        text = self.text
        if depth > MAX_DEPTH:
            raise self.error_at(
                pos,
                f"JSON IIP nested deeper than {MAX_DEPTH} levels",
                "flatten the value or pass a file name and read it in the component",
            )
        for word, literal in (("false", False), ("null", None), ("true", True)):
            if text.startswith(word, pos):
                return literal, pos + len(word)
        char = text[pos] if pos < len(text) else ""
        if char == "{":
            return self.json_object(pos, depth)
        if char == "[":
            return self.json_array(pos, depth)
        if char == '"':
            return self.json_string(pos)
        match = _NUMBER.match(text, pos)
        if match:
            return js_number(match.group()), match.end()
        self.expect(pos, "an IIP ('text' or a JSON value)")
        return None

    def json_object(self, start: int, depth: int) -> Parsed:
        result: dict[str, Any] = {}
        pos = self.skip_ws(start + 1)
        if self.text.startswith("}", pos):
            return result, pos + 1
        while True:
            if not self.text.startswith('"', pos):
                self.expect(pos, "a quoted key")
                if pos >= len(self.text):
                    self.unterminated(start, "JSON object")
                return None
            key = self.json_string(pos)
            if key is None:
                return None
            name, pos = key
            pos = self.skip_ws(pos)
            if not self.text.startswith(":", pos):
                self.expect(pos, "':'")
                return None
            member = self.value(self.skip_ws(pos + 1), depth + 1)
            if member is None:
                if self.skip_ws(pos + 1) >= len(self.text):
                    self.unterminated(start, "JSON object")
                return None
            result[name], pos = member
            pos = self.skip_ws(pos)
            if self.text.startswith(",", pos):
                pos = self.skip_ws(pos + 1)
                continue
            if self.text.startswith("}", pos):
                return result, pos + 1
            self.expect(pos, "',' or '}'")
            if pos >= len(self.text):
                self.unterminated(start, "JSON object")
            return None

    def json_array(self, start: int, depth: int) -> Parsed:
        result: list[Any] = []
        pos = self.skip_ws(start + 1)
        if self.text.startswith("]", pos):
            return result, pos + 1
        while True:
            item = self.value(pos, depth + 1)
            if item is None:
                if pos >= len(self.text):
                    self.unterminated(start, "JSON array")
                return None
            value, pos = item
            result.append(value)
            pos = self.skip_ws(pos)
            if self.text.startswith(",", pos):
                pos = self.skip_ws(pos + 1)
                continue
            if self.text.startswith("]", pos):
                return result, pos + 1
            self.expect(pos, "',' or ']'")
            if pos >= len(self.text):
                self.unterminated(start, "JSON array")
            return None

    def json_string(self, start: int) -> tuple[str, int] | None:
        text = self.text
        pos = start + 1
        chars: list[str] = []
        while pos < len(text):
            char = text[pos]
            if char == '"':
                return _join_surrogates(chars), pos + 1
            if char == "\\":
                escape = text[pos + 1 : pos + 2]
                if escape in _ESCAPES:
                    chars.append(_ESCAPES[escape])
                    pos += 2
                    continue
                digits = text[pos + 2 : pos + 6]
                if escape == "u" and len(digits) == 4 and all(d in _HEX for d in digits):
                    chars.append(chr(int(digits, 16)))
                    pos += 6
                    continue
                self.expect(pos + 1, 'a JSON escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)')
                return None
            if ord(char) < 0x20:
                self.expect(pos, "'\"' (control characters must be escaped in JSON strings)")
                if char in "\n\r":
                    self.unterminated(start, "JSON string")
                return None
            chars.append(char)
            pos += 1
        self.expect(pos, "'\"'")
        self.unterminated(start, "JSON string")
        return None


def _join_surrogates(chars: list[str]) -> str:
    """Combine \\uD83D\\uDE00-style surrogate pairs into one character, as JavaScript shows it."""
    text = "".join(chars)
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
