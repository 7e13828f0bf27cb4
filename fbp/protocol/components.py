"""The component protocol: `component:list` answers with one `component:component` per
component the registry finds (built-in libraries, entry points, `--path`/`FBP_PATH`),
then `component:componentsready` with the count.

Port ids are sent in lower case, the NoFlo convention (`.fbp` port names are
case-insensitive here, so `in` and `IN` name the same port). fbp port types map to the
protocol's datatype names.
"""

from __future__ import annotations

from typing import Any

from fbp.protocol.messages import message, preview

__all__ = ["component_messages", "describe_component", "protocol_type"]

_TYPE_NAMES = {
    "Any": "all",
    "Int": "int",
    "Float": "number",
    "Str": "string",
    "Bool": "boolean",
    "Record": "object",
    "Array": "array",
    "Bytes": "buffer",
}


def protocol_type(port_type) -> str:
    """The fbp-protocol datatype name of an fbp port type (`Array(...)` -> "array")."""
    return _TYPE_NAMES.get(port_type.describe().get("type"), "all")


def _port(port, inport: bool) -> dict:
    described: dict[str, Any] = {
        "id": port.name.lower(),
        "type": protocol_type(port.type),
        "description": port.description or str(port.type),
        "addressable": bool(port.array),
    }
    if inport:
        described["required"] = bool(port.required)
        if port.config and not port.required and port.default is not None:
            described["default"] = preview(port.default)
    return described


def describe_component(spec) -> dict:
    """The `component:component` payload of one ComponentSpec."""
    return {
        "name": spec.full_name,
        "description": (spec.doc or "").strip().split("\n\n")[0],
        "subgraph": False,
        "inPorts": [_port(port, True) for port in spec.inports],
        "outPorts": [_port(port, False) for port in spec.outports],
    }


def component_messages(registry) -> list[dict]:
    """Every component as a message, libraries that failed to load as errors, then the
    `componentsready` count."""
    specs, errors = registry.all()
    replies = [message("component", "component", describe_component(spec)) for spec in specs]
    replies.extend(message("component", "error", {"message": str(error)}) for error in errors)
    replies.append(message("component", "componentsready", len(specs)))
    return replies
