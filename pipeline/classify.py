"""Minimal keyword classifier: incident → duty item with a confidence.

A placeholder with honest behaviour (no hit → no guess); the trained model replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import DutyItem, DutyList, Incident


@dataclass(frozen=True)
class Classification:
    item: DutyItem | None
    confidence: float
    candidates: tuple[str, ...]
    reason: str


class KeywordClassifier:
    def __init__(self, dutylist: DutyList):
        self._items = dutylist.items
        self._by_sensor = {kind: item for item in dutylist.items for kind in item.sensor_kinds}

    def classify(self, incident: Incident) -> Classification:
        if incident.sensor_kind:
            item = self._by_sensor.get(incident.sensor_kind)
            if item is None:
                return Classification(None, 0.0, (), f"no item handles sensor kind {incident.sensor_kind}")
            return Classification(item, 1.0, (item.number,), f"sensor rule: {incident.sensor_kind}")

        scored = []
        for item in self._items:
            hits = [kw for kw in item.keywords if kw in incident.text or kw in incident.title]
            # A hit in the title says more about the subject than one buried in the text.
            score = sum(2 if kw in incident.title else 1 for kw in hits)
            if incident.category_hint and incident.category_hint in (item.title, *item.keywords):
                score += 1
                hits.append(f"网格员分类:{incident.category_hint}")
            if score:
                scored.append((score, item, hits))
        if not scored:
            return Classification(None, 0.0, (), "no duty-list keyword in the text")
        scored.sort(key=lambda s: (-s[0], s[1].number))
        top_score, top_item, top_hits = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0
        confidence = top_score / (top_score + runner_up + 1)
        candidates = tuple(item.number for _, item, _ in scored[:3])
        return Classification(top_item, round(confidence, 3), candidates, "keywords: " + ",".join(top_hits[:5]))
