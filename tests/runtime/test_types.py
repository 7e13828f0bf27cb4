"""Port types: IIP conversion, connection compatibility, run-time checks."""

from __future__ import annotations

import numpy
import pytest

from fbp.errors import PortTypeError
from fbp.types import Any, Array, Bool, Bytes, Float, Int, Record, Str, parse_type


@pytest.mark.parametrize(
    ("kind", "iip", "value"),
    [
        (Int, "42", 42),
        (Int, " -1 ", -1),
        (Int, "1e3", 1000),
        (Int, "0x10", 16),
        (Int, 7, 7),
        (Float, "2.5", 2.5),
        (Float, 3, 3.0),
        (Float, "1e-3", 0.001),
        (Str, "text", "text"),
        (Str, 5, "5"),
        (Bool, "true", True),
        (Bool, "off", False),
        (Bool, True, True),
        (Bool, "1", True),
        (Bytes, "abc", b"abc"),
        (Record(), '{"a": 1}', {"a": 1}),
        (Record(), {"b": [1, 2]}, {"b": [1, 2]}),
        (Any, "anything", "anything"),
    ],
)
def test_iips_convert(kind, iip, value):
    assert kind.convert(iip) == value


@pytest.mark.parametrize(
    ("kind", "iip", "message"),
    [
        (Int, "ten", "expected an integer \\(Int\\) such as '42' or '-1', got 'ten'"),
        (Int, "2.5", "expected an integer"),
        (Int, True, "got the boolean True"),
        (Float, "fast", "expected a number \\(Float\\)"),
        (Bool, "maybe", "true/false, yes/no, on/off or 1/0, got 'maybe'"),
        (Str, [1], "expected a string"),
        (Record(), "[1, 2]", "expected a mapping \\(Record\\)"),
        (Record({"x": Int}), '{"y": 1}', "missing key\\(s\\) x"),
        (Record({"x": Int}), '{"x": "no"}', "key 'x': expected an integer"),
        (
            Array("float32", ndim=1),
            "[[1, 2]]",
            "expected Array\\(float32, ndim=1\\), got an array of shape \\(1, 2\\)",
        ),
    ],
)
def test_bad_iips_say_what_was_expected(kind, iip, message):
    with pytest.raises(PortTypeError, match=message):
        kind.convert(iip)


def test_array_iip_from_json_list():
    array = Array("int32", shape=(None, 2)).convert("[[1, 2], [3, 4]]")
    assert array.dtype == numpy.int32 and array.shape == (2, 2)


def test_compatibility_rules():
    assert Float.accepts(Int) and not Int.accepts(Float)
    assert Any.accepts(Array("uint16", 2)) and Int.accepts(Any)
    assert not Str.accepts(Int)
    assert Array("uint16", ndim=2).accepts(Array("uint16", shape=(512, 1024)))
    assert Array(ndim=2).accepts(Array("float64", ndim=2))
    assert not Array("uint16", ndim=2).accepts(Array("uint32", ndim=2))
    assert not Array("uint16", ndim=2).accepts(Array("uint16", ndim=3))
    assert Array(shape=(None, 512)).accepts(Array(shape=(4, None)))
    assert not Array(shape=(None, 512)).accepts(Array(shape=(4, 256)))
    assert Record({"x": Float}).accepts(Record({"x": Int, "y": Str}))
    assert not Record({"x": Float}).accepts(Record({"y": Str}))
    assert Record({"x": Float}).accepts(Record())  # untyped: checked at run time
    assert not Record().accepts(Int)


def test_names_and_descriptions():
    assert str(Array("uint16", ndim=2)) == "Array(uint16, ndim=2)"
    assert str(Array(shape=(None, 3))) == "Array(*, shape=(*, 3))"
    assert str(Record({"x": Int})) == "Record({x: Int})"
    assert Array("float32", shape=(2,)).describe() == {
        "type": "Array",
        "dtype": "float32",
        "ndim": 1,
        "shape": [2],
    }
    assert parse_type("Int") is Int and parse_type("Record") == Record()
    with pytest.raises(PortTypeError, match="unknown port type 'Integer'"):
        parse_type("Integer")


def test_runtime_checks():
    Int.check(3)
    Array("uint8", ndim=1).check(numpy.zeros(3, numpy.uint8))
    with pytest.raises(PortTypeError, match="expected Int, got str"):
        Int.check("3")
    with pytest.raises(PortTypeError, match="dtype float64"):
        Array("uint8").check(numpy.zeros(3))
