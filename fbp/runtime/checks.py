"""Component, port and type checks for `fbp check` (found there as `CHECKS`).

The same checks `fbp run` makes before starting anything: components exist, ports exist,
array indices only on array ports, connection types fit (both ends named), IIPs convert,
required config is given, `workers=`/`capacity=` are valid. Components are searched as
`fbp run` does, with `FBP_PATH` for a user's folders.
"""

from __future__ import annotations

from collections.abc import Iterable

from fbp.errors import GraphError
from fbp.graph import Graph

__all__ = ["CHECKS", "components_and_types"]


def components_and_types(graph: Graph) -> Iterable[GraphError]:
    """Every component-level problem of `graph` (see the module docstring)."""
    from fbp.registry import Registry
    from fbp.runtime.plan import analyse

    return analyse(graph, Registry())[1]


CHECKS = (components_and_types,)
