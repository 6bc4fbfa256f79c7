"""Hotspots: N reports of one item in one grid (or community) within a window → one alert.

Pure and deterministic: feed reports in time order; an alert fires once when a place's count
reaches the threshold and not again until the window has emptied below it.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Hotspot:
    item_no: str
    place: str  # grid code, else community code
    reports: int
    first_at: dt.datetime
    last_at: dt.datetime

    @property
    def alert_id(self) -> str:
        return f"hotspot:{self.item_no}:{self.place}:{self.first_at.isoformat()}"


class HotspotDetector:
    def __init__(self, threshold: int = 5, window: dt.timedelta = dt.timedelta(hours=24)):
        self.threshold = threshold
        self.window = window
        self._seen: dict[tuple[str, str], deque[dt.datetime]] = {}
        self._alerting: set[tuple[str, str]] = set()

    def state(self) -> dict:
        return {"seen": [[item, place, [t.isoformat() for t in times]] for (item, place), times in self._seen.items()],
                "alerting": sorted(list(k) for k in self._alerting)}

    def restore(self, state: dict) -> HotspotDetector:
        self._seen = {(item, place): deque(dt.datetime.fromisoformat(t) for t in times)
                      for item, place, times in state.get("seen", [])}
        self._alerting = {tuple(k) for k in state.get("alerting", [])}
        return self

    def offer(self, item_no: str, place: str | None, at: dt.datetime) -> Hotspot | None:
        if place is None:
            return None
        key = (item_no, place)
        times = self._seen.setdefault(key, deque())
        times.append(at)
        while times and at - times[0] > self.window:
            times.popleft()
        if len(times) < self.threshold:
            self._alerting.discard(key)  # quiet again: the next surge alerts anew
            return None
        if key in self._alerting:
            return None
        self._alerting.add(key)
        return Hotspot(item_no, place, len(times), times[0], at)
