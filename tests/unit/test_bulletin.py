"""每月一题 on made-up reports: the groups, the stated heat, the month before, no problem listed twice."""

from __future__ import annotations

import datetime as dt

from pipeline.bulletin import MonthReport, month_window, recurring_problems
from pipeline.dutylists import CITY_TZ

AT = dt.datetime(2026, 11, 5, tzinfo=CITY_TZ)


def _report(n: int, title: str, text: str, place: str | None, item: str | None, *, still_open: bool = False):
    return MonthReport(f"i{n:03d}", AT, title, text, place, item, "cgj" if item else None, still_open)


def test_one_item_in_one_place_is_a_problem_and_its_heat_is_the_stated_sum():
    month = [_report(n, f"路灯{n}", f"第{n}号杆不亮" * (n + 1), "a1-s01", "CJ-029", still_open=n < 2) for n in range(4)]
    month += [_report(10 + n, f"噪声{n}", f"施工噪声扰民{n}" * (n + 2), f"a1-s0{n + 2}", "HB-001") for n in range(3)]
    before = [_report(50, "路灯", "不亮", "a1-s01", "CJ-029")]
    problems = recurring_problems(month, before)
    lamps = next(p for p in problems if p.items == [("CJ-029", 4)])
    assert lamps.found_by == "item_place" and lamps.reports == 4 and lamps.place_count == 1 and lamps.open == 2
    assert lamps.month_before == 1 and lamps.growth == 3 and lamps.heat == 4 + 1 + 2 + 3
    # Three places, one report each: not one item in one place.
    assert not any(p.found_by == "item_place" and p.items == [("HB-001", 3)] for p in problems)


def test_similar_texts_across_items_and_places_are_one_problem_listed_once():
    text = "小区门口的垃圾站臭气熏天，夏天蚊蝇成群，请尽快搬迁"
    month = [_report(n, "垃圾站臭气扰民", text + "，" + "谢谢" * n, f"a{n}-s01", item, still_open=True)
             for n, item in enumerate(["CJ-001", "CJ-002", None, "HB-003"])]
    month += [_report(20 + n, f"别的事{n}", f"完全不同的内容{n * 7}号楼停水", None, None) for n in range(5)]
    problems = recurring_problems(month, [])
    smelly = [p for p in problems if any(e["title"] == "垃圾站臭气扰民" for e in p.examples)]
    assert len(smelly) == 1 and smelly[0].found_by == "similar_text" and smelly[0].reports == 4
    assert smelly[0].place_count == 4 and smelly[0].growth == 4 and smelly[0].heat == 4 + 4 + 4 + 4


def test_nothing_recurring_lists_nothing():
    assert recurring_problems([], []) == []
    assert recurring_problems([_report(1, "一", "一件事", "a1-s01", "CJ-029")], []) == []


def test_month_windows_cross_years_in_city_time():
    since, until, before = month_window("2026-01")
    assert (since, until, before) == (dt.datetime(2026, 1, 1, tzinfo=CITY_TZ), dt.datetime(2026, 2, 1, tzinfo=CITY_TZ),
                                      dt.datetime(2025, 12, 1, tzinfo=CITY_TZ))
    assert month_window("2026-12")[1] == dt.datetime(2027, 1, 1, tzinfo=CITY_TZ)
