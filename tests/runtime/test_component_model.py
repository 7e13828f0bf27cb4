"""The component model: three spellings of one model, ports as data, the test harness."""

from __future__ import annotations

import numpy
import pytest

from fbp.component import Component, InPort, OutPort, component, spec_of
from fbp.errors import ComponentError, PortTypeError
from fbp.packet import Packet
from fbp.testing import run_component
from fbp.types import Array, Float, Int


@component(
    inports=[InPort("IN", Float, "numbers"), InPort("FACTOR", Float, "multiplier", default=2.0)],
    outports=[OutPort("OUT", Float, "scaled numbers")],
)
def Scale(value, *, factor):
    """Multiply by FACTOR."""
    return value * factor


class Averager(Component):
    """Running mean, sent at the end."""

    inports = [InPort("IN", Float, "numbers")]
    outports = [OutPort("MEAN", Float, "the mean"), OutPort("SEEN", Int, "count so far")]

    def setup(self):
        self.total = 0.0
        self.count = 0
        self.torn_down = False

    def process(self, packet):
        self.total += packet.value
        self.count += 1
        self.out.SEEN.send(self.count, seq=packet.seq)

    def finish(self):
        self.send("MEAN", self.total / self.count)


@component(
    inports=[InPort("N", Int, "how many", default=3)],
    outports=[OutPort("OUT", Array("float32", ndim=1), "vectors")],
)
def Vectors(*, n):
    """A source of n vectors."""
    for i in range(n):
        yield numpy.full(4, i, numpy.float32)


def test_function_component_spec_and_defaults():
    spec = spec_of(Scale)
    assert spec.kind == "function" and spec.name == "Scale" and spec.doc == "Multiply by FACTOR."
    assert [p.name for p in spec.inports] == ["IN", "FACTOR"]
    assert [p.name for p in spec.outports] == ["OUT", "ERROR"]  # ERROR always added
    assert spec.inport("FACTOR").config and not spec.inport("IN").config
    assert Scale(3.0, factor=2.0) == 6.0  # still a plain function
    result = run_component(Scale, inputs={"IN": [Packet(1.5, seq=4, meta={"k": 1})]})
    assert result.values() == [3.0]
    assert result.outputs["OUT"][0].seq == 4 and result.outputs["OUT"][0].meta == {"k": 1}


def test_config_iip_strings_are_converted_by_the_port_type():
    assert run_component(Scale, inputs={"IN": [2.0]}, config={"FACTOR": "0.5"}).values() == [1.0]
    with pytest.raises(PortTypeError, match="FACTOR: expected a number"):
        run_component(Scale, inputs={"IN": [2.0]}, config={"FACTOR": "lots"})


def test_class_component_lifecycle():
    result = run_component(Averager, inputs={"IN": [1.0, 2.0, 6.0]})
    assert result.values("MEAN") == [3.0]
    assert result.values("SEEN") == [1, 2, 3]
    assert spec_of(Averager).kind == "class"


def test_generator_is_a_source_with_seq_and_timestamps():
    result = run_component(Vectors, config={"N": 3})
    assert spec_of(Vectors).kind == "source"
    assert result.seqs() == [0, 1, 2]
    assert all(p.timestamp for p in result.outputs["OUT"])
    assert [v.tolist() for v in result.values()] == [[0.0] * 4, [1.0] * 4, [2.0] * 4]


def test_exceptions_go_to_error_and_the_component_goes_on():
    @component
    def Invert(value):
        return 1 / value

    result = run_component(Invert, inputs={"IN": [Packet(v, seq=v) for v in (1, 0, 2)]})
    assert result.values() == [1.0, 0.5]
    assert result.errors == 1
    report = result.values("ERROR")[0]
    assert report["seq"] == 0 and report["port"] == "IN" and report["process"] == "test"
    assert report["error"] == "ZeroDivisionError: division by zero"
    assert "Traceback" in report["traceback"]


def test_default_ports_of_a_bare_function():
    @component
    def Double(value):
        """Twice."""
        return value * 2

    spec = spec_of(Double)
    assert [p.name for p in spec.inports] == ["IN"] and spec.default_outport == "OUT"


def test_declaration_errors_are_clear():
    with pytest.raises(ComponentError, match="exactly one stream inport"):
        component(inports=[InPort("A"), InPort("B")])(lambda value: value)
    with pytest.raises(ComponentError, match="a generator is a source"):

        @component(inports=[InPort("IN")])
        def Bad():
            yield 1

    with pytest.raises(ComponentError, match="do not declare it"):

        class HasError(Component):
            outports = [OutPort("ERROR")]

    with pytest.raises(ComponentError, match="must be an identifier"):
        InPort("bad name")
    with pytest.raises(ComponentError, match="is not a fbp.types type"):
        InPort("IN", int)
    with pytest.raises(ComponentError, match="unique ignoring case"):

        class Twice(Component):
            inports = [InPort("IN"), InPort("in")]

    with pytest.raises(ComponentError, match="is not a component"):
        spec_of(len)


def test_required_config_must_be_given_in_the_harness():
    @component(inports=[InPort("IN"), InPort("LIMIT", Int, "limit", config=True)])
    def Clip(value, *, limit):
        return min(value, limit)

    with pytest.raises(ComponentError, match="LIMIT needs a value"):
        run_component(Clip, inputs={"IN": [1]})
    assert run_component(Clip, inputs={"IN": [1, 9]}, config={"LIMIT": 5}).values() == [1, 5]


def test_teardown_runs_even_when_finish_fails():
    calls = []

    class Fragile(Component):
        inports = [InPort("IN")]

        def finish(self):
            raise RuntimeError("disk full")

        def teardown(self):
            calls.append("teardown")

    with pytest.raises(RuntimeError, match="disk full"):
        run_component(Fragile, inputs={"IN": [1]})
    assert calls == ["teardown"]
