"""Differential tests: our parser against the reference (npm fbp@1.8.0) on every case.

Valid cases must give the same JSON in both case modes, unless the file is marked
`# reference: rejects|differs` (a documented deviation), where our JSON must contain the
`# expect-json:` object instead. Invalid cases must fail on the line (and column) named in
`# expect-error: LINE[:COL] text`; those marked `# reference: accepts` are edges the
reference silently drops, which we reject on purpose.
"""

from __future__ import annotations

import json
import re

import pytest

import fbp.graph
from fbp.errors import GraphError


def ours(text: str, case_sensitive: bool):
    graph = fbp.graph.parse(text, file="case.fbp", case_sensitive=case_sensitive)
    return graph, fbp.graph.validate(graph)


def contains(actual, expected) -> bool:
    """True when every key of `expected` is in `actual` with a matching value (recursively)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    return actual == expected


def test_corpus_is_big_enough(corpus):
    valid = [p for p in corpus.valid() if p.parent.name == "valid"]
    assert len(valid) >= 60
    assert len(corpus.invalid()) >= 20


@pytest.mark.npm
@pytest.mark.parametrize("case_sensitive", [False, True], ids=["lower", "case"])
def test_valid_case_matches_reference(valid_path, case_sensitive, reference, corpus):
    path, read, header, case_id = valid_path, corpus.read, corpus.header, corpus.case_id
    text = read(path)
    graph, problems = ours(text, case_sensitive)
    assert problems == [], "\n".join(p.format() for p in problems)
    expected = reference[(case_id(path), case_sensitive)]
    deviation = header(text, "reference")
    if deviation is None:
        assert "ok" in expected, f"reference rejects a case marked valid: {expected}"
        assert graph.to_json() == expected["ok"]
        return
    # A documented deviation: the reference must really differ, and we must give our answer.
    assert deviation in ("rejects", "differs")
    if deviation == "rejects":
        assert "error" in expected
    else:
        assert expected.get("ok") != graph.to_json()
    wanted = json.loads(header(text, "expect-json"))
    assert contains(graph.to_json(), wanted), json.dumps(graph.to_json(), indent=1)


@pytest.mark.npm
def test_invalid_case_is_rejected_at_the_right_place(invalid_path, reference, corpus):
    path, read, header, case_id = invalid_path, corpus.read, corpus.header, corpus.case_id
    text = read(path)
    spec = header(text, "expect-error")
    where, _, needle = spec.partition(" ")
    line, _, col = where.partition(":")
    try:
        _, problems = ours(text, False)
    except GraphError as exc:
        problems = [exc]
    assert problems, "we accepted an invalid graph"
    first = problems[0]
    assert (first.line, first.col if col else None) == (int(line), int(col) if col else None), (
        first.format()
    )
    assert needle.strip() in first.message + " " + (first.hint or ""), first.format()
    assert first.source_line is not None and first.hint
    accepted = header(text, "reference") == "accepts"
    for mode in (False, True):
        result = reference[(case_id(path), mode)]
        assert ("ok" in result) == accepted, f"reference result changed: {result}"


def _uses_a_documented_deviation(text: str) -> bool:
    """Annotations the reference ignores, '-' or '.' in metadata, trailing spaces at the end."""
    if text.rstrip(" ") != text:
        return True
    for line in re.split(r"\r\n|[\r\n]", text):
        match = re.match(r"( *)# +@[A-Za-z0-9_-]+ +(.*)$", line)
        if match and (match.group(1) or not re.fullmatch(r"[A-Za-z0-9_ .-]+", match.group(2))):
            return True
    return bool(re.search(r"\([A-Za-z0-9/_-]*:[^)]*[-.]", text))


@pytest.mark.npm
def test_random_texts_agree_with_reference(reference, corpus):
    """1500 random texts: same JSON when the reference accepts, rejected when it rejects."""
    counts = {"same": 0, "both reject": 0, "we are stricter": 0, "deviation": 0}
    for number, text in enumerate(corpus.random_texts()):
        expected = reference[(f"random/{number}", False)]
        if _uses_a_documented_deviation(text):
            counts["deviation"] += 1
            continue
        try:
            graph = fbp.graph.parse(text)
        except GraphError as exc:
            assert "error" in expected, f"we reject what the reference accepts: {text!r}\n{exc}"
            counts["both reject"] += 1
            continue
        problems = fbp.graph.validate(graph)
        if "ok" in expected:
            assert graph.to_json() == expected["ok"], repr(text)
            counts["we are stricter" if problems else "same"] += 1
        else:
            assert problems, f"we accept what the reference rejects: {text!r}\n{expected}"
            counts["both reject"] += 1
    # The generator must keep exercising every outcome.
    assert min(counts.values()) > 10, counts
