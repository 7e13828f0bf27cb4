"""Running networks: plan a graph, start one process per component instance, supervise.

`fbp.runtime.plan.make_plan(graph, registry)` checks everything before anything starts;
`fbp.runtime.supervisor.Supervisor(plan)` runs it (`fbp run` is the command-line front
end). Component processes run `fbp.runtime.child`; `fbp.runtime.executor` drives a
component the same way in a child and in the test harness `fbp.testing`.

Names are imported lazily so a component process does not pay for the graph layer.
"""

from __future__ import annotations

import importlib

__all__ = ["Plan", "Supervisor", "component_checks", "make_plan"]

_WHERE = {
    "Plan": "fbp.runtime.plan",
    "component_checks": "fbp.runtime.plan",
    "make_plan": "fbp.runtime.plan",
    "Supervisor": "fbp.runtime.supervisor",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'fbp.runtime' has no attribute {name!r}")
