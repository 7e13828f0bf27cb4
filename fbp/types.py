"""Port types: what a port carries, how an IIP becomes a value, which connections fit.

Every port declares one type. A type answers three questions:
- `convert(iip)`: turn an IIP (the `.fbp` string, or a JSON value) into a value, or raise
  `PortTypeError` saying what was expected;
- `accepts(other)`: may packets of type `other` flow into a port of this type? The runtime
  asks this of every connection before anything starts;
- `check(value)`: does a value at run time fit (used by the test harness and on request).

Encoding is the codec's job (`fbp.codec`): arrays travel as a header plus raw bytes, bytes
as they are, everything else as msgpack. Types stay plain data so `fbp components --json`
can describe them (`describe()`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any as Value

import numpy

from fbp.errors import PortTypeError

__all__ = [
    "Any",
    "Array",
    "Bool",
    "Bytes",
    "Float",
    "Int",
    "PortType",
    "Record",
    "Str",
    "parse_type",
]


class PortType:
    """Base of all port types. Subclasses override `name`, `_convert`, `_fits`, `accepts`."""

    name = "Any"

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortType) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def describe(self) -> dict:
        """A JSON-able description, for `fbp components --json`."""
        return {"type": self.name}

    def accepts(self, other: PortType) -> bool:
        """True when packets of type `other` may flow into a port of this type.

        `Any` on either side is accepted: the check then happens at run time, if at all.
        """
        return isinstance(other, AnyType) or type(other) is type(self)

    def convert(self, value: Value) -> Value:
        """Convert an IIP (a `.fbp` string or a JSON value) to a value of this type.

        Raises:
            PortTypeError: the value cannot be read as this type; the message names it.
        """
        return self._convert(value)

    def _convert(self, value: Value) -> Value:
        return value

    def check(self, value: Value) -> None:
        """Check a run-time value.

        Raises:
            PortTypeError: the value does not fit this type.
        """
        if not self._fits(value):
            raise PortTypeError(f"expected {self}, got {type(value).__name__} {_short(value)}")

    def _fits(self, value: Value) -> bool:
        return True


def _short(value: Value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_json_text(value: Value) -> Value:
    """IIPs written as `'text'` arrive as strings; JSON-looking text is read as JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class AnyType(PortType):
    """Any value the codec can carry: arrays, bytes, and msgpack-able values."""

    name = "Any"

    def accepts(self, other: PortType) -> bool:
        return True


class IntType(PortType):
    """A Python int (64-bit signed on the wire)."""

    name = "Int"

    def _convert(self, value: Value) -> int:
        if isinstance(value, bool):
            raise PortTypeError(f"expected an integer (Int), got the boolean {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip().replace("_", "")
            try:
                return int(text, 0)
            except ValueError:
                pass
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if math.isfinite(number) and number.is_integer():
                return int(number)
        raise PortTypeError(f"expected an integer (Int) such as '42' or '-1', got {_short(value)}")

    def _fits(self, value: Value) -> bool:
        return isinstance(value, (int, numpy.integer)) and not isinstance(value, bool)


class FloatType(PortType):
    """A Python float (64-bit); integers are accepted where a float is expected."""

    name = "Float"

    def accepts(self, other: PortType) -> bool:
        return isinstance(other, (AnyType, FloatType, IntType))

    def _convert(self, value: Value) -> float:
        if isinstance(value, bool):
            raise PortTypeError(f"expected a number (Float), got the boolean {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip().replace("_", ""))
            except ValueError:
                pass
        raise PortTypeError(
            f"expected a number (Float) such as '2.5' or '1e3', got {_short(value)}"
        )

    def _fits(self, value: Value) -> bool:
        return isinstance(value, (int, float, numpy.integer, numpy.floating)) and not isinstance(
            value, bool
        )


class StrType(PortType):
    """A text string."""

    name = "Str"

    def _convert(self, value: Value) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return json.dumps(value)
        raise PortTypeError(f"expected a string (Str), got {_short(value)}")

    def _fits(self, value: Value) -> bool:
        return isinstance(value, str)


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class BoolType(PortType):
    """True or False; IIP text true/false, yes/no, on/off, 1/0."""

    name = "Bool"

    def _convert(self, value: Value) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        raise PortTypeError(
            f"expected a boolean (Bool): true/false, yes/no, on/off or 1/0, got {_short(value)}"
        )

    def _fits(self, value: Value) -> bool:
        return isinstance(value, (bool, numpy.bool_))


class BytesType(PortType):
    """Raw bytes, carried without any encoding."""

    name = "Bytes"

    def _convert(self, value: Value) -> bytes:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise PortTypeError(f"expected bytes (Bytes) or text, got {_short(value)}")

    def _fits(self, value: Value) -> bool:
        return isinstance(value, (bytes, bytearray, memoryview))


class Record(PortType):
    """A msgpack-able mapping with string keys, optionally with a schema.

    Args:
        schema: optional {key: PortType}; every key is required. A port with a schema
            accepts a connection only from a Record whose schema has each of its keys with
            an accepted type (or from an untyped Record/Any, checked at run time).
    """

    def __init__(self, schema: Mapping[str, PortType] | None = None) -> None:
        self.schema = dict(schema) if schema else None
        if self.schema:
            for key, kind in self.schema.items():
                if not isinstance(kind, PortType):
                    raise TypeError(f"Record schema key {key!r}: {kind!r} is not a PortType")

    @property
    def name(self) -> str:  # type: ignore[override]
        if not self.schema:
            return "Record"
        inner = ", ".join(f"{k}: {v}" for k, v in self.schema.items())
        return f"Record({{{inner}}})"

    def describe(self) -> dict:
        if not self.schema:
            return {"type": "Record"}
        return {"type": "Record", "schema": {k: v.describe() for k, v in self.schema.items()}}

    def accepts(self, other: PortType) -> bool:
        if isinstance(other, AnyType):
            return True
        if not isinstance(other, Record):
            return False
        if not self.schema or not other.schema:
            return True
        return all(
            key in other.schema and kind.accepts(other.schema[key])
            for key, kind in self.schema.items()
        )

    def _convert(self, value: Value) -> dict:
        value = _from_json_text(value)
        if not isinstance(value, dict):
            raise PortTypeError(
                f"expected a mapping (Record) such as '{{\"key\": 1}}', got {_short(value)}"
            )
        self._check_schema(value, convert=True)
        return value

    def _check_schema(self, value: dict, convert: bool) -> None:
        if not self.schema:
            return
        missing = [key for key in self.schema if key not in value]
        if missing:
            raise PortTypeError(f"{self}: missing key(s) {', '.join(missing)} in {_short(value)}")
        for key, kind in self.schema.items():
            try:
                if convert:
                    value[key] = kind.convert(value[key])
                else:
                    kind.check(value[key])
            except PortTypeError as exc:
                raise PortTypeError(f"{self}: key {key!r}: {exc}") from None

    def check(self, value: Value) -> None:
        if not isinstance(value, dict):
            raise PortTypeError(f"expected {self}, got {type(value).__name__} {_short(value)}")
        self._check_schema(value, convert=False)


class Array(PortType):
    """A numpy array with a dtype and a number of dimensions or a shape.

    Args:
        dtype: numpy dtype (e.g. "uint16", numpy.float32) or None for any dtype.
        ndim: number of dimensions, or None for any.
        shape: tuple of sizes where None is a wildcard, e.g. (None, 512, 512); implies ndim.

    Examples:
        `Array("uint16", ndim=2)` detector frames; `Array(shape=(None, 3))` lists of points.
    """

    def __init__(
        self, dtype: Value = None, ndim: int | None = None, shape: tuple | None = None
    ) -> None:
        self.dtype = None if dtype is None else numpy.dtype(dtype)
        if shape is not None:
            shape = tuple(None if s is None else int(s) for s in shape)
            if ndim is not None and ndim != len(shape):
                raise ValueError(f"Array: ndim={ndim} contradicts shape={shape}")
            ndim = len(shape)
        self.ndim = ndim
        self.shape = shape

    @property
    def name(self) -> str:  # type: ignore[override]
        parts = [str(self.dtype) if self.dtype is not None else "*"]
        if self.shape is not None:
            parts.append(
                "shape=("
                + ", ".join("*" if s is None else str(s) for s in self.shape)
                + ("," if len(self.shape) == 1 else "")
                + ")"
            )
        elif self.ndim is not None:
            parts.append(f"ndim={self.ndim}")
        return f"Array({', '.join(parts)})"

    def describe(self) -> dict:
        return {
            "type": "Array",
            "dtype": None if self.dtype is None else str(self.dtype),
            "ndim": self.ndim,
            "shape": None if self.shape is None else list(self.shape),
        }

    def accepts(self, other: PortType) -> bool:
        if isinstance(other, AnyType):
            return True
        if not isinstance(other, Array):
            return False
        if self.dtype is not None and other.dtype is not None and self.dtype != other.dtype:
            return False
        if self.ndim is not None and other.ndim is not None and self.ndim != other.ndim:
            return False
        if self.shape is not None and other.shape is not None:
            return all(
                a is None or b is None or a == b
                for a, b in zip(self.shape, other.shape, strict=False)
            )
        return True

    def _convert(self, value: Value) -> numpy.ndarray:
        value = _from_json_text(value)
        try:
            array = numpy.asarray(value, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise PortTypeError(f"expected {self} (a JSON list of numbers): {exc}") from None
        if array.dtype == object:
            raise PortTypeError(f"expected {self} (a JSON list of numbers), got {_short(value)}")
        self.check(array)
        return array

    def check(self, value: Value) -> None:
        if not isinstance(value, numpy.ndarray):
            raise PortTypeError(f"expected {self}, got {type(value).__name__} {_short(value)}")
        if self.dtype is not None and value.dtype != self.dtype:
            raise PortTypeError(f"expected {self}, got an array of dtype {value.dtype}")
        if self.ndim is not None and value.ndim != self.ndim:
            raise PortTypeError(f"expected {self}, got an array of shape {value.shape}")
        if self.shape is not None and any(
            want is not None and want != got
            for want, got in zip(self.shape, value.shape, strict=False)
        ):
            raise PortTypeError(f"expected {self}, got an array of shape {value.shape}")


Any = AnyType()
Int = IntType()
Float = FloatType()
Str = StrType()
Bool = BoolType()
Bytes = BytesType()

_SIMPLE = {t.name: t for t in (Any, Int, Float, Str, Bool, Bytes)}


def parse_type(text: str | PortType) -> PortType:
    """Read a type from its name (`"Int"`, `"Record"`, `"Array"`), or return a PortType as is.

    Raises:
        PortTypeError: unknown type name.
    """
    if isinstance(text, PortType):
        return text
    if text in _SIMPLE:
        return _SIMPLE[text]
    if text == "Record":
        return Record()
    if text == "Array":
        return Array()
    raise PortTypeError(
        f"unknown port type {text!r}; use one of {', '.join(_SIMPLE)}, Record or Array"
    )
