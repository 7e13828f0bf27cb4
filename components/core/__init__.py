"""core: general-purpose components with NoFlo names (sequences, routing, counting, output).

`fbp components core` lists them with their ports; each is documented in its docstring.
"""

from fbp_components.core.flow import Drop, Kick, Merge, Repeat, Split, Tee
from fbp_components.core.ordering import OrderedMerge
from fbp_components.core.output import Output
from fbp_components.core.select import Filter
from fbp_components.core.sources import Sequence
from fbp_components.core.stats import Batch, Counter
from fbp_components.core.timing import Throttle

__all__ = [
    "Batch",
    "Counter",
    "Drop",
    "Filter",
    "Kick",
    "Merge",
    "OrderedMerge",
    "Output",
    "Repeat",
    "Sequence",
    "Split",
    "Tee",
    "Throttle",
]
