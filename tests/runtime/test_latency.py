"""fbp.runtime.latency: cumulative buckets, quantile estimates, the recent window, text."""

from __future__ import annotations

import pytest

from fbp.ring import LATENCY_BOUNDS
from fbp.runtime.latency import LatencyWindow, cumulative, format_latency, quantile


def bucket_of(seconds: float) -> int:
    return next(i for i, bound in enumerate(LATENCY_BOUNDS) if seconds <= bound)


def test_cumulative_buckets_and_quantiles_interpolated_inside_a_bucket():
    bounds = (1.0, 2.0, 5.0)
    counts = [10, 0, 10, 0]
    buckets = cumulative(counts)
    assert buckets == [10, 10, 20, 20]
    assert quantile(0.5, buckets, bounds) == pytest.approx(1.0)
    assert quantile(0.25, buckets, bounds) == pytest.approx(0.5)  # inside [0, 1]
    assert quantile(1.0, buckets, bounds) == pytest.approx(5.0)
    assert quantile(0.99, [0, 0, 0, 5], bounds) == 5.0  # above the top: the top bound
    assert quantile(0.5, [0, 0, 0, 0], bounds) is None
    with pytest.raises(ValueError, match=r"q=0 must be in \(0, 1\]"):
        quantile(0, buckets, bounds)
    with pytest.raises(ValueError, match=r"3 cumulative buckets for 3 bounds; expected 4"):
        quantile(0.5, [1, 2, 3], bounds)


def test_the_recent_window_forgets_what_was_taken_before_it():
    window = LatencyWindow(samples=3)
    size = len(LATENCY_BOUNDS) + 1
    empty = window.update([0] * size, 0.0)
    assert empty == {"latency_mean": None, "latency_p50": None, "latency_p99": None}
    slow = [0] * size
    slow[bucket_of(0.3)] = 4
    recent = window.update(cumulative(slow), 1.2)
    assert recent["latency_mean"] == pytest.approx(0.3)
    assert 0.2 <= recent["latency_p50"] <= 0.5
    # two samples later the slow ones left the window: nothing taken since, nothing shown
    window.update(cumulative(slow), 1.2)
    assert window.update(cumulative(slow), 1.2)["latency_p50"] is None


def test_latencies_read_as_short_text():
    assert [format_latency(s) for s in (None, 35e-6, 2.1e-3, 0.25, 1.2)] == [
        "-", "35 us", "2.1 ms", "250 ms", "1.20 s"
    ]  # fmt: skip
