"""Syntax error messages: where the parse stopped, what was expected, and a hint.

The reference reports the furthest offset any rule reached. That is usually right, but JSON
whitespace may run over line breaks, so an unfinished line is reported on the next one. We
start from the same furthest offset, move it back to the line where the statement really
stopped, and name unterminated strings where they begin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fbp.errors import GraphError
from fbp.graph import lexer

if TYPE_CHECKING:
    from fbp.graph.parser import _Parser

_ORDER = [
    "'->'",
    "a process name",
    "a port name",
    "an IIP ('text' or a JSON value)",
    "'('",
    "')'",
    "a component name",
    "metadata (key=value,...)",
    "a port index like [0]",
    "']'",
    "'.'",
    "':'",
    "','",
    "end of line",
]


_JSON = [
    "a quoted key",
    "':'",
    "',' or '}'",
    "',' or ']'",
    "'\"'",
    "'\"' (control characters must be escaped in JSON strings)",
    'a JSON escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)',
    'a closing quote "\'"',
]


def syntax_error(parser: _Parser, statement_start: int) -> GraphError:
    """Build the GraphError for a parse that stopped in the statement at `statement_start`."""
    text = parser.text
    offset = max(parser.failure.offset, statement_start)
    expected = set(parser.failure.expected) if parser.failure.offset >= statement_start else set()

    run_start = offset
    while run_start > statement_start and text[run_start - 1] in " \t":
        run_start -= 1
    tab = text.find("\t", run_start, offset + 1)
    if tab >= 0:
        return _error(
            parser,
            tab,
            "tab characters are not allowed outside strings in .fbp files",
            "indent and separate with spaces (the reference parser rejects tabs too)",
        )

    if parser.unterminated is not None and (offset >= len(text) or text[offset] in "\r\n"):
        start, what = parser.unterminated
        if statement_start <= start <= offset:
            closer = {"string": "'", "JSON string": '"', "JSON object": "}", "JSON array": "]"}
            hint = f"close it with {closer[what]!r}"
            if what == "string":
                hint += "; inside 'text' write a quote as \\'"
            return _error(
                parser, start, f"unterminated {what}: it opens here and is never closed", hint
            )

    # Whitespace of a JSON IIP may cross line breaks: blame the end of the unfinished line.
    before = offset
    while before > statement_start and text[before - 1] in " \t\r\n\u2028\u2029":
        before -= 1
    if any(c in lexer.NEWLINES for c in text[before:offset]):
        offset = before
        found = "end of line"
    else:
        found = lexer.describe_char(text, offset)

    line_before = text[_line_start(text, offset) : offset].rstrip(" ")
    wanted = _wanted(expected)
    if line_before.endswith("->") and found in ("end of line", "end of file"):
        wanted = "a target after '->' (INPORT Process)"
    message = f"expected {wanted}, found {found}" if wanted else f"unexpected {found}"
    return _error(parser, offset, message, _hint(text, offset, line_before, expected, found))


def _wanted(expected: set[str]) -> str:
    useful = [e for e in _ORDER + _JSON if e in expected]
    if len(useful) > 1:
        useful = [e for e in useful if e not in ("','", "end of line")]
    if not useful:
        return ""
    if len(useful) == 1:
        return useful[0]
    return ", ".join(useful[:-1]) + " or " + useful[-1]


def _hint(text: str, offset: int, line_before: str, expected: set[str], found: str) -> str:
    word = found.strip("'")
    if found == "a quote (')":
        return "an IIP starts its own statement: `'value' -> PORT Process`"
    if offset > 0 and text[offset - 1] == "'" and found.startswith("'"):
        return "write a quote inside 'text' as \\' (or use a JSON string \"...\")"
    if line_before.endswith("->"):
        return "a connection needs a target after '->', e.g. `-> IN Process`"
    if word in ("inport=", "outport=", "Inport", "Outport") or line_before.lower() in (
        "inport",
        "outport",
        "export",
    ):
        return "exports are written in capitals: INPORT=Process.PORT:NAME (EXPORT= was removed)"
    if line_before.rstrip().endswith("EXPORT") or word.startswith("EXPORT"):
        return "EXPORT= was removed from the language; use INPORT=Process.PORT:NAME or OUTPORT="
    if "metadata (key=value,...)" in expected:
        return (
            "metadata is written Name(library/Component:key=value,key=value) with letters, "
            "digits and / _ - . only; no spaces"
        )
    if "')'" in expected:
        return (
            "a process is written Name(library/Component) or Name(library/Component:key=value); "
            "component names use letters, digits, '/', '-' and '_'"
        )
    if "']'" in expected or "a port index like [0]" in expected:
        return "an array port index is a number in brackets right after the port: OUT[2]"
    if "':'" in expected or "'.'" in expected:
        return "exports are written INPORT=Process.PORT:NAME"
    if "'->'" in expected:
        return "connections are written `Source OUTPORT -> INPORT Target`"
    return (
        "a statement is a connection `A OUT -> IN B`, an IIP `'value' -> IN B`, a declaration "
        "`B(library/Component)`, an export `INPORT=B.IN:NAME`, or a comment `# ...`"
    )


def _line_start(text: str, offset: int) -> int:
    start = offset
    while start > 0 and text[start - 1] not in lexer.NEWLINES:
        start -= 1
    return start


def _error(parser: _Parser, offset: int, message: str, hint: str) -> GraphError:
    location = parser.source.location(min(offset, len(parser.text)))
    return GraphError(
        message,
        file=location.file,
        line=location.line,
        col=location.col,
        source_line=location.source_line,
        hint=hint,
    )
