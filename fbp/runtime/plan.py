"""From a Graph to a runnable plan: components resolved, ports and types checked.

Everything a user can get wrong is found here, before any process starts, and reported
as GraphErrors at the `.fbp` line (all at once): unknown components and ports, array
indices on plain ports, type mismatches (naming both ends and their types), IIPs their
port's type cannot convert, missing required config, bad `workers=`/`capacity=` metadata.
`fbp check` runs the same checks through `component_checks`.

Process metadata understood here (other keys are left to later layers):
- `workers=N`: run N copies; packets are spread over them, least-loaded first.
- `capacity=SIZE`: bytes of each ring feeding this process (`16M`, `256KiB`, `1G`, `65536`).
- `restart=never|always|on-crash` (default never), `max_restarts=N` (default 10): what the
  supervisor does when an instance dies (docs/running.md, "Restarts").
- `on_error=skip|fail|restart` (default skip): what an exception in `process` does.
- `hang_timeout=S`: seconds without a heartbeat before the process counts as hung (0:
  never; default: `fbp run --hang-timeout`, 10 s).
- `policy=reliable|latest|sampled` (default reliable), `keep=N` (latest: newest N kept,
  default 1), `rate=R` (sampled: at most R packets a second, default 10): the delivery
  policy of the process's stream inputs; `policy_PORT=...` for one inport; in a JSON
  graph an edge's `metadata.policy` for one connection (docs/running.md).
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fbp.component import ComponentSpec, InPort, OutPort
from fbp.errors import ComponentError, GraphError, PortTypeError
from fbp.graph import Graph, Location, PortRef

__all__ = [
    "DEFAULT_CAPACITY",
    "Plan",
    "PlannedConnection",
    "PlannedProcess",
    "component_checks",
    "make_plan",
    "parse_size",
    "port_label",
]

DEFAULT_CAPACITY = 16 * 1024 * 1024
DEFAULT_MAX_RESTARTS = 10
RESTART_POLICIES = ("never", "always", "on-crash")
ERROR_POLICIES = ("skip", "fail", "restart")
DELIVERY_POLICIES = ("reliable", "latest", "sampled")
MAX_WORKERS = 256
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?[bB]?)\s*$")


def port_label(ref: PortRef, instance: str) -> str:
    """`INSTANCE.PORT[index]`: one end of a ring, as status tables and the ledger show it."""
    index = "" if ref.index is None else f"[{ref.index}]"
    return f"{instance}.{ref.port}{index}"


def parse_size(text: Any) -> int:
    """Read a byte size: 65536, "64K", "16M", "16MiB", "1G".

    Raises:
        ValueError: not a positive size.
    """
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"capacity {text!r} is not a size such as 65536, 256K, 16M or 1G")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    size = int(float(match.group(1)) * scale)
    if size < 4096:
        raise ValueError(f"capacity {text!r} is below the minimum of 4096 bytes")
    return size


@dataclass
class PlannedProcess:
    """One graph process, resolved: its component, instances and config."""

    name: str
    spec: ComponentSpec
    workers: int = 1
    capacity: int = DEFAULT_CAPACITY
    location: Location | None = None
    config: dict[str, Any] = field(default_factory=dict)  # port name -> raw IIP value
    stream_iips: list[tuple[str, int | None, Any]] = field(default_factory=list)
    restart: str = "never"
    max_restarts: int = DEFAULT_MAX_RESTARTS
    on_error: str = "skip"
    policy: str = "reliable"
    keep: int = 1
    rate: float = 10.0
    hang_timeout: float | None = None  # seconds without a heartbeat; None: the run's default
    port_policies: dict[str, str] = field(default_factory=dict)  # `policy_PORT=...` metadata

    @property
    def instances(self) -> list[str]:
        """Instance names: `NAME`, or `NAME#0` ... `NAME#N-1` for workers=N."""
        if self.workers == 1:
            return [self.name]
        return [f"{self.name}#{i}" for i in range(self.workers)]


@dataclass
class PlannedConnection:
    """One graph connection with canonical port names and resolved array indices."""

    number: int
    src: PortRef
    tgt: PortRef
    src_port: OutPort
    tgt_port: InPort
    location: Location | None = None
    policy: str | None = None  # this connection's delivery policy; None: the process's

    def delivery(self, target: PlannedProcess) -> str:
        """The delivery policy of this connection into `target`."""
        if self.policy is not None:
            return self.policy
        return target.port_policies.get(self.tgt.port.upper(), target.policy)


@dataclass
class Plan:
    """A checked network: processes and connections ready to be given rings."""

    graph: Graph
    processes: dict[str, PlannedProcess]
    connections: list[PlannedConnection]


def _metadata_int(graph: Graph, process, key: str, low: int, high: int) -> tuple[int | None, Any]:
    raw = process.metadata.get(key)
    if raw is None:
        return None, None
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        return None, graph.error(
            f"process '{process.name}': {key}={raw!r} must be a whole number from {low} to {high}",
            process.location,
            hint=f"e.g. {process.name}({process.component}:{key}=4)",
        )
    return value, None


def _port_problem(graph, planned, port_name, direction, location) -> GraphError:
    ports = planned.spec.inports if direction == "in" else planned.spec.outports
    names = [p.name for p in ports]

    close = difflib.get_close_matches(port_name.upper(), names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    hint += f"{planned.spec.full_name} {direction}ports: {', '.join(names) or 'none'}"
    return graph.error(
        f"process '{planned.name}' ({planned.spec.full_name}) has no {direction}port "
        f"'{port_name.upper() if not graph.case_sensitive else port_name}'",
        location,
        hint=hint,
    )


def analyse(graph: Graph, registry) -> tuple[Plan, list[GraphError]]:
    """Resolve and check a graph; return the plan and every problem found.

    The plan is only usable when the problem list is empty.
    """
    problems: list[GraphError] = []
    processes: dict[str, PlannedProcess] = {}
    for process in graph.processes.values():
        if not process.component:
            continue  # structural validation reports it
        try:
            spec = registry.get(process.component)
        except ComponentError as exc:
            problems.append(
                graph.error(
                    str(exc), process.location, hint="`fbp components` lists every component found"
                )
            )
            continue
        planned = PlannedProcess(process.name, spec, location=process.location)
        workers, problem = _metadata_int(graph, process, "workers", 1, MAX_WORKERS)
        if problem:
            problems.append(problem)
        planned.workers = workers or 1
        if "capacity" in process.metadata:
            try:
                planned.capacity = parse_size(process.metadata["capacity"])
            except ValueError as exc:
                problems.append(graph.error(f"process '{process.name}': {exc}", process.location))
        for key, choices in (
            ("restart", RESTART_POLICIES),
            ("on_error", ERROR_POLICIES),
            ("policy", DELIVERY_POLICIES),
        ):
            if key in process.metadata:
                # on_crash: the reference parser's metadata has no '-'
                value = str(process.metadata[key]).strip().lower().replace("_", "-")
                value = value.replace("-", "_") if key == "on_error" else value
                if value not in choices:
                    problems.append(
                        graph.error(
                            f"process '{process.name}': {key}={process.metadata[key]!r} must be "
                            f"one of {', '.join(choices)}",
                            process.location,
                            hint=f"e.g. {process.name}({process.component}:{key}={choices[1]})",
                        )
                    )
                    continue
                setattr(planned, key, value)
        for key, raw in process.metadata.items():
            if not key.lower().startswith("policy_"):
                continue
            value = str(raw).strip().lower()
            port = key[len("policy_") :].upper()
            if value not in DELIVERY_POLICIES or spec.inport(port, False) is None:
                inports = ", ".join(p.name for p in spec.inports)
                problems.append(
                    graph.error(
                        f"process '{process.name}': {key}={raw!r} needs an inport of "
                        f"{spec.full_name} ({inports}) and one of {', '.join(DELIVERY_POLICIES)}",
                        process.location,
                        hint=f"e.g. {process.name}({process.component}:policy_IN=latest)",
                    )
                )
                continue
            planned.port_policies[port] = value
        limit, problem = _metadata_int(graph, process, "max_restarts", 0, 1_000_000)
        if problem:
            problems.append(problem)
        elif limit is not None:
            planned.max_restarts = limit
        keep, problem = _metadata_int(graph, process, "keep", 1, 1_000_000)
        if problem:
            problems.append(problem)
        elif keep is not None:
            planned.keep = keep
        if "hang_timeout" in process.metadata:
            try:
                planned.hang_timeout = float(str(process.metadata["hang_timeout"]).strip())
                if planned.hang_timeout < 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    graph.error(
                        f"process '{process.name}': hang_timeout="
                        f"{process.metadata['hang_timeout']!r} must be seconds >= 0 (0: never)",
                        process.location,
                        hint=f"e.g. {process.name}({process.component}:hang_timeout=30)",
                    )
                )
        if "rate" in process.metadata:
            try:
                planned.rate = float(str(process.metadata["rate"]).strip())
                if not planned.rate > 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    graph.error(
                        f"process '{process.name}': rate={process.metadata['rate']!r} must be "
                        "a number of packets per second above 0",
                        process.location,
                        hint=f"e.g. {process.name}({process.component}:policy=sampled,rate=5)",
                    )
                )
        processes[process.name] = planned

    next_index: dict[tuple[str, str, str], int] = defaultdict(int)

    def resolve(ref: PortRef, direction: str, location) -> tuple[PortRef, Any] | None:
        planned = processes.get(ref.process)
        if planned is None:
            return None
        find = planned.spec.inport if direction == "in" else planned.spec.outport
        port = find(ref.port, graph.case_sensitive)
        if port is None:
            problems.append(_port_problem(graph, planned, ref.port, direction, location))
            return None
        index = ref.index
        if index is not None and not port.array:
            problems.append(
                graph.error(
                    f"{planned.name}.{port.name} is not an array port, "
                    f"so it takes no index [{index}]",
                    location,
                    hint=f"write {port.name} without [{index}]",
                )
            )
            return None
        if port.array and index is None:
            key = (planned.name, direction, port.name)
            index = next_index[key]
            next_index[key] += 1
        elif port.array:
            key = (planned.name, direction, port.name)
            next_index[key] = max(next_index[key], index + 1)
        return PortRef(planned.name, port.name, index), port

    connections: list[PlannedConnection] = []
    for number, connection in enumerate(graph.connections):
        where = connection.location
        target = resolve(connection.tgt, "in", connection.target_location or where)
        if connection.src is None:
            if target is None:
                continue
            ref, port = target
            planned = processes[ref.process]
            try:
                port.type.convert(connection.data)
            except PortTypeError as exc:
                problems.append(
                    graph.error(
                        f"IIP {connection.data!r} -> {ref.port} {ref.process}: {exc}",
                        where,
                        hint=f"{planned.spec.full_name}.{port.name} takes {port.type}"
                        + (f": {port.description}" if port.description else ""),
                    )
                )
                continue
            if port.config:
                planned.config[port.name] = connection.data
            else:
                planned.stream_iips.append((port.name, ref.index, connection.data))
            continue
        source = resolve(connection.src, "out", where)
        if source is None or target is None:
            continue
        (src, src_port), (tgt, tgt_port) = source, target
        if not tgt_port.type.accepts(src_port.type):
            src_spec = processes[src.process].spec.full_name
            tgt_spec = processes[tgt.process].spec.full_name
            problems.append(
                graph.error(
                    f"type mismatch: {src} ({src_spec}) sends {src_port.type}, but {tgt} "
                    f"({tgt_spec}) accepts {tgt_port.type}",
                    where,
                    hint="connect ports whose types match, or put a converting component between",
                )
            )
            continue
        planned_connection = PlannedConnection(number, src, tgt, src_port, tgt_port, where)
        # A JSON graph can give one connection its own policy (edge metadata "policy").
        edge_policy = (connection.metadata or {}).get("policy")
        if edge_policy is not None:
            if str(edge_policy) not in DELIVERY_POLICIES:
                problems.append(
                    graph.error(
                        f"connection {src} -> {tgt}: policy={edge_policy!r} must be one of "
                        f"{', '.join(DELIVERY_POLICIES)}",
                        where,
                    )
                )
                continue
            planned_connection.policy = str(edge_policy)
        connections.append(planned_connection)

    connected_inputs = {(c.tgt.process, c.tgt.port) for c in connections}
    for planned in processes.values():
        for port in planned.spec.config_inports:
            if (
                port.required
                and port.name not in planned.config
                and ((planned.name, port.name) not in connected_inputs)
            ):
                problems.append(
                    graph.error(
                        f"process '{planned.name}' ({planned.spec.full_name}): config port "
                        f"{port.name} ({port.type}) needs a value",
                        planned.location,
                        hint=f"give it an IIP, e.g. 'VALUE' -> {port.name} {planned.name}"
                        + (f" ({port.description})" if port.description else ""),
                    )
                )
    return Plan(graph, processes, connections), problems


def make_plan(graph: Graph, registry) -> Plan:
    """Check a graph fully (structure, components, ports, types, IIPs) and plan it.

    Raises:
        ExceptionGroup: of GraphError, one per problem, when the graph cannot run.
    """
    from fbp.graph import validate

    plan, found = analyse(graph, registry)
    problems = validate(graph, extra_checks=[lambda _graph: found])
    if problems:
        raise ExceptionGroup(f"{len(problems)} problem(s) in {graph.file}", problems)
    return plan


def component_checks(registry) -> list:
    """Checks for `fbp.graph.validate(extra_checks=...)`: components, ports, types, IIPs."""
    return [lambda graph: analyse(graph, registry)[1]]
