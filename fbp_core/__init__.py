"""Compiled core of fbp: shared-memory segments and the SPSC ring.

Nothing but `fbp.ring` imports this package; it knows nothing about graphs or components.
"""

try:
    from fbp_core import _ring  # noqa: F401
except ImportError as exc:  # pragma: no cover - only hit on a broken install
    raise ImportError(
        "fbp_core's compiled extension is missing. Build and install the package with "
        "`pip install .` (needs gcc and Python headers); running from the source tree "
        "without building is not supported."
    ) from exc
