"""The trained text model and the classifier that combines it with the duty list (real data)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.classify import Classifier
from pipeline.modelfiles import evaluate_file, lexicon, read_labelled, train_from_files
from pipeline.textmodel import OUTSIDE, TopClassModel, coverage_curve, document, scores
from schemas import Incident

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def halves(shared_data, tmp_path_factory):
    """The real labelled messages split in two; a model trained on the first half only."""
    rows = read_labelled(shared_data / "zh-gov-messages" / "labelled.jsonl")
    base = tmp_path_factory.mktemp("model")
    first, second = base / "first.jsonl", base / "second.jsonl"
    first.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[::2]), encoding="utf-8")
    second.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[1::2]), encoding="utf-8")
    train_from_files(first, shared_data / "zh-gov-messages" / "taxonomy.csv", base / "models")
    return first, second, base / "models", shared_data / "zh-gov-messages" / "taxonomy.csv"


@pytest.fixture(scope="module")
def model(halves) -> TopClassModel:
    return TopClassModel.load(halves[2])


def incident(**fields) -> Incident:
    base = {"incident_id": "i1", "source": "hotline", "source_id": "t1", "reported_at": NOW, "normalized_at": NOW,
            "title": "", "text": ""}
    return Incident.model_validate(base | fields)


def test_held_out_half_is_scored_by_the_model(halves):
    _, second, models, taxonomy = halves
    report = evaluate_file(second, models, taxonomy)
    # The file repeats a message or two word for word: those count as seen and are left out.
    assert report["method"].startswith("model ") and report["seen_in_training"] <= 2
    assert report["n"] == 149 - report["seen_in_training"] and 0.70 <= report["accuracy"] <= 1.0
    assert set(report["per_class"]) - {OUTSIDE} == {"城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障",
                                                    "商贸旅游", "卫生计生"}


def test_rows_the_model_was_trained_on_are_cross_validated_instead(halves):
    first, _, models, taxonomy = halves
    report = evaluate_file(first, models, taxonomy)
    assert report["seen_in_training"] == 149
    assert report["method"].startswith("5-fold cross-validation")
    assert report["accuracy"] < 0.97  # an honest figure, not the model reciting its training data


def test_saved_and_loaded_models_agree(model, halves, tmp_path):
    reloaded = TopClassModel.load(model.save(tmp_path).parent)
    docs = ["小区物业乱收费", "孩子入学学位紧张"]
    assert reloaded.predict(docs) == model.predict(docs) and reloaded.version == model.version


def test_a_model_trained_by_other_code_is_not_loaded(model, tmp_path, caplog):
    target = model.save(tmp_path)
    meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
    (target / "meta.json").write_text(json.dumps(meta | {"kind": "char1-3/tfidf/linearsvc"}), encoding="utf-8")
    assert TopClassModel.load(tmp_path) is None
    assert "retrain it" in caplog.text


def test_lexicon_covers_every_class(halves):
    first, _, _, taxonomy = halves
    docs = lexicon(taxonomy, {r["label"] for r in read_labelled(first)})
    # and what lies beyond: the taxonomy and items of classes no labelled message has
    assert {label for _, label in docs} == {r["label"] for r in read_labelled(first)} | {OUTSIDE}
    outside = " ".join(d for d, label in docs if label == OUTSIDE)
    assert "低保" in outside or "养老" in outside


def test_coverage_falls_and_accuracy_rises_with_the_threshold():
    y = ["a", "a", "b", "b"]
    predicted = ["a", "b", "b", "a"]
    confidence = [0.9, 0.4, 0.8, 0.3]
    curve = coverage_curve(y, predicted, confidence, [0.0, 0.5, 0.85, 0.95])
    assert [p["coverage"] for p in curve] == [1.0, 0.5, 0.25, 0.0]
    assert [p["accuracy"] for p in curve] == [0.5, 1.0, 1.0, None]


def test_scores_per_class():
    figures = scores(["a", "a", "b"], ["a", "b", "b"])
    assert figures["accuracy"] == 0.6667 and figures["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "n": 2}


def test_the_classifier_picks_the_item_within_the_models_class(sample_book, model):
    report = incident(title="孩子入学问题", text="孩子今年入学，附近学校招生划片政策不清楚，请解答。")
    result = Classifier(sample_book, model).classify(report)
    assert (result.item_no, result.top_class) == ("JY-001", "教育文体")
    # The only item of the class the keywords name: the class's probability is the item's confidence.
    class_probability = model.predict([document(report.title, report.text)])[0]["教育文体"]
    assert result.confidence == round(class_probability, 3) > 0.5 and "model: 教育文体" in result.reason


def test_a_grid_workers_pick_raises_confidence_but_does_not_override_the_text(sample_book, model):
    classifier = Classifier(sample_book, model)
    agreeing = classifier.classify(incident(source="grid", text="流动摊贩占道经营", category_hint="占道经营"))
    alone = classifier.classify(incident(source="grid", text="流动摊贩占道经营"))
    assert agreeing.item_no == "CJ-050" and agreeing.confidence > alone.confidence
    contradicted = classifier.classify(incident(source="grid", text="孩子入学学位紧张，学校招生不公平，老师乱收补课费",
                                                category_hint="占道经营"))
    assert contradicted.top_class == "教育文体"


def test_classes_the_model_never_saw_are_discounted(sample_book, model):
    result = Classifier(sample_book, model).classify(incident(title="养老院", text="敬老院服务差，老年人吃不饱"))
    assert result.top_class == "民政" and result.confidence <= 0.8


def test_batch_and_single_classification_agree(sample_book, model):
    classifier = Classifier(sample_book, model)
    incidents = [incident(incident_id=f"i{n}", title=t, text=t) for n, t in enumerate(["小区物业乱收费", "拖欠工资三个月"])]
    assert classifier.classify_many(incidents) == [classifier.classify(i) for i in incidents]


def test_fused_stacked_prediction_equals_scikit_learns(model, halves):
    import numpy as np

    from pipeline.modelfiles import read_labelled
    from pipeline.textmodel import document

    # Also documents with no words of the vocabulary, or no characters at all: empty feature rows.
    docs = ["", "x", "！？"] + [document(r["title"], r["text"]) for r in read_labelled(halves[1])]
    ours = np.array([[p[c] for c in model.classes] for p in model.predict(docs)])
    theirs = model.pipeline.predict_proba(docs)
    assert np.allclose(ours, theirs, rtol=0, atol=1e-6)  # float32 weights
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()


def test_near_duplicates_share_a_group_and_empty_fields_group_nothing():
    from pipeline.textmodel import near_duplicate_groups

    rows = [{"title": "小区物业乱收费！", "text": "物业费年年涨"},          # 0
            {"title": "小区物业乱收费", "text": "另一位业主的说法"},        # 1: same title once normalised
            {"title": "", "text": "另一位业主的说法"},                      # 2: same text as 1
            {"title": "", "text": "孩子入学学位紧张怎么办"},                # 3
            {"title": "", "text": "公交线路调整不合理啊"}]                  # 4: an empty title is no match
    groups = near_duplicate_groups(rows)
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4]}) == 3


def test_rows_without_title_or_text_are_read_and_rows_with_neither_left_out(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"title": "只有标题", "text": None, "label": "城乡建设"}, {"title": None, "text": "只有正文", "label": "城乡建设"},
        {"title": "", "text": "", "label": "城乡建设"}]), encoding="utf-8")
    assert [(r["title"], r["text"]) for r in read_labelled(data)] == [("只有标题", ""), ("", "只有正文")]
