"""Sources: components that make packets from nothing but their config."""

from __future__ import annotations

from fbp.component import InPort, OutPort, component
from fbp.packet import Packet
from fbp.types import Int


@component(
    inports=[InPort("COUNT", Int, "how many numbers to send; -1 sends forever", default=-1)],
    outports=[OutPort("OUT", Int, "0, 1, 2, ... with seq equal to the number")],
)
def Sequence(*, count):
    """Send the numbers 0, 1, 2, ... (COUNT of them, or forever when COUNT is -1).

    Each packet's seq is its number, so downstream `workers=N` and `core/OrderedMerge`
    can restore the order.
    """
    number = 0
    while count < 0 or number < count:
        yield Packet(number, seq=number)
        number += 1
