"""Working time for SLA clocks: Chinese public holidays, adjusted working days (调休), office hours.

Years the `chinese-calendar` package knows come from it. It only knows years up to its release
(2026 for 1.11.0) and raises for later ones; there the city's own holiday file decides, then
weekends — with one warning per year, never an error: the clock must not stop on 1 January.

Deadlines follow the usual rules of Chinese time limits: "within N working days" ends at the close
of office hours on the Nth working day after the day the clock started (that day not counted);
"within N working hours" counts office hours only.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import chinese_calendar
import yaml

from pipeline.dutylists import CITY_TZ

log = logging.getLogger(__name__)

DEFAULT_OFFICE_HOURS = ((dt.time(9, 0), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 30)))


@dataclass
class WorkCalendar:
    office_hours: tuple[tuple[dt.time, dt.time], ...] = DEFAULT_OFFICE_HOURS
    holidays: frozenset[dt.date] = frozenset()  # the city's file: days off beyond the package's data
    workdays: frozenset[dt.date] = frozenset()  # …and adjusted working days (调休) on weekends
    tz: dt.tzinfo = CITY_TZ
    _warned: set[int] = field(default_factory=set, repr=False)
    # Answers so far, per day: chinese-calendar validates its argument on every call, and every
    # task opened walks a few weeks of days (the profile of the task stage put 15% of it there).
    _days: dict[dt.date, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def from_file(cls, path: Path, **kwargs) -> WorkCalendar:
        """A YAML file with `holidays:` and `workdays:` lists of dates (the city maintains it)."""
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(holidays=frozenset(_dates(data.get("holidays", []))),
                   workdays=frozenset(_dates(data.get("workdays", []))), **kwargs)

    def is_workday(self, day: dt.date) -> bool:
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = self._is_workday(day)
        return known

    def _is_workday(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning("chinese-calendar has no data for %d: the city holiday file and weekends decide; "
                            "update the package or the file", day.year)
            return day.weekday() < 5

    @property
    def hours_per_day(self) -> float:
        return sum(_hours(start, end) for start, end in self.office_hours)

    def add_working_days(self, start: dt.datetime, days: float) -> dt.datetime:
        """Close of office hours on the ceil(days)-th working day after `start`'s day."""
        day = start.astimezone(self.tz).date()
        remaining = math.ceil(days)
        while remaining > 0:
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                remaining -= 1
        return dt.datetime.combine(day, self.office_hours[-1][1], self.tz)

    def add_working_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The instant `hours` of office time after `start`."""
        remaining = dt.timedelta(hours=hours)
        for opens, closes in self._periods_from(start):
            available = closes - opens
            if remaining <= available:
                return opens + remaining
            remaining -= available
        raise AssertionError("unreachable: periods never run out")

    def working_seconds_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Office time between two instants, in seconds (0 when end is not after start): the parts of
        the first and the last day, and the working days between counted whole (walking every office
        period in between made this most of what opening a replayed task cost)."""
        if end <= start:
            return 0.0
        local_start, local_end = start.astimezone(self.tz), end.astimezone(self.tz)
        first, last = local_start.date(), local_end.date()
        if first == last:
            return self._office_time(first, local_start, local_end).total_seconds()
        whole_days = sum(self.is_workday(first + dt.timedelta(days=n)) for n in range(1, (last - first).days))
        return (self._office_time(first, local_start, None) + self._office_time(last, None, local_end)
                + whole_days * self._office_day).total_seconds()

    def _office_time(self, day: dt.date, after: dt.datetime | None, before: dt.datetime | None) -> dt.timedelta:
        """Office time on `day` after `after` and before `before` (None: from the opening, to the close)."""
        total = dt.timedelta()
        if not self.is_workday(day):
            return total
        for opens_at, closes_at in self.office_hours:
            opens, closes = dt.datetime.combine(day, opens_at, self.tz), dt.datetime.combine(day, closes_at, self.tz)
            if after is not None:
                opens = max(opens, after)
            if before is not None:
                closes = min(closes, before)
            if closes > opens:
                total += closes - opens
        return total

    @property
    def _office_day(self) -> dt.timedelta:
        return dt.timedelta(hours=self.hours_per_day)

    def _periods_from(self, start: dt.datetime) -> Iterable[tuple[dt.datetime, dt.datetime]]:
        """Office periods from `start` on, the first cut to begin at `start`."""
        local = start.astimezone(self.tz)
        day = local.date()
        while True:
            if self.is_workday(day):
                for opens_at, closes_at in self.office_hours:
                    opens = dt.datetime.combine(day, opens_at, self.tz)
                    closes = dt.datetime.combine(day, closes_at, self.tz)
                    if closes <= local:
                        continue
                    yield max(opens, local), closes
            day += dt.timedelta(days=1)


def _hours(start: dt.time, end: dt.time) -> float:
    return (dt.datetime.combine(dt.date.min, end) - dt.datetime.combine(dt.date.min, start)).total_seconds() / 3600


def _dates(values: Iterable) -> Iterable[dt.date]:
    for value in values:
        yield value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
