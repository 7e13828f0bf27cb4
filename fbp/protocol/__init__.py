"""The FBP network protocol (flowbased.github.io/fbp-protocol) over WebSocket.

`fbp runtime --port N` serves it so FBP tools (noflo-ui, Flowhub, fbp-protocol's own
`fbp-test`) can list components, edit graphs, start and stop networks and watch packets.
Networks run on the real runtime: `fbp.runtime.plan.make_plan` and a `Supervisor`, one OS
process per component and shared-memory rings, exactly as `fbp run` runs them.

Modules, one concept each:
- `messages`: message envelopes, `ProtocolError`, JSON-safe packet previews;
- `graphs`: the graph protocol, editing `fbp.graph.Graph` objects held by the server;
- `components`: the component protocol (`component:list`);
- `tap`: a Supervisor that copies watched connections into side rings, and their reader;
- `exports`: exported ports of a running graph for `runtime:packet` (in and out);
- `network`: the network protocol: start, stop, status, watched edges;
- `output`: what components print, forwarded as `network:output`;
- `server`: the WebSocket transport and the runtime protocol (`runtime:getruntime`);
- `schema`: validation of messages against the JSON schemas of the npm `fbp-protocol`.
"""

from __future__ import annotations

__all__ = ["PROTOCOL_VERSION"]

PROTOCOL_VERSION = "0.7"
