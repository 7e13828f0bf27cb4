"""Error messages: the rule, the offending text, the right line and column, a hint."""

from __future__ import annotations

import pytest

import fbp.graph
from fbp.errors import FBPError, GraphError


def error_of(text: str, **kwargs) -> GraphError:
    try:
        graph = fbp.graph.parse(text, file="t.fbp", **kwargs)
    except GraphError as exc:
        return exc
    problems = fbp.graph.validate(graph)
    assert problems, "expected a problem"
    return problems[0]


def test_graph_error_is_a_value_error_and_an_fbp_error():
    with pytest.raises(ValueError):
        fbp.graph.parse("A(")
    with pytest.raises(FBPError):
        fbp.graph.parse("A(")


def test_unfinished_line_is_blamed_on_its_own_line_not_the_next():
    # The reference reports this at 2:1 because JSON whitespace runs over the line break.
    error = error_of("A(core/Repeat) OUT -> \n\nB(core/Drop)\n")
    assert (error.line, error.col) == (1, 22)
    assert "expected a target after '->'" in error.message
    assert error.source_line == "A(core/Repeat) OUT -> "


def test_unterminated_string_points_at_its_opening_quote():
    error = error_of("A(core/Repeat)\n'no end -> IN A\nA OUT -> IN B(core/Drop)\n")
    assert (error.line, error.col) == (2, 1)
    assert error.message == "unterminated string: it opens here and is never closed"
    assert "\\'" in error.hint


def test_unterminated_json_array_points_at_its_bracket():
    error = error_of("A(core/Repeat)\n[1, 2,\n 3\n")
    assert (error.line, error.col) == (2, 1)
    assert "unterminated JSON array" in error.message


def test_tabs_are_named():
    error = error_of("A(core/Repeat)\n  \tB(core/Drop)\n")
    assert (error.line, error.col) == (2, 3)
    assert "tab" in error.message and "spaces" in error.hint


def test_crlf_files_count_columns_per_line():
    error = error_of("A(core/Repeat)\r\nB OUT -> IN ;\r\n")
    assert (error.line, error.col) == (2, 13)
    assert error.source_line == "B OUT -> IN ;"


def test_found_text_is_quoted_in_the_message():
    error = error_of("A(core/Repeat) OUT -> IN B(core/Drop) @oops\n")
    assert "found '@'" in error.message
    assert (error.line, error.col) == (1, 39)


def test_format_shows_source_caret_and_hint():
    text = error_of("'x' IN A(core/Repeat)\n").format()
    assert text.splitlines() == [
        "t.fbp:1:5: error: expected '->', found 'IN'",
        "    'x' IN A(core/Repeat)",
        "        ^",
        "  hint: connections are written `Source OUTPORT -> INPORT Target`",
    ]


def test_undefined_process_suggests_a_close_name():
    error = error_of(
        "Finder(xray/PeakFinder) OUT -> IN Hits(xray/HitFilter)\nFindr PEAKS -> IN Hits\n"
    )
    assert error.message == "source process 'Findr' is not defined"
    assert "did you mean 'Finder'?" in error.hint
    assert (error.line, error.col) == (2, 1)


def test_deeply_nested_json_is_a_graph_error_not_a_crash():
    with pytest.raises(GraphError, match="nested deeper than"):
        fbp.graph.parse("[" * 5000 + "]" * 5000 + " -> IN A(core/Repeat)")


def test_very_long_chains_parse_without_recursion_limits():
    text = " -> ".join(["(core/Repeat)"] * 5000)
    graph = fbp.graph.parse(text)
    assert len(graph.processes) == 5000
    assert len(graph.connections) == 4999


def test_workers_metadata_stays_a_string_with_its_location():
    graph = fbp.graph.parse("\nFind(xray/PeakFinder:workers=four)\n", file="w.fbp")
    find = graph.processes["Find"]
    assert find.metadata == {"workers": "four"}
    error = graph.error(
        f"workers must be an integer, not {find.metadata['workers']!r}", find.location
    )
    assert error.format().startswith("w.fbp:2:1: error: workers must be an integer")


@pytest.mark.parametrize("case_sensitive", [False, True])
def test_errors_do_not_depend_on_case_mode(case_sensitive):
    error = error_of("A(core/Repeat) OUT[x] -> IN B(core/Drop)\n", case_sensitive=case_sensitive)
    assert (error.line, error.col) == (1, 20)
    assert "port index" in error.message
