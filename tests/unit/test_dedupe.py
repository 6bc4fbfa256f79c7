"""Duplicate merge: what joins a case, and the near misses that must stay apart."""

from __future__ import annotations

import datetime as dt

from pipeline.dedupe import Deduper, MergePolicy, RecentReport, follow_repeat_calls
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


def _caller_stage(reports: list[tuple[Incident, str | None, str | None]]) -> list[tuple[str | None, str | None]]:
    """Replay (report, item, own case key) through the caller stage: where each goes, and what it repeats."""
    recent, verdicts = [], []
    for incident, item_no, case_key in reports:
        verdict = follow_repeat_calls(recent, incident, item_no, case_key, lambda item: MergePolicy())
        recent = verdict.recent
        verdicts.append((verdict.case_key, verdict.repeat_of))
    return verdicts


PLANT = "西湖建筑集团占道施工扰民，夜间施工噪音大"


def test_a_repeat_call_classified_under_another_item_follows_the_first_report_to_its_case():
    first = report(1, reporter="h1", text=PLANT, street="s1")
    again = report(2, minutes=120, reporter="h1", text=PLANT + "！", street="s2")
    assert _caller_stage([(first, "CJ-029", "CJ-029|s1"), (again, "AQ-007", "AQ-007|s2")]) == [
        ("CJ-029|s1", None), ("CJ-029|s1", "i1")]
    # and there the case stage's repeat-call rule merges it, although the item differs
    d = Deduper()
    d.offer(first, "CJ-029")
    assert d.offer(again, "AQ-007").rule == "repeat call"


def test_a_repeat_call_too_unclear_to_route_joins_the_case_instead_of_the_operator_queue():
    first = report(1, reporter="h1", text=PLANT)
    unclear = report(2, minutes=60, reporter="h1", text=PLANT)
    assert _caller_stage([(first, "CJ-029", "a"), (unclear, None, None)]) == [("a", None), ("a", "i1")]
    d = Deduper()
    d.offer(first, "CJ-029")
    assert d.offer(unclear, "unclassified", open_case=False).rule == "repeat call"
    # had the case closed meanwhile, the report would not open one of its own: it goes to the operator
    assert Deduper().offer(unclear, "unclassified", open_case=False) is None


def test_repeats_of_a_report_waiting_for_an_operator_name_it():
    first = report(1, reporter="h1", text=PLANT)
    again = report(2, minutes=60, reporter="h1", text=PLANT)
    assert _caller_stage([(first, None, None), (again, None, None)]) == [(None, None), (None, "i1")]


def test_the_caller_stage_leaves_other_text_and_expired_reports_under_their_own_key():
    first = report(1, reporter="h1", text=PLANT)
    other = report(2, minutes=60, reporter="h1", text="小区门口路灯坏了一个月没人修")
    late = report(3, minutes=25 * 60, reporter="h1", text=PLANT)
    assert _caller_stage([(first, "CJ-029", "a"), (other, "CJ-040", "b"), (late, "CJ-029", "c")]) == [
        ("a", None), ("b", None), ("c", None)]


def test_the_caller_stage_forgets_expired_reports_and_a_redelivery_changes_nothing():
    first = report(1, reporter="h1", text=PLANT)
    again = report(2, minutes=30, reporter="h1", text=PLANT)
    policy = lambda item: MergePolicy()  # noqa: E731
    recent = follow_repeat_calls([], first, "CJ-029", "a", policy).recent
    verdict = follow_repeat_calls(recent, again, None, None, policy)
    assert (verdict.case_key, [r.case_key for r in verdict.recent]) == ("a", ["a", "a"])
    assert follow_repeat_calls(verdict.recent, again, None, None, policy) == verdict
    later = report(3, minutes=30 * 60, reporter="h1", text="另一件事")
    recent = follow_repeat_calls(verdict.recent, later, "CJ-040", "c", policy).recent
    assert [r.incident_id for r in recent] == ["i3"]
    assert [RecentReport.from_json(r.to_json()) for r in verdict.recent] == verdict.recent


def test_a_report_never_follows_one_made_after_it_whatever_the_order_they_arrive_in():
    # After a restart the caller stage may meet a reporter's later report first: the earlier one keeps its
    # own way (it once opened a case; following the later one sent it to a second case), and the later
    # one, arriving next, is still the repeat.
    first = report(1, reporter="h1", text=PLANT, street="s1")
    again = report(2, minutes=60, reporter="h1", text=PLANT, street="s2")
    assert _caller_stage([(again, "CJ-029", "CJ-029|s2"), (first, "CJ-029", "CJ-029|s1")]) == [
        ("CJ-029|s2", None), ("CJ-029|s1", None)]
    assert _caller_stage([(first, "CJ-029", "CJ-029|s1"), (again, "CJ-029", "CJ-029|s2")]) == [
        ("CJ-029|s1", None), ("CJ-029|s1", "i1")]


def test_a_report_redelivered_after_its_case_closed_gets_its_first_answer():
    # A later report closed the first report's case (past its window) and opened one of its own; after a
    # restart the first report comes again, earlier than what the state has seen: it is its own case's
    # still, not a merge into the later one (which once routed one report twice).
    d = Deduper()
    first, later = report(1, lat=28.2, lon=112.9), report(2, minutes=25 * 60, lat=28.2, lon=112.9)
    assert d.offer(first, "CJ-029") is None and d.offer(later, "CJ-029") is None
    d = Deduper().restore(d.state())
    assert d.offer(first, "CJ-029") is None and d.knows("i1")
    assert d.offer(report(3, minutes=25 * 60 + 10, lat=28.2, lon=112.9), "CJ-029").case_id == "i2"
    # a closed case is remembered for REMEMBER_CLOSED, then forgotten
    d.offer(report(4, minutes=8 * 24 * 60), "CJ-029")
    assert not d.knows("i1")
