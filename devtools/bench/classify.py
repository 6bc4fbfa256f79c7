"""`cityops bench classify`: the dispatcher's decision on one core, in batches and one report at a time."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence

from pipeline.classify import Classifier
from pipeline.dutylists import DutyBook
from pipeline.textmodel import TopClassModel, document
from schemas import Incident


def run_classify_bench(model: TopClassModel, book: DutyBook, texts: Sequence[tuple[str, str]], *,
                       messages: int, batch: int) -> dict:
    """Messages per second of the model alone, the keywords alone, the class gate and the full
    decision (unit head included), and the latency of a batch of one."""
    now = dt.datetime.now(dt.timezone.utc)
    incidents = [Incident(incident_id=str(n), source="hotline", source_id=str(n), reported_at=now, normalized_at=now,
                          title=texts[n % len(texts)][0], text=texts[n % len(texts)][1]) for n in range(messages)]
    batches = [incidents[i:i + batch] for i in range(0, len(incidents), batch)]

    def rate(run: Callable[[list[Incident]], object]) -> float:
        run(batches[0])  # warm-up: jieba's dictionary, vectorizer caches
        started = time.perf_counter()
        for chunk in batches:
            run(chunk)
        return round(messages / (time.perf_counter() - started), 1)

    full, keywords = Classifier(book, model), Classifier(book)
    class_gate = Classifier(book, model.class_gate())
    singles = []
    for incident in incidents[:1000]:  # one report at a time: what a quiet hour's dispatcher does
        started = time.perf_counter()
        full.classify_many([incident])
        singles.append(1000 * (time.perf_counter() - started))
    singles.sort()
    return {
        "messages": messages, "batch": batch, "mean_chars": round(sum(len(i.text) for i in incidents) / messages),
        "unit_head": model.units is not None,
        "model_only_per_s": rate(lambda chunk: model.predict_with_units([document(i.title, i.text) for i in chunk])),
        "keywords_only_per_s": rate(keywords.classify_many),
        "class_gate_per_s": rate(class_gate.classify_many),
        "classify_per_s": rate(full.classify_many),
        "batch_of_one_ms": {"p50": round(singles[len(singles) // 2], 2),
                            "p99": round(singles[int(len(singles) * 0.99)], 2)},
    }
