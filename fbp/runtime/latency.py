"""Queueing latency of connections: from the rings' histograms to the numbers people read.

Each ring counts, in its shared header, how long every record it delivered had waited
since its producer committed it (fbp_core: a commit stamp in the record header, a
histogram of waits filled by the consumer). The supervisor reads those histograms with the
other ring counters; this module turns them into cumulative buckets (Prometheus' form, and
the snapshot's), a recent mean and percentiles (over the last few samples, so a stage that
falls behind shows now, not averaged over the whole run), and short text for tables.

Percentiles are estimated from the buckets by linear interpolation inside a bucket (as
Prometheus' `histogram_quantile` does), so they are as coarse as the 1-2-5 steps of the
bounds; the mean is exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from fbp.ring import LATENCY_BOUNDS

__all__ = ["LATENCY_BOUNDS", "LatencyWindow", "cumulative", "format_latency", "quantile"]

# samples a recent value spans: 4 intervals of the supervisor's 0.5 s sampling, about 2 s
WINDOW_SAMPLES = 5


def cumulative(counts: Sequence[int]) -> list[int]:
    """Per-bucket counts to cumulative ones: entry i counts every wait <= bound i.

    The last entry (the bucket above every bound, Prometheus' `+Inf`) is the total.
    """
    total = 0
    out = []
    for count in counts:
        total += count
        out.append(total)
    return out


def quantile(q: float, buckets: Sequence[int], bounds: Sequence[float] = LATENCY_BOUNDS):
    """Estimate the `q` quantile (0 < q <= 1) of waits from cumulative bucket counts.

    Returns None when the buckets count nothing. A quantile above the top bound is
    reported as the top bound (a lower limit, as Prometheus does).

    Raises:
        ValueError: q is not in (0, 1], or buckets is not one longer than bounds.
    """
    if not 0 < q <= 1:
        raise ValueError(f"quantile q={q!r} must be in (0, 1]")
    if len(buckets) != len(bounds) + 1:
        raise ValueError(
            f"{len(buckets)} cumulative buckets for {len(bounds)} bounds; "
            f"expected {len(bounds) + 1} (one above the top bound)"
        )
    total = buckets[-1]
    if total <= 0:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(buckets):
        if count >= rank:
            if index == len(bounds):
                return float(bounds[-1])
            lower = float(bounds[index - 1]) if index else 0.0
            return lower + (bounds[index] - lower) * (rank - below) / (count - below)
        below = count
    return float(bounds[-1])  # pragma: no cover - buckets[-1] >= rank always ends the loop


class LatencyWindow:
    """The waits of the last few samples of one ring: recent mean, p50 and p99.

    Args:
        samples: how many samples the window spans (one more than its intervals).
    """

    def __init__(self, samples: int = WINDOW_SAMPLES) -> None:
        self._history: deque = deque(maxlen=samples)

    def update(self, buckets: Sequence[int], total: float) -> dict:
        """Add one sample (cumulative buckets and summed seconds since the ring began).

        Returns:
            {"latency_mean", "latency_p50", "latency_p99"}: seconds over the window, or
            None each when no record was taken in it.
        """
        self._history.append((tuple(buckets), float(total)))
        first_buckets, first_total = self._history[0]
        recent = [now - then for now, then in zip(buckets, first_buckets, strict=True)]
        count = recent[-1] if recent else 0
        if count <= 0:
            return {"latency_mean": None, "latency_p50": None, "latency_p99": None}
        return {
            "latency_mean": (total - first_total) / count,
            "latency_p50": quantile(0.5, recent),
            "latency_p99": quantile(0.99, recent),
        }


def format_latency(seconds: float | None) -> str:
    """Short text for a table cell: `35 us`, `2.1 ms`, `1.20 s`; `-` for None."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.2f} s"
