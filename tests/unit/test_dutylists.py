"""Duty-list files: the checker names each problem with its line; the sample city is complete."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.dutylists import DutyBook, check_text, sample_path
from pipeline.route import named_recipients, tanpai_refusal
from schemas import DutyList
from tests.unit.test_routing import LIST, REGISTRY

SEVEN_CLASSES = {"城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生"}


def as_yaml(data: dict) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def line_of(text: str, fragment: str, nth: int = 0) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return lines[nth]


def test_a_valid_file_has_no_problems():
    assert check_text(as_yaml(LIST), REGISTRY) == []


@pytest.mark.parametrize(("break_it", "fragment", "nth", "message"), [
    # fragment, nth: the line the problem must point at is the nth line holding the fragment
    (lambda d: d["items"][2].update(primary_unit="nobody"), "primary_unit: nobody", 0, "unknown unit 'nobody'"),
    (lambda d: d["items"][3].update(number="1"), "number: '1'", 1, "duplicate number 1"),
    (lambda d: d["items"][1].pop("legal_basis"), "number: '2'", 0, "items.1.legal_basis: Field required"),
    (lambda d: d["items"][1].update(legal_basis=""), "legal_basis: ''", 0, "at least 1 character"),
    (lambda d: d["items"][0].update(primary_unit="s1"), "primary_unit: s1", 0, "a city item names departments"),
    (lambda d: d["items"][0].update(category=["城市建设"]), "number: '1'", 0, "not in the government taxonomy"),
    (lambda d: d["local_lists"][1].update(removes=["99"]), "- '99'", 0, "no city item 99 to remove"),
    (lambda d: d["local_lists"][1]["items"].append({"number": "Y-1", "title": "新事项"}), "number: Y-1", 0,
     "needs category, keywords, primary_unit, legal_basis"),
    (lambda d: d["local_lists"][0].update(jurisdiction="c1"), "jurisdiction: c1", 0, "not a district or street"),
    (lambda d: d["items"][4]["sensor_rules"][0].update(at_least=70), "- kind: noise", 1,
     "sensor kind 'noise' at 70 dB(A) already raises item 3"),
    (lambda d: d["items"][4]["sensor_rules"][0].update(unit="dB"), "- kind: noise", 1,
     "sensor kind 'noise' has rules in dB(A); this one is in dB"),
    (lambda d: d["items"][2]["sensor_rules"][0].pop("unit"), "- kind: noise", 0, "at_least and unit go together"),
])
def test_each_problem_names_its_line(break_it, fragment, nth, message):
    data = yaml.safe_load(as_yaml(LIST))
    break_it(data)
    text = as_yaml(data)
    found = check_text(text, REGISTRY)
    matching = [p for p in found if message in p.describe()]
    assert matching, found
    assert matching[0].line == line_of(text, fragment, nth), (matching[0], text)


def test_a_cycle_in_extends_is_caught():
    data = yaml.safe_load(as_yaml(LIST))
    data["local_lists"][0]["extends"] = "s2"
    data["local_lists"][1]["extends"] = "d1"
    found = check_text(as_yaml(data), REGISTRY)
    assert any("cycle in extends: d1 → s2 → d1" in p.message for p in found), found


def test_not_yaml_points_at_the_line():
    text = textwrap.dedent("""\
        version: v1
        items:
          - {number: 1, title: [unclosed
        """)
    (problem,) = check_text(text, REGISTRY)
    assert problem.message.startswith("not YAML") and problem.line == 4


# ------------------------------------------------------------------------------ the sample city


def test_sample_city_has_the_promised_size(sample_book: DutyBook):
    kinds = [u.kind for u in sample_book.registry.units]
    assert kinds.count("district") >= 3 and kinds.count("street") >= 10 and kinds.count("community") >= 40
    assert kinds.count("department") >= 25 and len(sample_book.registry.grids) >= 200
    assert len(sample_book.dutylist.items) >= 120
    assert {i.top_class for i in sample_book.dutylist.items} >= SEVEN_CLASSES


def test_sample_list_covers_usual_12345_subjects_and_grid_classes(sample_book: DutyBook):
    words = {w for i in sample_book.dutylist.items for w in (i.title, *i.keywords)}
    for subject in ["建筑垃圾", "占道经营", "违章建筑", "噪音", "欠薪", "物业", "供水", "供暖", "路灯", "井盖",
                    "消防隐患", "食品安全", "养老", "学费", "医保"]:
        assert any(subject in w for w in words), subject
    classes = {c for i in sample_book.dutylist.items for c in i.grid_classes}
    for leaf in ["事件/市容环境/乱堆物堆料", "事件/市容环境/道路不洁", "部件/道路交通设施/道路破损",
                 "事件/宣传广告/非法小广告", "事件/施工管理/施工扰民", "事件/街面秩序/占道经营",
                 "事件/突发事件/路面塌陷", "部件/公用设施/井盖", "部件/园林绿化设施/行道树", "部件/市容环境设施/垃圾箱"]:
        assert leaf in classes, leaf


def test_sample_street_lists_really_differ(sample_book: DutyBook):
    effective = {j: sample_book.items_for(j) for j in [None, *(ll.jurisdiction for ll in sample_book.dutylist.local_lists)]}
    as_seen = {j: {n: i.model_dump_json() for n, i in items.items()} for j, items in effective.items()}
    jurisdictions = list(as_seen)
    for a in jurisdictions:
        for b in jurisdictions:
            if a != b:
                assert as_seen[a] != as_seen[b], f"{a} and {b} resolve to the same list"


def test_every_item_is_reachable_from_some_location(sample_book: DutyBook):
    """Property: for every item in any list, some street has it in force and routes it without
    an error or a 摊派 refusal."""
    streets = [u.code for u in sample_book.registry.units if u.kind == "street"]
    numbers = {item.number for item in sample_book.every_item()}
    unreachable = []
    for number in sorted(numbers):
        for street in streets:
            item = sample_book.item(number, street)
            if item is None:
                continue
            recipients = named_recipients(item, street)
            if not isinstance(recipients, str) and tanpai_refusal(item, street, recipients, sample_book) is None:
                break
        else:
            unreachable.append(number)
    assert unreachable == []


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_automatic_routing_never_pushes_work_down(sample_book: DutyBook, data):
    """Property: whatever street and item, the recipients the list names pass the 摊派 guard."""
    streets = [u.code for u in sample_book.registry.units if u.kind == "street"]
    street = data.draw(st.sampled_from([None, *streets]))
    item = data.draw(st.sampled_from(sorted(sample_book.items_for(street).values(), key=lambda i: i.number)))
    recipients = named_recipients(item, street)
    if not isinstance(recipients, str):
        assert tanpai_refusal(item, street, recipients, sample_book) is None


def test_the_shipped_files_are_where_the_package_says(sample_book: DutyBook):
    assert sample_path("dutylist.yaml").exists() and sample_path("grids.geojson").exists()


# ------------------------------------------------------------------------------ versions


def test_a_published_version_becomes_current_and_the_old_one_stays():
    from pipeline.dutylists import DutyBooks

    books = DutyBooks(DutyBook(parse(LIST), REGISTRY))
    newer = yaml.safe_load(as_yaml(LIST)) | {"version": "test-2"}
    newer["items"][3]["primary_unit"] = "cgj"
    assert books.publish(as_yaml(newer)) == []
    assert books.current.version == "test-2" and books.versions == ["test-1", "test-2"]
    assert books.get("test-1").item("4").primary_unit == "zjj"
    assert books.current.item("4").primary_unit == "cgj"


def test_a_broken_publication_is_refused_and_the_current_version_stays():
    from pipeline.dutylists import DutyBooks

    books = DutyBooks(DutyBook(parse(LIST), REGISTRY))
    broken = yaml.safe_load(as_yaml(LIST)) | {"version": "test-3"}
    broken["items"][0]["primary_unit"] = "nobody"
    found = books.publish(as_yaml(broken))
    assert found and "unknown unit 'nobody'" in found[0].message and found[0].line
    assert books.current.version == "test-1" and books.get("test-3") is None


def parse(data: dict) -> DutyList:
    return DutyList.model_validate(yaml.safe_load(as_yaml(data)))


def test_a_list_published_ahead_of_its_date_takes_force_on_that_date():
    import datetime as dt

    from pipeline.dutylists import DutyBooks

    books = DutyBooks(DutyBook(parse(LIST), REGISTRY))  # effective 2026-01-01
    assert books.publish(as_yaml(yaml.safe_load(as_yaml(LIST)) | {"version": "test-2", "effective_from": "2027-01-01"})) == []
    assert books.in_force(dt.date(2026, 12, 31)).version == "test-1"
    assert books.in_force(dt.date(2027, 1, 1)).version == "test-2"


def test_an_item_not_yet_effective_is_not_classified():
    import datetime as dt

    data = yaml.safe_load(as_yaml(LIST))
    data["items"][2]["effective_from"] = "2027-01-01"  # 噪音
    book = DutyBook(parse(data), REGISTRY)
    assert "3" not in book.items_for("s1", on=dt.date(2026, 6, 1))
    assert "3" in book.items_for("s1", on=dt.date(2027, 1, 1))
