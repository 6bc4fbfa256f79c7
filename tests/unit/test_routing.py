"""Routing by duty list: territorial vs department items, local lists (一乡一单), cooperating units,
whistles, and the 摊派 guard. A small city built here keeps each case readable."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.classify import Classifier
from pipeline.dutylists import DutyBook, problems
from pipeline.route import dispatch_item, route
from schemas import CityRegistry, DutyList, Incident, ManualReview

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)

REGISTRY = CityRegistry.model_validate({"city": "T市", "version": "r1", "units": [
    {"code": "cgj", "name": "城管局", "kind": "department"},
    {"code": "zrzyj", "name": "自然资源局", "kind": "department"},
    {"code": "sthjj", "name": "生态环境局", "kind": "department"},
    {"code": "zjj", "name": "住建局", "kind": "department"},
    {"code": "d1", "name": "甲区", "kind": "district"},
    {"code": "d2", "name": "乙区", "kind": "district"},
    {"code": "s1", "name": "东街道", "kind": "street", "parent": "d1"},
    {"code": "s2", "name": "西街道", "kind": "street", "parent": "d1"},
    {"code": "s3", "name": "南镇", "kind": "street", "parent": "d2"},
    {"code": "c1", "name": "桂园社区", "kind": "community", "parent": "s1"},
]})

LIST = {
    "version": "test-1", "jurisdiction": "T市", "effective_from": "2026-01-01",
    "whistle": {"legal_basis": "吹哨报到规定", "accept_within_hours": 0.5, "finish_within_days": 3},
    "items": [
        {"number": "1", "title": "违法建设", "category": ["城乡建设"], "keywords": ["违建", "私搭乱建"],
         "primary_unit": "cgj", "cooperating_units": ["zrzyj", "@street"], "legal_basis": "城乡规划法第六十四条"},
        {"number": "2", "title": "占道经营", "category": ["城乡建设"], "keywords": ["占道经营", "摆摊"],
         "scope": "territorial", "primary_unit": "cgj", "legal_basis": "市容条例第十四条", "finish_within_days": 2},
        {"number": "3", "title": "噪音", "category": ["环境保护"], "keywords": ["噪音"],
         "sensor_rules": [{"kind": "noise", "at_least": 70, "unit": "dB(A)"}], "primary_unit": "sthjj",
         "legal_basis": "噪声污染防治法"},
        {"number": "4", "title": "物业", "category": ["城乡建设"], "keywords": ["物业"], "primary_unit": "zjj",
         "legal_basis": "物业管理条例"},
        {"number": "5", "title": "夜间施工噪声严重超标", "category": ["环境保护"], "keywords": ["夜间施工"],
         "sensor_rules": [{"kind": "noise", "at_least": 85, "unit": "dB(A)"}], "primary_unit": "cgj",
         "legal_basis": "噪声污染防治法"},
    ],
    "local_lists": [
        # 甲区 made unauthorised building territorial; its streets inherit that.
        {"jurisdiction": "d1", "items": [{"number": "1", "scope": "territorial", "cooperating_units": ["cgj"]}]},
        # 西街道 has no noise item of its own any more, and a property office that takes 物业 itself.
        {"jurisdiction": "s2", "removes": ["3"], "items": [
            {"number": "4", "primary_unit": "s2", "cooperating_units": ["zjj"]},
            {"number": "X-1", "title": "集贸市场秩序", "category": ["商贸旅游"], "keywords": ["集贸市场"],
             "primary_unit": "s2", "legal_basis": "西街道集贸市场管理办法"}]},
    ],
}
BOOK = DutyBook(DutyList.model_validate(LIST), REGISTRY)


def incident(**fields) -> Incident:
    base = {"incident_id": "i1", "source": "hotline", "source_id": "t1", "reported_at": NOW, "normalized_at": NOW,
            "text": ""}
    return Incident.model_validate(base | fields)


def dispatch(inc: Incident, threshold: float = 0.0):
    # Routing is under test here, not the confidence: every classified incident passes by default.
    return route(inc, Classifier(BOOK).classify(inc), BOOK, now=NOW, threshold=threshold)


def test_the_test_list_is_valid():
    assert problems(BOOK.dutylist, REGISTRY) == []


NOISE = {"source": "sensor", "text": "噪声超标", "sensor_kind": "noise", "sensor_unit": "dB(A)", "street": "s1"}

CASES = [
    # (case, incident fields, expected [(unit, role)] or ("manual", reason fragment))
    ("department item in a district without a local list → department + cooperating + 属地 street",
     {"text": "楼顶私搭乱建", "street": "s3", "district": "d2"}, [("cgj", "primary"), ("zrzyj", "cooperating"), ("s3", "cooperating")]),
    ("department item, street unknown → the 属地 copy is left out, the department still gets it",
     {"text": "楼顶私搭乱建"}, [("cgj", "primary"), ("zrzyj", "cooperating")]),
    ("district override: 违建 is territorial in 甲区 → the street, the department cooperates",
     {"text": "楼顶私搭乱建", "street": "s1", "district": "d1"}, [("s1", "primary"), ("cgj", "cooperating")]),
    ("territorial item → the street where it happened",
     {"text": "路边摆摊占道经营", "street": "s3"}, [("s3", "primary")]),
    ("territorial item in a community → that community's street",
     {"text": "路边摆摊占道经营", "street": "s1", "community": "c1"}, [("s1", "primary")]),
    ("territorial item without a street → operator",
     {"text": "路边摆摊占道经营"}, ("manual", "territorial (属地) but the incident's street is unknown")),
    ("street list: 物业 is the street's own there",
     {"text": "物业不作为", "street": "s2"}, [("s2", "primary"), ("zjj", "cooperating")]),
    ("the same text elsewhere goes to the department",
     {"text": "物业不作为", "street": "s1"}, [("zjj", "primary")]),
    ("a street's own item matches only there",
     {"text": "集贸市场秩序混乱", "street": "s2"}, [("s2", "primary")]),
    ("…and is unknown elsewhere",
     {"text": "集贸市场秩序混乱", "street": "s1"}, ("manual", "no duty-list keyword")),
    ("sensor rule: kind and value → item",
     {**NOISE, "sensor_value": 75}, [("sthjj", "primary")]),
    ("of the rules a reading reaches, the highest value's item",
     {**NOISE, "sensor_value": 90}, [("cgj", "primary")]),
    ("below every rule → operator, saying the lowest",
     {**NOISE, "sensor_value": 60}, ("manual", "noise 60 dB(A) is below every rule (from 70 dB(A): 3)")),
    ("a value in another unit is not compared",
     {**NOISE, "sensor_value": 75, "sensor_unit": "dB"}, ("manual", "noise reading in dB; the rules are in dB(A)")),
    ("a rule the street's list removed does not apply there",
     {**NOISE, "sensor_value": 75, "street": "s2"}, ("manual", "below every rule (from 85 dB(A): 5)")),
    ("a reading without a value reaches only rules without one",
     {**NOISE}, ("manual", "noise reading without a value")),
    ("a sensor kind no item handles → operator",
     {**NOISE, "sensor_kind": "gas", "sensor_value": 30, "sensor_unit": "%LEL"},
     ("manual", "no item in force here handles sensor kind gas")),
    ("whistle → the summoned departments",
     {"source": "whistle", "text": "违建多次处置未果", "street": "s1", "whistle_unit": "s1", "summoned_units": ["sthjj", "cgj"]},
     [("sthjj", "primary"), ("cgj", "cooperating")]),
    ("whistle summoning a community → refused (摊派)",
     {"source": "whistle", "text": "违建", "street": "s1", "whistle_unit": "s1", "summoned_units": ["cgj", "c1"]},
     ("manual", "摊派 refused")),
    ("whistle naming an unknown unit → operator",
     {"source": "whistle", "text": "违建", "street": "s1", "whistle_unit": "s1", "summoned_units": ["nobody"]},
     ("manual", "nobody")),
    ("no keyword → no guess",
     {"text": "请问公积金怎么提取"}, ("manual", "no duty-list keyword in the text")),
]


@pytest.mark.parametrize(("case", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
def test_routing(case, fields, expected):
    result = dispatch(incident(**fields))
    if isinstance(expected, tuple):
        assert isinstance(result, ManualReview), f"{case}: dispatched {result}"
        assert expected[1] in result.reason
    else:
        assert not isinstance(result, ManualReview), f"{case}: {result.reason}"
        assert [(d.unit, d.role) for d in result] == expected


def test_every_dispatch_names_item_version_local_list_and_basis():
    result = dispatch(incident(text="楼顶私搭乱建", street="s1"))
    assert {(d.item_no, d.dutylist_version, d.local_list) for d in result} == {("1", "test-1", "d1")}
    assert all(d.legal_basis == "城乡规划法第六十四条" for d in result)


def test_whistles_carry_the_whistle_policy_limits():
    result = dispatch(incident(source="whistle", text="违建", street="s1", whistle_unit="s1", summoned_units=["cgj"]))
    assert [(d.accept_within_hours, d.finish_within_days) for d in result] == [(0.5, 3)]
    assert result[0].legal_basis.startswith("吹哨报到规定")


@pytest.mark.parametrize(("item_no", "street", "units", "refused"), [
    ("4", "s1", ["s1"], True),          # 物业 is 住建局's in 东街道: pushing it to the street is 摊派
    ("4", "s1", ["c1"], True),          # …or to a community
    ("4", "s2", ["s2"], False),         # 西街道's own list names the street for it
    ("2", "s1", ["s1"], False),         # territorial: the incident's own street is named
    ("2", "s1", ["s3"], True),          # …but not another street
    ("1", "s3", ["cgj", "s3"], False),  # @street names the incident's street as cooperating
    ("3", "s1", ["zjj"], False),        # another department: a wrong dispatch maybe, but no 摊派
])
def test_tanpai_guard_on_operator_dispatches(item_no, street, units, refused):
    result = dispatch_item(incident(text="x", street=street), item_no, BOOK, now=NOW, units=units)
    assert isinstance(result, ManualReview) == refused
    if refused:
        assert result.tanpai_refused and "摊派 refused" in result.reason


def test_below_the_threshold_the_operator_decides_and_sees_the_candidates():
    result = dispatch(incident(text="违建工地噪音", street="s3"), threshold=0.6)
    assert isinstance(result, ManualReview)
    assert result.reason.startswith("low confidence") and set(result.candidates) == {"1", "3"}


def test_dispatch_ids_are_stable_across_runs():
    inc = incident(title="违建", text="私搭乱建", street="s3")
    first = [d.dispatch_id for d in dispatch(inc)]
    assert first == [d.dispatch_id for d in dispatch(inc)]
    assert len(set(first)) == len(first)


def test_an_ambiguous_text_has_lower_confidence_than_a_clear_one():
    classifier = Classifier(BOOK)
    clear = classifier.classify(incident(title="违建", text="私搭乱建"))
    mixed = classifier.classify(incident(text="违建工地噪音"))
    assert clear.confidence > mixed.confidence
    assert set(mixed.candidates) == {"1", "3"}


def test_grid_workers_pick_counts_as_one_vote():
    book = DutyBook(DutyList.model_validate(LIST | {"items": [
        *LIST["items"][:1], {**LIST["items"][1], "grid_classes": ["事件/街面秩序/占道经营"]}, *LIST["items"][2:]]}),
        REGISTRY)
    classifier = Classifier(book)
    picked = classifier.classify(incident(source="grid", text="路边有人", category_hint="占道经营", street="s1"))
    assert picked.item_no == "2"
    # The text outweighs a pick it contradicts strongly enough.
    contradicted = classifier.classify(incident(source="grid", title="违建 私搭乱建", text="违建 私搭乱建",
                                                category_hint="占道经营", street="s1"))
    assert contradicted.item_no == "1"


def test_a_return_for_wrong_function_goes_to_the_next_candidate_with_a_new_task_id():
    from pipeline.route import reroute_returned

    inc = incident(text="小区物业噪音", street="s3")
    [first] = dispatch_item(inc, "4", BOOK, now=NOW, candidates=["4", "3", "1"])
    assert (first.unit, first.candidates, first.attempt) == ("zjj", ["3", "1"], 0)
    [again] = reroute_returned(inc, first, "职能不符", "不属于物业范畴", BOOK, now=NOW)
    assert (again.unit, again.item_no, again.attempt, again.candidates) == ("sthjj", "3", 1, ["1"])
    assert again.dispatch_id != first.dispatch_id and "returned by zjj (职能不符: 不属于物业范畴)" in again.reason


def test_a_return_for_wrong_area_or_without_candidates_goes_to_the_operator():
    from pipeline.route import reroute_returned

    inc = incident(text="噪音", street="s3")
    [first] = dispatch_item(inc, "3", BOOK, now=NOW, candidates=["3", "4"])
    review = reroute_returned(inc, first, "属地不符", "", BOOK, now=NOW)
    assert isinstance(review, ManualReview) and review.attempt == 1 and review.incident == inc
    assert review.candidates == ["3", "4"] and "属地不符" in review.reason
    [alone] = dispatch_item(inc, "3", BOOK, now=NOW)
    assert isinstance(reroute_returned(inc, alone, "职能不符", "", BOOK, now=NOW), ManualReview)
