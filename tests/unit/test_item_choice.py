"""Choosing the item inside a class the model is sure of, when no duty-list keyword matched: by the
items' own words, else the class's general item; a close call between two items stays a close call."""

from __future__ import annotations

import datetime as dt

from pipeline.classify import Classifier, ItemWords
from pipeline.dutylists import DutyBook, problems
from pipeline.route import MIN_CONFIDENCE
from schemas import DutyItem, Incident

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)


class SureOf:
    """A text model that is sure of one class, and has no unit head."""

    version = "test-model"  # what every decision it makes is stamped with

    def __init__(self, top_class: str, probability: float = 0.9):
        self.top_class, self.probability = top_class, probability

    def predict_with_units(self, docs):
        return self.predict(docs), None

    def predict(self, docs):
        rest = (1 - self.probability) / 6
        classes = ["城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生"]
        return [{c: (self.probability if c == self.top_class else rest) for c in classes} for _ in docs]


def incident(title: str, text: str) -> Incident:
    return Incident(incident_id="i1", source="hotline", source_id="t1", reported_at=NOW, normalized_at=NOW,
                    title=title, text=text)


def test_no_keyword_but_an_items_words_pick_the_item(sample_book):
    # "主干道" is no keyword of CJ-029 (路灯), but a word of its example "主干道路灯坏了一个多星期".
    result = Classifier(sample_book, SureOf("城乡建设")).classify(incident("主干道晚上一片漆黑", "好几天了"))
    assert result.item_no == "CJ-029" and result.confidence >= MIN_CONFIDENCE, result
    assert "item words: 主干道" in result.reason


def test_no_words_of_any_item_go_to_the_classs_general_item(sample_book):
    result = Classifier(sample_book, SureOf("教育文体", 0.85)).classify(incident("请领导关注", "希望有关部门尽快处理答复"))
    assert result.item_no == "JY-099" and result.confidence == 0.85
    assert "general item of 教育文体" in result.reason
    assert sample_book.item("JY-099").primary_unit == "jyj"


def test_an_unsure_class_still_goes_to_the_operator(sample_book):
    result = Classifier(sample_book, SureOf("教育文体", 0.4)).classify(incident("请领导关注", "希望尽快处理"))
    assert result.confidence < MIN_CONFIDENCE  # route() sends it to the operator queue with the candidates


def test_two_items_sharing_the_words_alike_are_a_close_call_with_the_top_three():
    items = [DutyItem(number=n, title=t, category=["城乡建设", "城市建设和市政管理"], keywords=[k], primary_unit="cgj",
                      legal_basis="《城市道路管理条例》") for n, t, k in
             [("A-1", "道路破损", "坑洼"), ("A-2", "道路塌陷", "塌方"), ("A-3", "路灯", "灯不亮")]]
    ranked = ItemWords(items).rank("道路出现问题", items)
    assert [i.number for _, i, _ in ranked[:2]] == ["A-1", "A-2"] or [i.number for _, i, _ in ranked[:2]] == ["A-2", "A-1"]
    assert ranked[1][0] >= 0.75 * ranked[0][0]  # a close call: the classifier divides the confidence


def test_a_class_has_one_general_item(sample_book):
    every_class = {i.top_class for i in sample_book.dutylist.items}
    general = {i.top_class: i.number for i in sample_book.dutylist.items if i.fallback}
    assert set(general) == every_class  # the sample city: one per class
    doubled = sample_book.dutylist.model_copy(update={"items": [*sample_book.dutylist.items,
        sample_book.item("CJ-099").model_copy(update={"number": "CJ-098"})]})
    found = [p.message for p in problems(doubled, sample_book.registry)]
    assert any("城乡建设 already has a general item (CJ-099)" in m for m in found)


class SureItIsOutside(SureOf):
    def predict(self, docs):
        from pipeline.textmodel import OUTSIDE

        return [{OUTSIDE: self.probability, **{c: (1 - self.probability) / 7 for c in
                 ["城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生"]}} for _ in docs]


def test_a_message_outside_the_models_classes_says_so_unless_an_items_words_claim_it(sample_book):
    classifier = Classifier(sample_book, SureItIsOutside("", 0.9))
    unknown = classifier.classify(incident("请领导关注", "希望尽快处理答复"))
    assert unknown.item_no is None and "outside the classes the model knows" in unknown.reason
    # 民政 is no class of the labelled messages; its items are still reached by their words (discounted).
    pension = classifier.classify(incident("老人的事", "高龄老人补贴一直没有发放"))
    assert pension.top_class == "民政" and pension.confidence <= 0.8 * 0.9, pension


def test_a_close_call_between_items_that_dispatch_alike_does_not_wait_for_an_operator(sample_book):
    """Two items the same units handle within the same limits: whichever the report is, the same task
    goes to the same unit, so the tie is no reason to queue it. Another primary unit is."""
    def book_with(second_unit: str) -> DutyBook:
        items = [DutyItem(number=n, title=t, category=["城乡建设", "城市建设和市政管理"], keywords=[k], primary_unit=unit,
                          legal_basis="《城市道路管理条例》") for n, t, k, unit in
                 [("A-1", "道路破损", "坑洼", "cgj"), ("A-2", "道路塌陷", "塌方", second_unit)]]
        return DutyBook(sample_book.dutylist.model_copy(update={"items": [*items, sample_book.item("CJ-099")],
                                                                 "local_lists": []}), sample_book.registry)

    report = incident("道路出现问题", "道路出现问题")
    alike = Classifier(book_with("cgj"), SureOf("城乡建设", 0.9)).classify(report)
    assert alike.item_no in ("A-1", "A-2") and alike.confidence == 0.9 and "close call" not in alike.reason, alike
    apart = Classifier(book_with("zjj"), SureOf("城乡建设", 0.9)).classify(report)
    assert apart.confidence < MIN_CONFIDENCE and "close call" in apart.reason, apart
