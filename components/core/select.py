"""Selecting packets by an expression."""

from __future__ import annotations

import math

from fbp.component import Component, InPort, OutPort
from fbp.packet import Packet
from fbp.types import Any, Str

_NAMES = {
    "abs": abs,
    "min": min,
    "max": max,
    "len": len,
    "round": round,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "sum": sum,
    "any": any,
    "all": all,
    "isinstance": isinstance,
    "math": math,
    "True": True,
    "False": False,
    "None": None,
}


class Filter(Component):
    """Pass on the packets for which EXPRESSION is true; the others go to REJECTED.

    EXPRESSION is a Python expression over `value`, `seq` and `meta` (the packet's user
    metadata, a dict), e.g. `value % 2 == 0` or `meta.get("hit", False)`. Only basic
    built-ins are available (abs, min, max, len, round, int, float, math, ...). It is part
    of your own graph and runs with your rights, like any component code.
    """

    inports = [
        InPort("IN", Any, "packets to test"),
        InPort("EXPRESSION", Str, "Python expression over value, seq, meta", config=True),
    ]
    outports = [
        OutPort("OUT", Any, "packets for which the expression is true"),
        OutPort("REJECTED", Any, "the other packets"),
    ]

    def setup(self, *, expression) -> None:
        try:
            self.code = compile(expression, "<Filter EXPRESSION>", "eval")
        except SyntaxError as exc:
            raise ValueError(
                f"Filter EXPRESSION {expression!r} is not a Python expression: {exc.msg}"
            ) from None
        self.names = {"__builtins__": {}, **_NAMES}

    def process(self, packet: Packet) -> None:
        scope = {"value": packet.value, "seq": packet.seq, "meta": packet.meta or {}}
        if eval(self.code, self.names, scope):
            self.out.OUT.send_packet(packet)
        else:
            self.out.REJECTED.send_packet(packet)
