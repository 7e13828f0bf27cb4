"""The component model: ports declared as data, and three spellings of one component.

- A decorated function is a stateless component: called once per packet with its value,
  its return value goes to the default outport (None sends nothing).
- A subclass of `Component` is a stateful component: `setup(**config)`, `process(packet)`
  per packet, `finish()` once every input has ended, `teardown()` always.
- A decorated generator function is a source: each yielded value is sent.

Config ports (`InPort(..., default=...)` or `config=True`) are read once before the first
packet (from an IIP, a connection, or the default) and passed as keyword arguments named
after the port in lower case (`COUNT` -> `count`). Every component also has the `ERROR`
outport: an exception in `process` is counted, reported and sent there as a Record
`{process, port, seq, error, traceback}`, and the component goes on.

    from fbp.component import Component, InPort, OutPort, component
    from fbp.types import Float, Array

    @component(
        inports=[InPort("IN", Array("float32", ndim=2), "frames"),
                 InPort("FACTOR", Float, "multiplier", default=2.0)],
        outports=[OutPort("OUT", Array("float32", ndim=2), "scaled frames")],
    )
    def Scale(frame, *, factor):
        "Multiply each frame by FACTOR."
        return frame * factor
"""

from __future__ import annotations

import inspect
import keyword
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fbp.errors import ComponentError
from fbp.packet import Packet
from fbp.types import Any as AnyValue
from fbp.types import PortType, Record

__all__ = [
    "ERROR_PORT",
    "REQUIRED",
    "Component",
    "ComponentSpec",
    "InPort",
    "OutPort",
    "component",
    "spec_of",
]

ERROR_PORT = "ERROR"
_PORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class InPort:
    """An input port, declared as data.

    Args:
        name: the port name as written in `.fbp` files (conventionally upper case).
        type: a PortType (default Any).
        description: user documentation, shown by `fbp components`.
        default: value used when nothing is connected; giving one makes it a config port.
        array: an array port (`IN[0]`, `IN[1]`, ...): each index is its own connection.
        config: read once before processing instead of per packet (implied by `default`).
    """

    name: str
    type: PortType = AnyValue
    description: str = ""
    default: Any = REQUIRED
    array: bool = False
    config: bool = False

    def __post_init__(self) -> None:
        _check_port_name(self.name)
        if not isinstance(self.type, PortType):
            raise ComponentError(f"inport {self.name}: type {self.type!r} is not a fbp.types type")
        if self.default is not REQUIRED and not self.config:
            object.__setattr__(self, "config", True)
        if self.config and keyword.iskeyword(self.keyword):
            raise ComponentError(
                f"config port {self.name}: its keyword argument {self.keyword!r} is a Python "
                "keyword; choose another name"
            )

    @property
    def is_config(self) -> bool:
        """True for ports read once before processing."""
        return self.config

    @property
    def required(self) -> bool:
        """A config port without a default must be given an IIP or a connection."""
        return self.config and self.default is REQUIRED

    @property
    def keyword(self) -> str:
        """The keyword argument a config value is passed as."""
        return self.name.lower()

    def describe(self) -> dict:
        """JSON-able description for `fbp components --json`."""
        return {
            "name": self.name,
            "type": self.type.describe(),
            "type_name": str(self.type),
            "description": self.description,
            "config": self.config,
            "required": self.required,
            "default": None if self.default is REQUIRED else _jsonable(self.default),
            "array": self.array,
        }


@dataclass(frozen=True)
class OutPort:
    """An output port, declared as data (see InPort for the arguments)."""

    name: str
    type: PortType = AnyValue
    description: str = ""
    array: bool = False

    def __post_init__(self) -> None:
        _check_port_name(self.name)
        if not isinstance(self.type, PortType):
            raise ComponentError(f"outport {self.name}: type {self.type!r} is not a fbp.types type")

    def describe(self) -> dict:
        """JSON-able description for `fbp components --json`."""
        return {
            "name": self.name,
            "type": self.type.describe(),
            "type_name": str(self.type),
            "description": self.description,
            "array": self.array,
        }


def _check_port_name(name: str) -> None:
    if not isinstance(name, str) or not _PORT_NAME.match(name):
        raise ComponentError(
            f"port name {name!r} must be an identifier such as IN, OUT or COUNT (letters, digits, "
            "underscores)"
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


ERROR_OUTPORT = OutPort(
    ERROR_PORT,
    Record(),
    "failed packets: {process, port, seq, error, traceback}; exceptions are reported and "
    "the component goes on",
)


@dataclass
class ComponentSpec:
    """Everything the runtime and `fbp components` know about one component.

    Attributes:
        name: the component's name within its library (e.g. "Sequence").
        kind: "function", "class" or "source".
        implementation: the function, generator function or Component subclass.
        inports / outports: declared ports; outports always end with ERROR.
        doc: the docstring.
        library: filled in by the registry ("core"), so `full_name` is "core/Sequence".
    """

    name: str
    kind: str
    implementation: Any
    inports: tuple[InPort, ...]
    outports: tuple[OutPort, ...]
    doc: str = ""
    library: str | None = None
    origin: str = field(default="", compare=False)

    @property
    def full_name(self) -> str:
        """`library/Name` as used in `.fbp` files."""
        return f"{self.library}/{self.name}" if self.library else self.name

    @property
    def stream_inports(self) -> tuple[InPort, ...]:
        """Inports that deliver packets to `process` (not config)."""
        return tuple(p for p in self.inports if not p.config)

    @property
    def config_inports(self) -> tuple[InPort, ...]:
        """Inports read once before processing."""
        return tuple(p for p in self.inports if p.config)

    @property
    def default_outport(self) -> str | None:
        """Where a returned value goes: OUT, or the only outport besides ERROR."""
        names = [p.name for p in self.outports if p.name != ERROR_PORT]
        if "OUT" in names:
            return "OUT"
        return names[0] if len(names) == 1 else None

    def inport(self, name: str, case_sensitive: bool = True) -> InPort | None:
        """The inport called `name` (matched ignoring case unless case_sensitive)."""
        return _find(self.inports, name, case_sensitive)

    def outport(self, name: str, case_sensitive: bool = True) -> OutPort | None:
        """The outport called `name` (matched ignoring case unless case_sensitive)."""
        return _find(self.outports, name, case_sensitive)

    def describe(self) -> dict:
        """JSON-able description for `fbp components --json`."""
        return {
            "name": self.full_name,
            "kind": self.kind,
            "description": self.doc,
            "inports": [p.describe() for p in self.inports],
            "outports": [p.describe() for p in self.outports],
            "origin": self.origin,
        }


def _find(ports: Iterable, name: str, case_sensitive: bool):
    for port in ports:
        if port.name == name or (not case_sensitive and port.name.lower() == name.lower()):
            return port
    return None


def _check_ports(owner: str, inports: Iterable, outports: Iterable) -> tuple[tuple, tuple]:
    inports = tuple(inports)
    outports = tuple(outports)
    for port in inports:
        if not isinstance(port, InPort):
            raise ComponentError(f"{owner}: inports must be InPort(...) declarations, got {port!r}")
    for port in outports:
        if not isinstance(port, OutPort):
            raise ComponentError(
                f"{owner}: outports must be OutPort(...) declarations, got {port!r}"
            )
    if any(p.name == ERROR_PORT for p in outports):
        raise ComponentError(f"{owner}: ERROR is added to every component; do not declare it")
    in_names = {p.name.lower() for p in inports}
    out_names = {p.name.lower() for p in outports}
    if len(in_names) != len(inports) or len(out_names) != len(outports):
        raise ComponentError(
            f"{owner}: port names must be unique ignoring case, got "
            f"{[p.name for p in inports]} / {[p.name for p in outports]}"
        )
    return inports, outports + (ERROR_OUTPORT,)


class Component:
    """Base class of stateful components (and the runtime's view of every component).

    Declare `inports` and `outports` as class attributes and override any of:
    `setup(**config)`, `process(packet)`, `generate()` (a source's generator), `finish()`,
    `teardown()`. The runtime sets `name` (the process name, `NAME#i` for workers),
    `config` (dict by port keyword) and `out` (output ports by name) before `setup`.

    `process` receives a `Packet` (`.value`, `.seq`, `.meta`, `.port`, `.index`). Its
    return value, if not None, is sent on the default outport with the input packet's
    seq and metadata; a generator `process` may yield several values. Use
    `self.send(port, value)` or `self.out.PORT.send(...)` for anything else.

    Attributes:
        name: the process name.
        config: config values by keyword.
        out: the output ports (`self.out.OUT`, `self.out["OUT"]`).
        log: a logging.Logger whose records reach `fbp run`'s output with the process name.
    """

    inports: ClassVar[Iterable[InPort]] = ()
    outports: ClassVar[Iterable[OutPort]] = ()
    __fbp_component__: ClassVar[ComponentSpec]

    name: str
    config: dict
    out: Any
    log: Any

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_fbp_adapter"):
            return  # the function adapter gets its spec from @component
        inports, outports = _check_ports(cls.__qualname__, cls.inports, cls.outports)
        has_process = cls.process is not Component.process
        has_generate = cls.generate is not Component.generate
        if has_process and has_generate:
            raise ComponentError(f"{cls.__qualname__}: define process() or generate(), not both")
        kind = "source" if has_generate else "class"
        spec = ComponentSpec(
            name=name or cls.__name__,
            kind=kind,
            implementation=cls,
            inports=inports,
            outports=outports,
            doc=inspect.cleandoc(cls.__doc__ or ""),
            origin=f"{cls.__module__}.{cls.__qualname__}",
        )
        cls.__fbp_component__ = spec

    def setup(self, **config: Any) -> None:
        """Called once before the first packet with the config values."""

    def process(self, packet: Packet) -> Any:
        """Called for each packet on a stream inport; see the class docstring."""
        return None

    def generate(self) -> Iterator[Any]:
        """A source's generator; each yielded value (or Packet) is sent on the default port."""
        return iter(())

    def finish(self) -> None:
        """Called once after every input has ended (not after a failure)."""

    def teardown(self) -> None:
        """Called last, always (also after an exception): release resources here."""

    def publish_preview(self, value: Any, name: str = "preview") -> None:
        """Show `value` on the run's dashboard under `name` (docs/dashboard.md).

        An image (2-D array), a curve (1-D array or {radial, intensity}), numbers (a
        number or a dict of them, drawn as time series) or text. At most two a second per
        name are kept, the rest are skipped: call it as often as convenient. Outside
        `fbp run` (tests, notebooks) it does nothing.
        """
        publish = getattr(self, "_publish_preview", None)
        if publish is not None:
            publish(name, value)

    def send(
        self,
        port: str,
        value: Any,
        *,
        seq: int | None = None,
        meta: dict | None = None,
        index: int | None = None,
    ) -> None:
        """Send `value` on outport `port` (see `fbp.runtime.senders.Sender.send`).

        Raises:
            KeyError: no such outport.
            PortTypeError: the value cannot be encoded.
        """
        self.out[port].send(value, seq=seq, meta=meta, index=index)


class _FunctionComponent(Component):
    """Adapter: runs a decorated function or generator as a Component."""

    _fbp_adapter = True
    function: ClassVar[Callable]
    wants_ports: ClassVar[bool] = False

    def setup(self, **config: Any) -> None:
        self._config = dict(config)
        if self.wants_ports:
            self._config["ports"] = self.out

    def process(self, packet: Packet) -> Any:
        return self.function(packet.value, **self._config)

    def generate(self) -> Iterator[Any]:
        return self.function(**self._config)


def component(
    function: Callable | None = None,
    *,
    name: str | None = None,
    inports: Iterable[InPort] | None = None,
    outports: Iterable[OutPort] | None = None,
) -> Any:
    """Declare a function (stateless) or a generator function (source) as a component.

    Args:
        function: the function; use `@component` or `@component(...)`.
        name: component name (default: the function's name).
        inports: port declarations; default one `IN` (Any) for a function, none for a source.
        outports: default one `OUT` (Any).

    A function is called as `function(value, **config)` for each packet of its only stream
    inport; a generator function as `function(**config)`. Either may take a `ports`
    keyword argument to reach its output ports (e.g. `ports.OUT.reserve_array(...)`).
    The function itself is returned unchanged (still callable in unit tests), with the
    spec attached as `__fbp_component__`.

    Raises:
        ComponentError: a bad declaration (e.g. two stream inports on a function).
    """

    def declare(fn: Callable) -> Callable:
        is_source = inspect.isgeneratorfunction(fn)
        ins = (
            tuple(inports)
            if inports is not None
            else (() if is_source else (InPort("IN", AnyValue, "packets to process"),))
        )
        outs = tuple(outports) if outports is not None else (OutPort("OUT", AnyValue, "results"),)
        label = name or fn.__name__
        ins, outs = _check_ports(label, ins, outs)
        streams = [p for p in ins if not p.config]
        if is_source and streams:
            raise ComponentError(
                f"{label}: a generator is a source, so its inports must all be config ports "
                f"(give them a default or config=True); stream inports: "
                f"{[p.name for p in streams]}"
            )
        if not is_source and len(streams) != 1:
            raise ComponentError(
                f"{label}: a function component takes exactly one stream inport (got "
                f"{[p.name for p in streams]}); write a Component subclass for more"
            )
        parameters = inspect.signature(fn).parameters
        adapter = type(
            f"{label}Component",
            (_FunctionComponent,),
            {
                "function": staticmethod(fn),
                "wants_ports": "ports" in parameters,
                "_fbp_adapter": True,
                "inports": (),
                "outports": (),
                "__module__": fn.__module__,
            },
        )
        spec = ComponentSpec(
            name=label,
            kind="source" if is_source else "function",
            implementation=adapter,
            inports=ins,
            outports=outs,
            doc=inspect.cleandoc(fn.__doc__ or ""),
            origin=f"{fn.__module__}.{fn.__qualname__}",
        )
        adapter.__fbp_component__ = spec
        fn.__fbp_component__ = spec  # type: ignore[attr-defined]
        return fn

    return declare(function) if function is not None else declare


def spec_of(obj: Any) -> ComponentSpec:
    """The ComponentSpec of a decorated function or Component subclass.

    Raises:
        ComponentError: obj is not a component.
    """
    spec = getattr(obj, "__fbp_component__", None)
    if not isinstance(spec, ComponentSpec) or obj is Component:
        raise ComponentError(
            f"{obj!r} is not a component: decorate a function with @fbp.component.component "
            "or subclass fbp.component.Component"
        )
    return spec
