"""Incident → duty item, with a confidence the operator-queue threshold can mean.

Three kinds of evidence, each where it is strong:
- **sensor rules**: a sensor kind raises one item, with certainty;
- **the trained text model** (`pipeline.textmodel`): the top-level class, as a probability;
- **the duty list's keywords** (and the class a grid worker picked, one vote among them): which
  item within the class.

The confidence is the model's probability for the item's class, divided among the items of that
class that tie on keyword evidence. Without a model (not trained yet) keywords alone decide, as a
placeholder with honest behaviour: no keyword, no guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick_rs

from pipeline.dutylists import CITY_TZ, DutyBook
from pipeline.textmodel import TopClassModel, document
from schemas import DutyItem, Incident

# A class the model was not trained on (民政, 政法 …) is judged by keywords alone, discounted so
# that an operator sees it unless the keywords are unambiguous.
UNMODELLED_CLASS_WEIGHT = 0.8
# A grid worker's pick is evidence, not a verdict: it multiplies the odds of the class it names
# by this likelihood ratio. A text the model reads as clearly something else still wins.
GRID_PICK_LIKELIHOOD_RATIO = 4.0


@dataclass(frozen=True)
class Classification:
    item_no: str | None
    top_class: str | None
    confidence: float
    candidates: tuple[str, ...]
    reason: str


def sensor_item(items: Iterable[DutyItem], kind: str, value: float | None,
                unit: str | None) -> tuple[str | None, str]:
    """The item a sensor reading raises under the items' sensor rules, and why — or None and why not.
    Of the rules the reading reaches, the one with the highest value wins (a deep flood is more
    than ponding); a value in another unit than the rules' is not compared."""
    rules = [(rule, item.number) for item in items for rule in item.sensor_rules if rule.kind == kind]
    if not rules:
        return None, f"no item in force here handles sensor kind {kind}"
    reached = [(rule, number) for rule, number in rules if rule.at_least is None
               or (value is not None and unit == rule.unit and value >= rule.at_least)]
    if reached:
        rule, number = max(reached, key=lambda r: -math.inf if r[0].at_least is None else r[0].at_least)
        condition = "" if rule.at_least is None else f" ≥ {rule.at_least:g} {rule.unit}"
        return number, f"sensor rule: {kind}{condition} → {number}"
    if value is None:
        return None, f"{kind} reading without a value"
    comparable = [(rule, number) for rule, number in rules if rule.unit == unit]
    if not comparable:
        return None, f"{kind} reading in {unit}; the rules are in {', '.join(sorted({r.unit for r, _ in rules}))}"
    lowest, number = min(comparable, key=lambda r: r[0].at_least)
    return None, f"{kind} {value:g} {unit} is below every rule (from {lowest.at_least:g} {unit}: {number})"


class Classifier:
    def __init__(self, book: DutyBook, model: TopClassModel | None = None):
        self.book = book
        self.model = model
        # Every keyword of every list (city and local) in one automaton: a text is scanned once,
        # however many items there are, and only items with a hit are looked at.
        self._items_with: dict[str, set[str]] = {}
        for item in book.every_item():
            for keyword in (item.title, *item.keywords):
                self._items_with.setdefault(keyword, set()).add(item.number)
        self._keywords = list(self._items_with)
        self._automaton = ahocorasick_rs.AhoCorasick(self._keywords, matchkind=ahocorasick_rs.MatchKind.Standard)

    def classify(self, incident: Incident) -> Classification:
        return self.classify_many([incident])[0]

    def classify_many(self, incidents: list[Incident]) -> list[Classification]:
        """Batch form: the model scores all texts in one call (what makes it fast)."""
        texts = [i for i in incidents if not i.sensor_kind]
        probabilities = (dict(zip((i.incident_id for i in texts), self.model.predict(
            [document(i.title, i.text) for i in texts]), strict=True)) if self.model and texts else {})
        return [self._classify(i, probabilities.get(i.incident_id)) for i in incidents]

    def _classify(self, incident: Incident, proba: dict[str, float] | None) -> Classification:
        if incident.sensor_kind:
            in_force = self.book.items_for(incident.street, on=incident.reported_at.astimezone(CITY_TZ).date())
            number, why = sensor_item(in_force.values(), incident.sensor_kind, incident.sensor_value,
                                      incident.sensor_unit)
            if number is None:
                return Classification(None, None, 0.0, (), why)
            return Classification(number, in_force[number].top_class, 1.0, (number,), why)

        matched = self._keyword_matches(incident)
        model_says = ""
        if proba:
            best_class = max(proba, key=proba.get)
            model_says = f"model: {best_class} {proba[best_class]:.2f}"
        if not matched:
            reason = "no duty-list keyword in the text" + (f" ({model_says})" if model_says else "")
            return Classification(None, None, 0.0, (), reason)

        ranked = []
        for score, item, hits in matched:
            if proba is None:
                class_weight = 1.0
            elif item.top_class in proba:
                class_weight = proba[item.top_class]
            else:
                class_weight = UNMODELLED_CLASS_WEIGHT * (1 - max(proba.values()))
            if proba is not None and any(h.startswith("网格员分类:") for h in hits):
                odds = class_weight / max(1e-9, 1 - class_weight) * GRID_PICK_LIKELIHOOD_RATIO
                class_weight = odds / (1 + odds)
            ranked.append((class_weight, score, item, hits))
        # The most probable class that has a matching item, then the item with most keyword evidence.
        ranked.sort(key=lambda r: (-r[0], -r[1], r[2].number))
        class_weight, score, item, hits = ranked[0]
        if proba is None:  # keywords only: the lead over the runner-up is all there is
            runner_up = ranked[1][1] if len(ranked) > 1 else 0
            confidence = score / (score + runner_up + 1)
        else:
            # Items of that class tied on evidence: which one is a coin toss, so the confidence halves.
            tied = sum(1 for w, sc, other, _ in ranked if other.top_class == item.top_class and sc == score)
            confidence = class_weight / tied
        reason = "; ".join(filter(None, [model_says, "keywords: " + ",".join(hits[:5])]))
        return Classification(item.number, item.top_class, round(confidence, 3),
                              tuple(r[2].number for r in ranked[:3]), reason)

    def _found(self, text: str) -> set[str]:
        keywords = self._keywords
        return {keywords[index] for index, _, _ in self._automaton.find_matches_as_indexes(text, overlapping=True)}

    def _keyword_matches(self, incident: Incident) -> list[tuple[int, DutyItem, list[str]]]:
        reported_on = incident.reported_at.astimezone(CITY_TZ).date()
        in_title, in_text = self._found(incident.title), self._found(incident.text)
        in_force = self.book.items_for(incident.street, on=reported_on)
        candidates = {n for kw in in_title | in_text for n in self._items_with[kw]}
        hint = incident.category_hint

        def hinted(item: DutyItem) -> bool:  # a grid worker's class, or a service (item number) chosen in an app
            return bool(hint) and (hint == item.number or any(hint == c.rsplit("/", 1)[-1] or hint == c
                                                               for c in item.grid_classes))

        if hint:
            candidates |= {n for n, item in in_force.items() if hinted(item)}
        matched = []
        for number in sorted(candidates):
            item = in_force.get(number)
            if item is None:
                continue
            hits = [kw for kw in (item.title, *item.keywords) if kw in in_title or kw in in_text]
            # A hit in the title says more about the subject than one buried in the text.
            score = sum(2 if kw in in_title else 1 for kw in hits)
            if hinted(item):
                # The reporter's pick counts, but the text must not contradict it: one vote of several.
                score += 3
                hits.append(f"{'网格员分类' if incident.source == 'grid' else '所选事项'}:{hint}")
            if score:
                matched.append((score, item, hits))
        return matched
