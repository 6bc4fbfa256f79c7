"""The worker's idea of now. In production it is the real time. A demo or a simulation runs a
scaled clock — `start` at the real instant `origin`, then `scale` simulated seconds per real one —
so days of working-time limits pass in minutes. Every process of one run (worker, simulator,
feeder) gets the same three settings and so agrees on the time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    scale: float = 1.0
    origin: dt.datetime | None = None  # real instant the scaled clock starts
    start: dt.datetime | None = None  # the simulated instant at `origin`

    def now(self) -> dt.datetime:
        real = dt.datetime.now(dt.timezone.utc)
        if self.origin is None or self.start is None:
            return real
        return self.start + (real - self.origin) * self.scale

    def real_seconds(self, simulated: dt.timedelta) -> float:
        """How long to wait, in real seconds, for `simulated` time to pass."""
        return simulated.total_seconds() / self.scale
