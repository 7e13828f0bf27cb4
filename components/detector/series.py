"""Turning stream messages into well-formed series: every image inside a start/end pair.

A receiver may connect mid-series (the detector never re-sends the start), miss an end
(detector restarted), or get garbage. `SeriesTracker` repairs what it can and counts the
rest, so a downstream bracket is always opened before and closed after its images.
"""

from __future__ import annotations

from collections import Counter

from .messages import Image, SeriesEnd, SeriesStart

__all__ = ["SeriesTracker"]


class SeriesTracker:
    """Feed decoded messages in arrival order; get back events with repaired brackets.

    Counts (in `counts`): `series` started, `images`, `ends`, `missing_start` (a start made
    up on the first image of an unannounced series), `missing_end` (a series closed because
    another one began), `orphan_end` (an end for a series that was never open, dropped).
    """

    def __init__(self) -> None:
        self.current: SeriesStart | None = None
        self.counts: Counter[str] = Counter()

    def feed(self, message: SeriesStart | Image | SeriesEnd) -> list:
        """The events `message` implies, in order (possibly none)."""
        events: list = []
        if isinstance(message, SeriesStart):
            events += self._close_unfinished()
            self.current = message
            self.counts["series"] += 1
            events.append(message)
        elif isinstance(message, Image):
            if self.current is None or not self._same_series(message):
                events += self._close_unfinished()
                self.current = SeriesStart(message.series_id, message.unique_id, seen=False)
                self.counts["series"] += 1
                self.counts["missing_start"] += 1
                events.append(self.current)
            self.counts["images"] += 1
            events.append(message)
        elif isinstance(message, SeriesEnd):
            if self.current is not None and self._same_series(message):
                self.current = None
                self.counts["ends"] += 1
                events.append(message)
            else:
                self.counts["orphan_end"] += 1
        return events

    def close(self) -> list:
        """Events to end the stream: the end of a series still open (counted as missing)."""
        return self._close_unfinished()

    def _same_series(self, message: Image | SeriesEnd) -> bool:
        assert self.current is not None
        if message.series_id != self.current.series_id:
            return False
        known = self.current.unique_id
        return known is None or message.unique_id is None or message.unique_id == known

    def _close_unfinished(self) -> list:
        if self.current is None:
            return []
        end = SeriesEnd(self.current.series_id, self.current.unique_id, {"missing": True})
        self.current = None
        self.counts["missing_end"] += 1
        return [end]
