"""A source whose module takes a while to import, as scientific libraries do (runtime tests)."""

import time

from fbp.component import OutPort, component
from fbp.types import Int

time.sleep(1.5)  # importing: the process exists, its component is not set up yet


@component(outports=[OutPort("OUT", Int, "0, 1, 2, ... forever")])
def Count():
    """Count forever, slowly, until asked to stop."""
    number = 0
    while True:
        yield number
        number += 1
        time.sleep(0.01)
