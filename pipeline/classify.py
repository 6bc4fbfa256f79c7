"""Incident → duty item, with a confidence the operator-queue threshold can mean.

Four kinds of evidence, each where it is strong:
- **sensor rules**: a sensor kind raises one item, with certainty;
- **the trained text model** (`pipeline.textmodel`): the top-level class, as a probability;
- **the duty list's keywords** (and the class a grid worker or an app user picked, one vote among
  them): which item within the class;
- **the items' own words** (`ItemWords`: title, keywords, examples, taxonomy path, the law it rests
  on), when no keyword matched: the item of the model's class whose words the text shares most,
  else the class's general item (`fallback: true`). A confident class never waits for an operator
  only because no keyword matched; an item choice that is itself a close call still does, unless
  the items it hesitates between dispatch alike (`interchangeable`: same units, same limits).

The confidence is the model's probability for the item's class, divided among the items of that
class that tie on the evidence and dispatch otherwise. Without a model (not trained yet) keywords
alone decide, as a placeholder with honest behaviour: no keyword, no guess.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

import ahocorasick_rs

from pipeline.dutylists import CITY_TZ, DutyBook
from pipeline.textmodel import NO_ITEM, OUTSIDE, TopClassModel, document, words
from schemas import DutyItem, Incident

# A class the model was not trained on (民政, 政法 …) is judged by keywords alone, discounted so
# that an operator sees it unless the keywords are unambiguous.
UNMODELLED_CLASS_WEIGHT = 0.8
# A grid worker's pick is evidence, not a verdict: it multiplies the odds of the class it names
# by this likelihood ratio. A text the model reads as clearly something else still wins.
GRID_PICK_LIKELIHOOD_RATIO = 4.0
# Two items of the class sharing the text's words this closely (runner-up / best) are a close call:
# the confidence is divided between them, and below the threshold an operator picks from the top 3.
ITEM_CLOSE_CALL = 0.75
PICKED_PREFIXES = ("网格员分类:", "所选事项:")  # the evidence line a reporter's own pick adds
# The duty list's keywords of an item of the unit the unit head chose: evidence it does not weigh (it
# learns from a thousand reports, the list names every item). On the silver set's cross-validation ×1.5
# sends slightly more at ≥ 95% right unit than none (27.7% against 27.4%); ×2 and more send less
# (measured with the head's sigmoid probabilities of before; the threshold of now was chosen with it).
KEYWORDS_AGREE_LIKELIHOOD_RATIO = 1.5
# Below this an item's shared words are too weak to choose it (one common word such as 小区): the
# class's general item takes the report instead.
MIN_ITEM_WORDS_SCORE = 0.3
# Keyword evidence this weak (one keyword; 2 if in the title) is stray when the model reads another class.
STRAY_KEYWORD_SCORE = 2
# Words of law titles and paths that say nothing about which matter it is.
BOILERPLATE_WORDS = frozenset({"中华人民共和国", "条例", "办法", "规定", "管理", "实施", "意见", "关于", "暂行", "城市",
                               "工作", "问题", "其他"})


@dataclass(frozen=True)
class Classification:
    item_no: str | None
    top_class: str | None
    confidence: float
    candidates: tuple[str, ...]
    reason: str
    model_version: str | None = None  # the text model that weighed in (None: keywords or a sensor rule alone)


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


def interchangeable(a: DutyItem, b: DutyItem) -> bool:
    """Two items that dispatch alike: the same units (主责 and 配合, by the same scope) within the same
    limits. Which of them a report is changes only the legal basis it is recorded under, so a tie
    between them is no reason to make the report wait for an operator."""
    return (a.scope == b.scope and a.primary_unit == b.primary_unit
            and sorted(a.cooperating_units) == sorted(b.cooperating_units)
            and a.accept_within_hours == b.accept_within_hours and a.finish_within_days == b.finish_within_days)


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
        self._words = ItemWords(book.every_item())

    def classify(self, incident: Incident) -> Classification:
        return self.classify_many([incident])[0]

    def classify_many(self, incidents: list[Incident]) -> list[Classification]:
        """Batch form: the model scores all texts in one call (what makes it fast)."""
        texts = [i for i in incidents if not i.sensor_kind] if self.model else []
        by_class, by_unit = self.model.predict_with_units([document(i.title, i.text) for i in texts]) \
            if texts else ([], None)
        probabilities = dict(zip((i.incident_id for i in texts), by_class, strict=True))
        unit_probabilities = dict(zip((i.incident_id for i in texts), by_unit, strict=True)) if by_unit else {}
        results = []
        for incident in incidents:
            # The items in force where and when it was reported: looked up once, used by every kind of evidence.
            in_force = self.book.items_for(incident.street, on=incident.reported_at.astimezone(CITY_TZ).date())
            result = self._classify(incident, probabilities.get(incident.incident_id), in_force)
            if (units := unit_probabilities.get(incident.incident_id)) is not None:
                result = self._by_unit(incident, result, units, in_force)
            if incident.incident_id in probabilities:
                result = replace(result, model_version=self.model.version)
            results.append(result)
        return results

    def _by_unit(self, incident: Incident, by_item: Classification, units: dict[str, float],
                 in_force: dict[str, DutyItem]) -> Classification:
        """Decide the item, gate on the unit: the confidence that sends a report out is the unit head's
        probability that its unit is right. The item is the one the item evidence chose when its unit is
        that unit; else the unit's item the keywords or the items' words point to; else the class's general
        item when that item's unit is the unit. A unit with no item that fits waits for an operator with
        its candidates: an item chosen by weak similarity is never sent."""
        unit, probability = max(units.items(), key=lambda kv: kv[1])
        unit_says = f"unit: {unit} {probability:.2f}"
        if unit == NO_ITEM:
            return Classification(None, None, 0.0, by_item.candidates, f"fits no item of the duty list ({unit_says}"
                                  f"{'; ' + by_item.reason if by_item.reason else ''})")
        chosen, why = self._item_of_unit(incident, by_item, unit, in_force)
        candidates = tuple(dict.fromkeys(([chosen] if chosen else []) + list(by_item.candidates)))[:3]
        if chosen is None:
            return Classification(None, None, 0.0, candidates, f"no item of {unit} fits the text ({unit_says}; "
                                  f"{by_item.reason})")
        # Evidence the unit head does not weigh: the list's own keywords of an item of that unit, and the
        # reporter's pick (a grid worker's class, an app's service) naming one; each multiplies the odds.
        odds = probability / max(1e-9, 1 - probability)
        if chosen == by_item.item_no and "keywords: " in by_item.reason:
            odds *= KEYWORDS_AGREE_LIKELIHOOD_RATIO
            if any(prefix in by_item.reason for prefix in PICKED_PREFIXES):
                odds *= GRID_PICK_LIKELIHOOD_RATIO
        return Classification(chosen, in_force[chosen].top_class, round(odds / (1 + odds), 3), candidates,
                              f"{unit_says}; {why}")

    def _item_of_unit(self, incident: Incident, by_item: Classification, unit: str,
                      in_force: dict[str, DutyItem]) -> tuple[str | None, str]:
        """The item for a report whose unit is `unit`, and the evidence that chose it."""
        if by_item.item_no and by_item.item_no in in_force and in_force[by_item.item_no].primary_unit == unit:
            return by_item.item_no, by_item.reason
        of_unit = {n: i for n, i in in_force.items() if i.primary_unit == unit}
        if matched := self._keyword_matches(incident, of_unit):
            _, item, hits = max(matched, key=lambda m: (m[0], m[1].number))
            return item.number, "keywords: " + ",".join(hits[:5])
        specific = [i for i in of_unit.values() if not i.fallback]
        ranked = [r for r in self._words.rank(f"{incident.title} {incident.text}", specific)
                  if r[0] >= MIN_ITEM_WORDS_SCORE]
        if ranked:
            return ranked[0][1].number, f"item words: {','.join(ranked[0][2][:5])}"
        if len(specific) == 1:  # the unit has one item: the unit decides it
            return specific[0].number, f"the only item of {unit}"
        general = next((i for i in of_unit.values() if i.fallback and i.top_class == by_item.top_class), None)
        if general is not None:
            return general.number, f"the general item of {general.top_class}"
        return None, ""

    def _classify(self, incident: Incident, proba: dict[str, float] | None,
                  in_force: dict[str, DutyItem]) -> Classification:
        if incident.sensor_kind:
            number, why = sensor_item(in_force.values(), incident.sensor_kind, incident.sensor_value,
                                      incident.sensor_unit)
            if number is None:
                return Classification(None, None, 0.0, (), why)
            return Classification(number, in_force[number].top_class, 1.0, (number,), why)

        matched = self._keyword_matches(incident, in_force)
        text = f"{incident.title} {incident.text}"
        model_says = ""
        if proba:
            best_class = max(proba, key=proba.get)
            model_says = (f"model: {best_class} {proba[best_class]:.2f}" if best_class != OUTSIDE else
                          f"model: outside the classes it knows {proba[best_class]:.2f}")
        if not matched:
            by_words = self._by_item_words(text, in_force, best_class, proba, model_says) if proba else None
            if by_words is not None:
                return by_words
            if proba and best_class == OUTSIDE:
                return Classification(None, None, 0.0, (), f"outside the classes the model knows, and no item's "
                                      f"words in the text ({model_says})")
            reason = "no duty-list keyword in the text" + (f" ({model_says})" if model_says else "")
            return Classification(None, None, 0.0, (), reason)

        ranked = []
        for score, item, hits in matched:
            if proba is None:
                class_weight = 1.0
            elif item.top_class in proba:
                class_weight = proba[item.top_class]
            else:  # a class the model has no messages of: as likely as "outside", discounted
                class_weight = UNMODELLED_CLASS_WEIGHT * proba.get(OUTSIDE, 1 - max(proba.values()))
            if proba is not None and any(h.startswith(PICKED_PREFIXES) for h in hits):
                odds = class_weight / max(1e-9, 1 - class_weight) * GRID_PICK_LIKELIHOOD_RATIO
                class_weight = odds / (1 + odds)
            ranked.append((class_weight, score, item, hits))
        # The most probable class that has a matching item, then the item with most keyword evidence;
        # items tied on that are told apart by how much of each one's words the text shares.
        ranked.sort(key=lambda r: (-r[0], -r[1], r[2].number))
        words_score: dict[str, float] = {}
        if len(ranked) > 1 and ranked[0][:2] == ranked[1][:2]:
            words_score = {i.number: sc for sc, i, _ in self._words.rank(text, [r[2] for r in ranked])}
            ranked.sort(key=lambda r: (-r[0], -r[1], -words_score.get(r[2].number, 0.0), r[2].number))
        class_weight, score, item, hits = ranked[0]
        if proba is None:  # keywords only: the lead over the runner-up is all there is
            runner_up = ranked[1][1] if len(ranked) > 1 else 0
            confidence = score / (score + runner_up + 1)
        else:
            # Items of that class tied on both kinds of evidence: which one is a coin toss, so the
            # confidence is shared among them.
            best_words = words_score.get(item.number, 0.0)
            tied = 1 + sum(1 for w, sc, other, _ in ranked if other is not item and other.top_class == item.top_class
                           and sc == score and words_score.get(other.number, 0.0) >= ITEM_CLOSE_CALL * best_words
                           and not interchangeable(other, item))
            confidence = class_weight / tied
        reason = "; ".join(filter(None, [model_says, "keywords: " + ",".join(hits[:5])]))
        by_keywords = Classification(item.number, item.top_class, round(confidence, 3),
                                     tuple(r[2].number for r in ranked[:3]), reason)
        # Keywords of another class than the model's, and less sure than the model's class: the model's
        # class wins (a stray keyword is no reason to send 教育 to 城建) — by its items' words, or its
        # general item when the keyword evidence is one word only; several keywords (a local list's
        # own item named in the title) are not stray.
        if proba and item.top_class != best_class and proba[best_class] > confidence:
            by_words = self._by_item_words(text, in_force, best_class, proba, model_says)
            if (by_words is not None and by_words.confidence > confidence
                    and (not in_force[by_words.item_no].fallback or score <= STRAY_KEYWORD_SCORE)):
                return by_words
        return by_keywords

    def _by_item_words(self, text: str, in_force: dict[str, DutyItem], top_class: str, proba: dict[str, float],
                       model_says: str) -> Classification | None:
        """The item of `top_class` whose words the text shares most, else the class's general item;
        None when the list in force has neither for the class. OUTSIDE: the items of every class the
        model has no messages of (discounted), and no general item (whose class would it be?). A weak
        match of one common word counts as none (MIN_ITEM_WORDS_SCORE)."""
        if top_class == OUTSIDE:
            of_class = [i for i in in_force.values() if i.top_class not in proba and not i.fallback]
            probability = UNMODELLED_CLASS_WEIGHT * proba[OUTSIDE]
        else:
            of_class = [i for i in in_force.values() if i.top_class == top_class]
            probability = proba[top_class]
        general = next((i for i in of_class if i.fallback), None)
        ranked = [r for r in self._words.rank(text, [i for i in of_class if not i.fallback])
                  if r[0] >= MIN_ITEM_WORDS_SCORE]
        if not ranked:
            if general is None:
                return None
            return Classification(general.number, general.top_class, round(probability, 3), (general.number,),
                                  f"{model_says}; no item's words in the text: the general item of {top_class}")
        (best_score, best, shared), *others = ranked
        # The runner-up that would change the dispatch: an item the same units handle within the same
        # limits is no close call for it.
        rival = next(((sc, i) for sc, i, _ in others if not interchangeable(i, best)), (0.0, None))
        runner_up = rival[0]
        close_call = runner_up >= ITEM_CLOSE_CALL * best_score
        confidence = probability * (best_score / (best_score + runner_up) if close_call else 1.0)
        candidates = tuple(i.number for _, i, _ in ranked[:3]) + ((general.number,) if general else ())
        evidence = f"item words: {','.join(shared[:5])}" + (
            f" (close call: {rival[1].number} {runner_up:.2f} vs {best_score:.2f})" if close_call else "")
        return Classification(best.number, best.top_class, round(confidence, 3), candidates[:3],
                              f"{model_says}; {evidence}")

    def _found(self, text: str) -> set[str]:
        keywords = self._keywords
        return {keywords[index] for index, _, _ in self._automaton.find_matches_as_indexes(text, overlapping=True)}

    def _keyword_matches(self, incident: Incident,
                         in_force: dict[str, DutyItem]) -> list[tuple[int, DutyItem, list[str]]]:
        in_title, in_text = self._found(incident.title), self._found(incident.text)
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


class ItemWords:
    """Each duty item's words — jieba words of its title, keywords, examples, taxonomy path and the
    name of the law it rests on — weighted by how few items use them (idf), and found in a text in
    one Aho-Corasick pass. An item's score is the weight of its words the text contains over the
    weight of all its words (square-rooted, so an item with a long profile is not favoured)."""

    def __init__(self, items: Iterable[DutyItem]):
        profiles: dict[str, set[str]] = {}
        for item in items:
            law = item.legal_basis.split("》")[0].lstrip("《") if "《" in item.legal_basis else ""
            text = " ".join([item.title, *item.keywords, *item.examples, *item.category[1:], law])
            profiles.setdefault(item.number, set()).update(
                {w for w in words(text) if w not in BOILERPLATE_WORDS} | {k for k in item.keywords if len(k) >= 2})
        document_frequency = Counter(w for ws in profiles.values() for w in ws)
        n = max(1, len(profiles))
        self.idf = {w: math.log(1 + n / df) for w, df in document_frequency.items()}
        self.profiles = profiles
        self.norm = {number: math.sqrt(sum(self.idf[w] ** 2 for w in ws)) or 1.0 for number, ws in profiles.items()}
        self.vocabulary = sorted(document_frequency)
        self._automaton = ahocorasick_rs.AhoCorasick(self.vocabulary, matchkind=ahocorasick_rs.MatchKind.Standard)
        self._items_with: dict[str, list[str]] = {}  # word → the items whose profile has it
        for number, ws in profiles.items():
            for w in ws:
                self._items_with.setdefault(w, []).append(number)

    def found(self, text: str) -> set[str]:
        vocabulary = self.vocabulary
        return {vocabulary[i] for i, _, _ in self._automaton.find_matches_as_indexes(text, overlapping=True)}

    def rank(self, text: str, items: Iterable[DutyItem]) -> list[tuple[float, DutyItem, list[str]]]:
        """(score, item, the shared words heaviest first) for each item sharing a word, best first."""
        wanted = {item.number: item for item in items}
        shared: dict[str, list[str]] = {}
        for word in self.found(text):  # from the words found to their items: no pass over every item
            for number in self._items_with[word]:
                if number in wanted:
                    shared.setdefault(number, []).append(word)
        ranked = []
        for number, ws in shared.items():
            ws.sort(key=lambda w: (-self.idf[w], w))
            ranked.append((round(sum(self.idf[w] for w in ws) / self.norm[number], 4), wanted[number], ws))
        ranked.sort(key=lambda r: (-r[0], r[1].number))
        return ranked
