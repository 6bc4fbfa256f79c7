"""Decide the item, gate on the unit: with a unit head, the confidence that sends a report out is the
probability that its unit is right, and the item is one of that unit's, chosen by evidence — never by
weak similarity across units."""

from __future__ import annotations

import datetime as dt

from pipeline.classify import GRID_PICK_LIKELIHOOD_RATIO, KEYWORDS_AGREE_LIKELIHOOD_RATIO, Classifier
from pipeline.route import route
from pipeline.textmodel import NO_ITEM
from schemas import Incident, ManualReview

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)
CLASSES = ["城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生"]


class Sure:
    """A text model sure of a class, with a unit head sure of a unit."""

    version = "test-model"  # what every decision it makes is stamped with

    def __init__(self, top_class: str, unit: str, unit_probability: float = 0.9):
        self.top_class, self.unit, self.unit_probability = top_class, unit, unit_probability

    def predict_with_units(self, docs):
        classes = [{c: 0.9 if c == self.top_class else 0.1 / 6 for c in CLASSES} for _ in docs]
        rest = (1 - self.unit_probability) / 3
        units = [{u: (self.unit_probability if u == self.unit else rest) for u in {self.unit, "zjj", "cgj", "jtysj"}}
                 for _ in docs]
        return classes, units


def incident(title: str, text: str) -> Incident:
    return Incident(incident_id="i1", source="hotline", source_id="t1", reported_at=NOW, normalized_at=NOW,
                    title=title, text=text, street="a1-s01", district="a1")


def test_the_confidence_is_the_units_and_the_item_is_that_units(sample_book):
    # 路灯 is cgj's keyword (CJ-029), but the unit head reads the report as the transport bureau's: the
    # item is one of jtysj's, chosen by its own evidence (公交), not the street lights.
    result = Classifier(sample_book, Sure("城乡建设", "jtysj", 0.8)).classify(incident("公交站旁路灯", "公交线路调整"))
    assert sample_book.item(result.item_no).primary_unit == "jtysj" and result.confidence == 0.8, result
    assert result.reason.startswith("unit: jtysj 0.80")


def odds_times(probability: float, ratio: float) -> float:
    odds = probability / (1 - probability) * ratio
    return round(odds / (1 + odds), 3)


def test_a_unit_the_item_evidence_agrees_with_keeps_that_item_and_its_keywords_count(sample_book):
    result = Classifier(sample_book, Sure("城乡建设", "cgj", 0.7)).classify(incident("路灯不亮", "小区门口路灯不亮"))
    assert (result.item_no, result.confidence) == ("CJ-029", odds_times(0.7, KEYWORDS_AGREE_LIKELIHOOD_RATIO))


def test_a_grid_workers_pick_of_the_units_item_counts_as_a_grid_pick_does(sample_book):
    report = incident("", "窨井井盖缺失").model_copy(update={"source": "grid", "category_hint": "井盖"})
    result = Classifier(sample_book, Sure("城乡建设", "cgj", 0.56)).classify(report)
    assert result.item_no == "CJ-030"
    assert result.confidence == odds_times(0.56, KEYWORDS_AGREE_LIKELIHOOD_RATIO * GRID_PICK_LIKELIHOOD_RATIO)


def test_a_report_no_item_fits_waits_for_the_operator_saying_so(sample_book):
    classified = Classifier(sample_book, Sure("城乡建设", NO_ITEM, 0.9)).classify(incident("感谢", "谢谢你们的帮助"))
    decision = route(incident("感谢", "谢谢你们的帮助"), classified, sample_book, now=NOW)
    assert isinstance(decision, ManualReview) and decision.reason.startswith("fits no item of the duty list")


def test_a_sure_unit_with_no_item_that_fits_waits_with_candidates(sample_book):
    # The unit head is sure of zjj, but nothing in the text is any of zjj's items' words or keywords:
    # no item is guessed by similarity, an operator picks.
    classified = Classifier(sample_book, Sure("交通运输", "zjj", 0.95)).classify(incident("请关注", "希望尽快答复"))
    assert classified.item_no is None and classified.reason.startswith("no item of zjj fits the text")
    assert isinstance(route(incident("请关注", "希望尽快答复"), classified, sample_book, now=NOW), ManualReview)


def test_an_unsure_unit_waits_whatever_the_class(sample_book):
    classified = Classifier(sample_book, Sure("城乡建设", "cgj", 0.4)).classify(incident("路灯不亮", "路灯不亮"))
    assert classified.item_no == "CJ-029" and classified.confidence == odds_times(0.4, KEYWORDS_AGREE_LIKELIHOOD_RATIO)
    assert isinstance(route(incident("路灯不亮", "路灯不亮"), classified, sample_book, now=NOW), ManualReview)


def test_every_decision_names_the_model_that_made_it(sample_book):
    report = incident("路灯不亮", "小区门口路灯不亮")
    sent = route(report, Classifier(sample_book, Sure("城乡建设", "cgj", 0.9)).classify(report), sample_book, now=NOW)
    waits = route(report, Classifier(sample_book, Sure("城乡建设", NO_ITEM, 0.9)).classify(report), sample_book, now=NOW)
    by_keywords = route(report, Classifier(sample_book).classify(report), sample_book, now=NOW, threshold=0.0)
    assert [d.model_version for d in sent] == ["test-model"] * len(sent) and sent
    assert isinstance(waits, ManualReview) and waits.model_version == "test-model"
    assert all(d.model_version is None for d in by_keywords)
