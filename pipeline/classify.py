"""Keyword classifier: incident → duty item with a confidence.

A placeholder with honest behaviour (no hit → no guess); the trained model replaces it. It reads
the items in force where the incident is, so a street's own items (一乡一单) can match.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.dutylists import CITY_TZ, DutyBook
from schemas import Incident


@dataclass(frozen=True)
class Classification:
    item_no: str | None
    confidence: float
    candidates: tuple[str, ...]
    reason: str


class KeywordClassifier:
    def __init__(self, book: DutyBook):
        self.book = book

    def classify(self, incident: Incident) -> Classification:
        if incident.sensor_kind:
            number = self.book.sensor_items.get(incident.sensor_kind)
            if number is None:
                return Classification(None, 0.0, (), f"no item handles sensor kind {incident.sensor_kind}")
            return Classification(number, 1.0, (number,), f"sensor rule: {incident.sensor_kind}")

        scored = []
        reported_on = incident.reported_at.astimezone(CITY_TZ).date()
        for item in self.book.items_for(incident.street, on=reported_on).values():
            hits = [kw for kw in (item.title, *item.keywords) if kw in incident.text or kw in incident.title]
            # A hit in the title says more about the subject than one buried in the text.
            score = sum(2 if kw in incident.title else 1 for kw in hits)
            hint = incident.category_hint
            if hint and any(hint == c.rsplit("/", 1)[-1] or hint == c for c in item.grid_classes):
                # The worker's pick counts, but the text must not contradict it: it is one vote of three.
                score += 3
                hits.append(f"网格员分类:{hint}")
            if score:
                scored.append((score, item.number, hits))
        if not scored:
            return Classification(None, 0.0, (), "no duty-list keyword in the text")
        scored.sort(key=lambda s: (-s[0], s[1]))
        top_score, top_number, top_hits = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0
        confidence = top_score / (top_score + runner_up + 1)
        candidates = tuple(number for _, number, _ in scored[:3])
        return Classification(top_number, round(confidence, 3), candidates, "keywords: " + ",".join(top_hits[:5]))
