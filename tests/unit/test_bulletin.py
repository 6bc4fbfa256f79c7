"""每月一题 on made-up reports: the groups, the stated heat, the month before, no problem listed twice."""

from __future__ import annotations

import datetime as dt

from pipeline.bulletin import MonthReport, month_window, recurring_problems
from pipeline.dutylists import CITY_TZ

AT = dt.datetime(2026, 11, 5, tzinfo=CITY_TZ)


def _report(n: int, title: str, text: str, place: str | None, item: str | None, *, still_open: bool = False,
            source: str = "hotline"):
    return MonthReport(f"i{n:03d}", AT, source, title, text, place, item, "cgj" if item else None, still_open)


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


def test_sensor_readings_recur_by_item_and_place_never_by_their_set_titles():
    month = [_report(n, "积水水位超限", f"水位 {30 + n} cm", f"a{n % 2}-s01", "SW-001", source="sensor") for n in range(8)]
    problems = recurring_problems(month, [])
    assert [(p.found_by, p.reports) for p in problems] == [("item_place", 4), ("item_place", 4)]


def test_nothing_recurring_lists_nothing():
    assert recurring_problems([], []) == []
    assert recurring_problems([_report(1, "一", "一件事", "a1-s01", "CJ-029")], []) == []


def test_month_windows_cross_years_in_city_time():
    since, until, before = month_window("2026-01")
    assert (since, until, before) == (dt.datetime(2026, 1, 1, tzinfo=CITY_TZ), dt.datetime(2026, 2, 1, tzinfo=CITY_TZ),
                                      dt.datetime(2025, 12, 1, tzinfo=CITY_TZ))
    assert month_window("2026-12")[1] == dt.datetime(2027, 1, 1, tzinfo=CITY_TZ)


def test_a_quiet_month_renders_with_nothing_before_it():
    """A first month (nothing the month before), no ranking, no recurring problem: the documents still
    come out and say so (no chart to draw, so no Node needed)."""
    import zipfile
    from io import BytesIO

    from infra.bulletin import bulletin_html, bulletin_xlsx

    quiet = {"month": "2026-11", "since": "2026-11-01T00:00:00+08:00", "until": "2026-12-01T00:00:00+08:00",
             "as_of": "2026-12-01T00:00:00+08:00", "month_before": "2026-10", "total": None, "total_before": None,
             "units": [], "streets": [], "rankings": [], "late_tasks": [], "reports": 0, "reports_before": 0,
             "dispatch_accuracy": {"total": {"returned": 0, "wrong_function": 0, "rerouted": 0}, "rows": []},
             "heat": {"zh": "热度", "en": "heat"}, "problems": []}
    html = bulletin_html(quiet)
    assert "2026-11 12345热线诉求办理月度通报" in html and "本月没有达到 3 件的反复诉求" in html and "<svg" not in html
    with zipfile.ZipFile(BytesIO(bulletin_xlsx(quiet))) as book:
        assert 'name="每月一题"' in book.read("xl/workbook.xml").decode()
