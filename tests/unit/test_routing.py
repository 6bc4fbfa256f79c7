"""Classification by duty-list keywords and routing to the units the list names."""

import datetime as dt

import pytest

from pipeline.classify import KeywordClassifier
from pipeline.dutylists import load_dutylist
from pipeline.route import route
from schemas import DutyList, Incident, ManualReview

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)

DUTYLIST = DutyList.model_validate({
    "version": "test-1", "jurisdiction": "T市", "effective_from": "2026-01-01",
    "units": [
        {"code": "cgj", "name": "城管局", "kind": "department"},
        {"code": "zrzyj", "name": "自然资源局", "kind": "department"},
        {"code": "sthjj", "name": "生态环境局", "kind": "department"},
        {"code": "jd-a", "name": "A街道", "kind": "street"},
    ],
    "items": [
        {"number": "1", "title": "违法建设", "top_class": "城乡建设", "keywords": ["违建", "私搭乱建"],
         "primary_unit": "cgj", "cooperating_units": ["zrzyj"], "legal_basis": "城乡规划法第六十四条"},
        {"number": "2", "title": "占道经营", "top_class": "城乡建设", "keywords": ["占道经营", "摆摊"],
         "scope": "territorial", "primary_unit": "cgj", "legal_basis": "市容条例第十四条"},
        {"number": "3", "title": "噪音", "top_class": "环境保护", "keywords": ["噪音"], "sensor_kinds": ["noise"],
         "primary_unit": "sthjj", "legal_basis": "噪声污染防治法"},
    ],
})


def incident(**fields) -> Incident:
    base = {"incident_id": "i1", "source": "hotline", "source_id": "t1", "reported_at": NOW, "normalized_at": NOW,
            "text": ""}
    return Incident.model_validate(base | fields)


def dispatch(inc: Incident):
    return route(inc, KeywordClassifier(DUTYLIST).classify(inc), DUTYLIST, now=NOW)


def test_department_item_goes_to_primary_and_cooperating_units():
    result = dispatch(incident(title="违建", text="楼顶私搭乱建"))
    assert [(d.unit, d.role) for d in result] == [("cgj", "primary"), ("zrzyj", "cooperating")]
    assert all(d.item_no == "1" and d.dutylist_version == "test-1" and d.legal_basis for d in result)


def test_territorial_item_goes_to_the_street_of_the_incident():
    result = dispatch(incident(text="路边摆摊占道经营", street="jd-a"))
    assert [(d.unit, d.role) for d in result] == [("jd-a", "primary")]


def test_territorial_item_without_a_known_street_goes_to_the_operator():
    result = dispatch(incident(text="路边摆摊占道经营", street=None))
    assert isinstance(result, ManualReview)
    assert "territorial" in result.reason and result.candidates == ["2"]


def test_no_keyword_means_no_guess():
    result = dispatch(incident(text="请问公积金怎么提取"))
    assert isinstance(result, ManualReview)
    assert result.reason == "no duty-list keyword in the text"


def test_sensor_rule_routes_by_kind():
    result = dispatch(incident(source="sensor", text="噪声超标：80dB(A)", sensor_kind="noise", sensor_value=80))
    assert [(d.unit, d.item_no, d.confidence) for d in result] == [("sthjj", "3", 1.0)]


def test_whistle_routes_to_the_summoned_units():
    result = dispatch(incident(source="whistle", text="违建多次处置未果", street="jd-a", summoned_units=["sthjj", "cgj"]))
    assert [(d.unit, d.role) for d in result] == [("sthjj", "primary"), ("cgj", "cooperating")]


def test_whistle_naming_an_unknown_unit_goes_to_the_operator():
    result = dispatch(incident(source="whistle", text="违建", street="jd-a", summoned_units=["nobody"]))
    assert isinstance(result, ManualReview) and "nobody" in result.reason


def test_dispatch_ids_are_stable_across_runs():
    inc = incident(title="违建", text="私搭乱建")
    first = [d.dispatch_id for d in dispatch(inc)]
    assert first == [d.dispatch_id for d in dispatch(inc)]
    assert len(set(first)) == len(first)


def test_an_ambiguous_text_has_lower_confidence_than_a_clear_one():
    classifier = KeywordClassifier(DUTYLIST)
    clear = classifier.classify(incident(title="违建", text="私搭乱建"))
    mixed = classifier.classify(incident(text="违建工地噪音"))
    assert clear.confidence > mixed.confidence
    assert set(mixed.candidates) == {"1", "3"}


@pytest.mark.parametrize("bad", [
    {"primary_unit": "nobody"},
    {"cooperating_units": ["nobody"]},
])
def test_a_list_naming_unknown_units_is_rejected(bad):
    raw = DUTYLIST.model_dump(mode="json")
    raw["items"][0] |= bad
    with pytest.raises(ValueError, match="unknown unit 'nobody'"):
        DutyList.model_validate(raw)


def test_the_shipped_sample_list_loads_and_every_sensor_kind_has_an_item():
    shipped = load_dutylist()
    kinds = {k for item in shipped.items for k in item.sensor_kinds}
    assert {"water_level", "manhole_tilt", "smoke", "noise", "gas"} <= kinds
    assert {item.top_class for item in shipped.items} >= {"城乡建设", "环境保护", "交通运输", "教育文体",
                                                          "劳动和社会保障", "商贸旅游", "卫生计生"}
