"""Duplicate merge: what joins a case, and the near misses that must stay apart."""

from __future__ import annotations

import datetime as dt

from pipeline.dedupe import Deduper, MergePolicy
from schemas import Incident

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def report(n: int, *, minutes: float = 0, text: str = "路灯不亮，晚上出行很不安全", reporter: str | None = None,
           lat: float | None = None, lon: float | None = None, street: str | None = None,
           community: str | None = None) -> Incident:
    return Incident.model_validate({
        "incident_id": f"i{n}", "source": "hotline", "source_id": f"t{n}", "reported_at": T0 + dt.timedelta(minutes=minutes),
        "normalized_at": T0, "text": text, "reporter_hash": reporter, "street": street, "community": community,
        "location": {"lat": lat, "lon": lon} if lat is not None else None})


def test_reports_within_the_distance_merge_and_count():
    d = Deduper()
    assert d.offer(report(1, lat=28.2, lon=112.9), "CJ-029") is None
    merge = d.offer(report(2, minutes=30, lat=28.2005, lon=112.9), "CJ-029")  # ≈ 56 m
    assert (merge.case_id, merge.rule, merge.reports) == ("i1", "same place", 2)
    assert d.offer(report(3, minutes=60, lat=28.2, lon=112.9003), "CJ-029").reports == 3


def test_beyond_the_distance_stays_apart_and_is_a_near_miss():
    d = Deduper()
    d.offer(report(1, lat=28.2, lon=112.9), "CJ-029")
    assert d.offer(report(2, lat=28.2015, lon=112.9), "CJ-029") is None  # ≈ 167 m
    assert [m.why_apart for m in d.near_misses] == ["same item, similar text, 167 m apart"]


def test_the_distance_is_per_item():
    d = Deduper(lambda item: MergePolicy(within_m=300) if item == "CJ-027" else MergePolicy())
    d.offer(report(1, lat=28.2, lon=112.9), "CJ-027")
    assert d.offer(report(2, lat=28.2015, lon=112.9), "CJ-027").rule == "same place"


def test_the_same_place_under_another_item_stays_apart():
    d = Deduper()
    d.offer(report(1, lat=28.2, lon=112.9), "CJ-029")
    assert d.offer(report(2, lat=28.2, lon=112.9, text="井盖缺失"), "CJ-030") is None


def test_the_window_closes():
    d = Deduper()
    d.offer(report(1, lat=28.2, lon=112.9), "CJ-029")
    assert d.offer(report(2, minutes=25 * 60, lat=28.2, lon=112.9), "CJ-029") is None


def test_a_caller_repeating_near_identical_text_merges_whatever_the_item():
    d = Deduper()
    d.offer(report(1, reporter="h1", text="小区物业乱收停车费，业主多次反映无果"), "CJ-002")
    merge = d.offer(report(2, minutes=90, reporter="h1", text="小区物业乱收停车费，业主多次反映无果！"), "JT-015")
    assert merge.rule == "repeat call"


def test_without_gps_the_same_community_and_similar_text_merge():
    d = Deduper()
    d.offer(report(1, community="c1", text="长安郡小区生活垃圾三天没人清运"), "CJ-053")
    assert d.offer(report(2, community="c1", text="长安郡小区生活垃圾三天没人清运了"), "CJ-053").rule == "same address"


def test_without_any_place_nothing_merges_on_text_alone():
    d = Deduper()
    d.offer(report(1, text="长安郡小区生活垃圾三天没人清运"), "CJ-053")
    assert d.offer(report(2, text="长安郡小区生活垃圾三天没人清运了"), "CJ-053") is None


def test_state_round_trips_and_a_redelivered_report_changes_nothing():
    d = Deduper()
    d.offer(report(1, lat=28.2, lon=112.9, reporter="h1"), "CJ-029")
    d.offer(report(2, minutes=5, lat=28.2002, lon=112.9), "CJ-029")
    d.case("i1").task_id, d.case("i1").unit = "t1", "cgj"
    again = Deduper().restore(d.state())
    assert again.state() == d.state()
    assert again.offer(report(1, lat=28.2, lon=112.9, reporter="h1"), "CJ-029") is None  # the opener, again
    assert again.offer(report(2, minutes=5, lat=28.2002, lon=112.9), "CJ-029").rule == "repeat delivery"
    assert again.case("i1").reports == ["i1", "i2"]


def test_the_duty_list_sets_an_items_merge_window():
    from pipeline.dedupe import item_policies
    from pipeline.dutylists import load_dutybook

    book = load_dutybook()
    default = MergePolicy(within_m=100, within_hours=24)
    city = item_policies(book.items_for("a1-s01"), default)
    assert (city("CJ-021").within_m, city("CJ-021").within_hours) == (300, 12)  # a burst main floods a wide area
    assert city("CJ-029") == default and city("no such item") == default
    muyun = item_policies(book.items_for("a2-s01"), default)  # 暮云's local item
    assert (muyun("MY-01").within_m, muyun("MY-01").within_hours) == (1000, 72)
    d = Deduper(muyun)
    d.offer(report(1, lat=28.2, lon=112.9, text="搅拌站夜间施工噪音"), "MY-01")
    assert d.offer(report(2, minutes=48 * 60, lat=28.205, lon=112.9, text="搅拌站又在夜间施工"), "MY-01").rule == "same place"
