"""Real hotline texts that the class-gated decision once sent to an item of a confident class by weak
word similarity (a runway to street lights, a court's overdue ruling to property disputes): with
the item decided and the unit gated, none of them goes out automatically to that item. Uses the
model the test session trains (with its unit head) on the real data, which does not hold these texts."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.classify import Classifier
from pipeline.dutylists import load_dutybook
from pipeline.locate import Locator
from pipeline.normalize import to_incident
from pipeline.route import route
from pipeline.textmodel import TopClassModel
from schemas import HotlineTicket, ManualReview

ONCE_SENT_TO = {270690: "CJ-029", 126966: "CJ-002", 265692: "CJ-002", 26173: "AQ-009", 19786: "CJ-026"}


def test_texts_once_sent_by_weak_similarity_no_longer_go_out_to_those_items(shared_data, model_dir):
    model = TopClassModel.load(model_dir)
    assert model is not None and model.units is not None, "the session's model has no unit head"
    messages = {}
    with (shared_data / "zh-gov-messages" / "unlabelled.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["id"] in ONCE_SENT_TO:
                messages[row["id"]] = row
    assert set(messages) == set(ONCE_SENT_TO)
    book = load_dutybook()
    locator, now = Locator(book.registry), dt.datetime.now(dt.timezone.utc)
    incidents = {n: to_incident(HotlineTicket(ticket_no=f"pin-{n}", received_at=now, title=r["title"],
                                              text=r["text"]), salt="pin", now=now, locator=locator)
                 for n, r in messages.items()}
    results = Classifier(book, model).classify_many(list(incidents.values()))
    sent = {}
    for (n, incident), result in zip(incidents.items(), results, strict=True):
        decision = route(incident, result, book, now=now)
        if not isinstance(decision, ManualReview):
            sent[n] = decision[0].item_no
    assert not {n: item for n, item in sent.items() if item == ONCE_SENT_TO[n]}, (sent, results)


@pytest.fixture
def model_dir(model_dir, shared_data):  # the session's model; without the data it has no unit head
    return model_dir
