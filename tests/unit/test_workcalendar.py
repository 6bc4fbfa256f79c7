"""SLA deadlines on the Chinese working calendar: holidays, 调休 Saturdays, office hours, 2027."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.workcalendar import WorkCalendar

CN = dt.timezone(dt.timedelta(hours=8))
CAL = WorkCalendar()


def at(y, m, d, hh=10, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=CN)


@pytest.mark.parametrize(("start", "days", "deadline", "why"), [
    (at(2026, 2, 13), 1, at(2026, 2, 14, 17, 30), "the Saturday before Spring Festival is a 调休 working day"),
    (at(2026, 2, 13), 2, at(2026, 2, 24, 17, 30), "Feb 15–23 are the Spring Festival holiday"),
    (at(2026, 9, 30, 16), 1, at(2026, 10, 8, 17, 30), "National Day, Oct 1–7"),
    (at(2026, 10, 9), 1, at(2026, 10, 10, 17, 30), "Saturday Oct 10 is worked after National Day"),
    (at(2026, 11, 6), 5, at(2026, 11, 13, 17, 30), "an ordinary week: weekends skipped"),
    (at(2026, 11, 7), 1, at(2026, 11, 9, 17, 30), "started on a Saturday: Monday is the first working day"),
    (at(2026, 11, 6), 0.5, at(2026, 11, 9, 17, 30), "part of a day counts as a day"),
])
def test_working_day_deadlines(start, days, deadline, why):
    assert CAL.add_working_days(start, days) == deadline, why


@pytest.mark.parametrize(("start", "hours", "deadline"), [
    (at(2026, 11, 9, 10), 1, at(2026, 11, 9, 11)),
    (at(2026, 11, 9, 11, 30), 1, at(2026, 11, 9, 14)),          # over the lunch break
    (at(2026, 11, 9, 20), 2, at(2026, 11, 10, 11)),             # after hours: from next morning
    (at(2026, 2, 13, 16, 30), 2, at(2026, 2, 14, 10)),          # Friday evening → 调休 Saturday
    (at(2026, 9, 30, 17), 1, at(2026, 10, 8, 9, 30)),           # half before, half after National Day
])
def test_working_hour_deadlines(start, hours, deadline):
    assert CAL.add_working_hours(start, hours) == deadline


def test_working_time_between_excludes_nights_weekends_and_holidays():
    assert CAL.working_seconds_between(at(2026, 11, 6, 17), at(2026, 11, 9, 10)) == 1.5 * 3600
    assert CAL.working_seconds_between(at(2026, 9, 30, 17), at(2026, 10, 8, 10)) == 1.5 * 3600
    assert CAL.working_seconds_between(at(2026, 11, 9, 12), at(2026, 11, 9, 13)) == 0  # lunch
    assert CAL.working_seconds_between(at(2026, 11, 9, 12), at(2026, 11, 9, 11)) == 0


def test_beyond_the_packages_data_the_city_file_and_weekends_decide_with_one_warning(tmp_path, caplog):
    holidays = tmp_path / "holidays.yaml"
    holidays.write_text("holidays: [2027-01-01]\nworkdays: []\n", encoding="utf-8")
    calendar = WorkCalendar.from_file(holidays)
    with caplog.at_level(logging.WARNING, logger="pipeline.workcalendar"):
        assert calendar.add_working_days(at(2026, 12, 31), 1) == at(2027, 1, 4, 17, 30)  # no crash on 1 January
        assert calendar.add_working_days(at(2027, 3, 5), 1) == at(2027, 3, 8, 17, 30)
    warnings = [r for r in caplog.records if "no data for 2027" in r.getMessage()]
    assert len(warnings) == 1


@given(start=st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 6, 30)),
       hours=st.floats(min_value=0.25, max_value=60))
def test_adding_working_hours_and_measuring_them_agree(start, hours):
    start = start.replace(tzinfo=CN)
    deadline = CAL.add_working_hours(start, hours)
    assert deadline > start
    assert CAL.working_seconds_between(start, deadline) == pytest.approx(hours * 3600, abs=1e-3)


@given(st.datetimes(min_value=dt.datetime(2025, 9, 25), max_value=dt.datetime(2026, 10, 10)),
       st.integers(min_value=0, max_value=6 * 24 * 60))
def test_working_time_between_is_every_office_minute_counted_one_by_one(start, minutes):
    """Against the plainest oracle: each minute from `start`, counted when it falls in office hours on
    a working day (the weeks around the National Day holiday and its adjusted weekend days)."""
    start = start.replace(second=0, microsecond=0, tzinfo=CAL.tz)
    counted = 0
    for n in range(minutes):
        at = start + dt.timedelta(minutes=n)
        counted += CAL.is_workday(at.date()) and any(opens <= at.time() < closes for opens, closes in CAL.office_hours)
    assert CAL.working_seconds_between(start, start + dt.timedelta(minutes=minutes)) == counted * 60
