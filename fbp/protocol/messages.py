"""Message envelopes, the protocol's error, and JSON-safe previews of packet values."""

from __future__ import annotations

import math
from typing import Any

from fbp.errors import FBPError

__all__ = ["ProtocolError", "error_message", "message", "preview"]

# Arrays up to this many elements are sent whole; larger ones as a summary, so watching a
# detector stream sends a few hundred bytes per sample instead of megabytes.
ARRAY_ELEMENTS_SENT = 64
STRING_CHARACTERS_SENT = 4096
ITEMS_SENT = 64


class ProtocolError(FBPError, ValueError):
    """A request the runtime cannot honour; it becomes a `<protocol>:error` message.

    Args:
        protocol: the protocol of the request ("graph", "network", ...).
        text: what went wrong and what would work.
        graph: the graph the request was about, when known.
    """

    def __init__(self, protocol: str, text: str, graph: str | None = None) -> None:
        super().__init__(text)
        self.protocol = protocol
        self.text = text
        self.graph = graph


def message(protocol: str, command: str, payload: Any) -> dict:
    """One protocol message as sent on the wire (before JSON encoding)."""
    return {"protocol": protocol, "command": command, "payload": payload}


def error_message(error: ProtocolError) -> dict:
    """The `<protocol>:error` message for a ProtocolError."""
    payload: dict[str, Any] = {"message": error.text}
    if error.graph is not None and error.protocol == "network":
        payload["graph"] = error.graph
    return message(error.protocol, "error", payload)


def preview(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded rendering of a packet value for `network:data`.

    Small arrays are sent as nested lists; larger ones as a summary (dtype, shape, min,
    max, mean). Strings, mappings and sequences are truncated; bytes become a length.
    """
    import numpy

    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and len(value) > STRING_CHARACTERS_SENT:
            return value[:STRING_CHARACTERS_SENT] + "..."
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, numpy.generic):
        return preview(value.item(), depth)
    if isinstance(value, numpy.ndarray):
        if value.size <= ARRAY_ELEMENTS_SENT and value.dtype.kind in "biuf":
            return preview(value.tolist(), depth)
        summary: dict[str, Any] = {"dtype": str(value.dtype), "shape": list(value.shape)}
        if value.size and value.dtype.kind in "biuf":
            summary.update(
                min=preview(value.min().item()),
                max=preview(value.max().item()),
                mean=preview(float(value.mean())),
            )
        return {"array": summary}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    if depth > 4:
        return repr(value)[:200]
    if isinstance(value, dict):
        items = list(value.items())[:ITEMS_SENT]
        return {str(key): preview(item, depth + 1) for key, item in items}
    if isinstance(value, list | tuple):
        return [preview(item, depth + 1) for item in value[:ITEMS_SENT]]
    return repr(value)[:200]
