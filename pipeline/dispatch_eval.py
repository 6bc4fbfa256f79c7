"""Dispatch measured where a city feels it: the unit a ticket reaches.

For each message with a known right unit (the readers' choice of duty item in `dispatch-silver.jsonl`,
or the handler a government reply names), a decision — dispatched automatically to an item, or left
for an operator — is scored: how many go out, how many of those reach the right primary unit (主责)
and the right item, by class and by item, the coverage curve over the unit confidence, and the worst
confusions with an example each. A message no item fits (NONE) is right only when it waits.

Pure: rows and decisions in, figures out. Reading files and running the classifier is the CLI's.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.dutylists import DutyBook

NONE = "NONE"  # the readers' "no item of the list fits"
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
TARGET_RIGHT_UNIT = 0.95


@dataclass(frozen=True)
class Truth:
    """What a careful dispatcher would do with one message."""

    key: str
    title: str
    text: str
    unit: str | None  # the right primary unit; NONE: no item fits; None: unknown (the readers differ on it)
    item: str | None  # the agreed item (NONE: none fits); None: the readers differ
    top_class: str | None


@dataclass(frozen=True)
class Decision:
    """What the dispatcher did: an item sent automatically (`sent`), with its unit and the confidence
    that the unit is right, or a wait for the operator with the best candidate it had."""

    item: str | None
    unit: str | None
    confidence: float
    sent: bool


def unit_of(book: DutyBook, item: str | None) -> str | None:
    """The primary unit the city list names for an item, else the first local list that has it (NONE for
    none; None for an unknown number)."""
    if item is None:
        return None
    if item == NONE:
        return NONE
    found = book.item(item) or next((i for i in book.every_item() if i.number == item), None)
    return found.primary_unit if found else None


def silver_truths(rows: Iterable[dict], book: DutyBook) -> list[Truth]:
    """`dispatch-silver.jsonl` rows: the unit is known where both readers' items have the same primary unit."""
    truths = []
    for row in rows:
        unit_a, unit_b = unit_of(book, row.get("item_a")), unit_of(book, row.get("item_b"))
        item = row.get("item")
        top = (book.item(item).top_class if item and item != NONE and book.item(item) else row.get("class_if_none"))
        truths.append(Truth(str(row["id"]), row.get("title") or "", row.get("text") or "",
                            unit_a if unit_a == unit_b else None, item, top))
    return truths


def figures(truths: Sequence[Truth], decisions: Sequence[Decision], *,
            thresholds: Sequence[float] = THRESHOLDS, examples: int = 10) -> dict:
    """The figures of `decisions` against `truths` (same order); messages without a known unit are
    left out of the unit figures and counted apart."""
    pairs = [(t, d) for t, d in zip(truths, decisions, strict=True) if t.unit is not None]
    n = len(pairs)
    sent = [(t, d) for t, d in pairs if d.sent]
    right = [(t, d) for t, d in sent if d.unit == t.unit]
    with_item = [(t, d) for t, d in sent if t.item is not None]

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    by_class: dict[str, Counter] = defaultdict(Counter)
    by_item: dict[str, Counter] = defaultdict(Counter)
    for t, d in pairs:
        for key, table in ((t.top_class or "(none)", by_class), (t.item or "(readers differ)", by_item)):
            table[key]["n"] += 1
            table[key]["sent"] += d.sent
            table[key]["right_unit"] += d.sent and d.unit == t.unit
    confusions: Counter = Counter()
    example_of: dict[tuple[str, str], str] = {}
    for t, d in sent:
        if d.unit != t.unit:
            key = (t.unit, f"{d.unit} ({d.item})")
            confusions[key] += 1
            example_of.setdefault(key, (t.title or t.text)[:40])
    curve = coverage(pairs, thresholds)
    return {
        "messages": len(truths), "with_known_unit": n, "unit_unknown": len(truths) - n,
        "sent_share": share(len(sent), n), "right_unit_of_sent": share(len(right), len(sent)),
        "right_item_of_sent": share(sum(d.item == t.item for t, d in with_item), len(with_item)),
        "sent_and_right_unit": share(len(right), n),
        "none_fits_sent": sum(1 for t, d in sent if t.unit == NONE),
        "coverage_curve": curve,
        "sent_at_95_right_unit": best_coverage(curve, TARGET_RIGHT_UNIT),
        "by_class": {k: _rates(c) for k, c in sorted(by_class.items(), key=lambda kv: -kv[1]["n"])},
        "by_item": {k: _rates(c) for k, c in sorted(by_item.items(), key=lambda kv: -kv[1]["n"])[:25]},
        "worst_confusions": [{"right_unit": a, "sent_to": b, "n": k, "example": example_of[(a, b)]}
                             for (a, b), k in confusions.most_common(examples)],
    }


def coverage(pairs: Sequence[tuple[Truth, Decision]], thresholds: Sequence[float]) -> list[dict]:
    """For each threshold on the unit confidence: the share that would go out, and their right-unit rate
    (a decision with no item never goes out)."""
    n = len(pairs)
    curve = []
    for threshold in thresholds:
        out = [(t, d) for t, d in pairs if d.item is not None and d.confidence >= threshold]
        curve.append({"threshold": threshold, "sent_share": round(len(out) / n, 4) if n else None,
                      "right_unit": round(sum(d.unit == t.unit for t, d in out) / len(out), 4) if out else None})
    return curve


def best_coverage(curve: Sequence[dict], target: float) -> dict | None:
    """The point of the curve that sends most while its right-unit rate reaches `target`."""
    good = [p for p in curve if p["right_unit"] is not None and p["right_unit"] >= target]
    return max(good, key=lambda p: p["sent_share"]) if good else None


def _rates(c: Counter) -> dict:
    return {"n": c["n"], "sent": c["sent"], "right_unit": c["right_unit"],
            "right_unit_of_sent": round(c["right_unit"] / c["sent"], 4) if c["sent"] else None}


# ---------------------------------------------------------------------------------- replied handlers

_HANDLER_OPENINGS = re.compile(r"(?:针对您反映[^，,。]{0,80}?的问题[,，]\s*|经|由|已交由|现将|转交)"
                               r"([^，,。、；;：:“”\"（）()]{2,24}?)(?:高度重视|调查|核实|回复如下|办理)")


def reply_handlers(reply: str, book: DutyBook) -> set[str]:
    """The registry's departments a government reply names as handling the message: the department
    names and aliases found in the reply's opening (where Chinese replies say who looked into it:
    "针对您反映…的问题，A3区住建局高度重视", "经A5区教育局核实"). A county's bureau counts as the city
    department of the same function (A3区住建局 → 市住房和城乡建设局). Empty when it names none."""
    opening = reply[:300]
    spans = [m.group(1) for m in _HANDLER_OPENINGS.finditer(opening)] or [opening[:120]]
    found = set()
    for span in spans:
        for unit in book.units.values():
            if unit.kind != "department":
                continue
            names = [unit.name.removeprefix("市"), *unit.aliases]
            if any(name and name in span for name in names):
                found.add(unit.code)
    return found


def routing_decider(book: DutyBook, locator, threshold: float):
    """decide(model, truths) → a Decision per message: normalised as a hotline ticket, classified and routed
    as a worker would (the unit's confidence is the one the gate compares)."""
    import datetime as dt

    from pipeline.classify import Classifier
    from pipeline.normalize import to_incident
    from pipeline.route import route
    from schemas import HotlineTicket, ManualReview

    now = dt.datetime.now(dt.timezone.utc)

    def decide(model, truths) -> list:
        incidents = [to_incident(HotlineTicket(ticket_no=f"eval-{n}", received_at=now, title=t.title[:500],
                                               text=t.text or t.title or "（空）"), salt="eval", now=now,
                                 locator=locator, dutylist_version=book.version) for n, t in enumerate(truths)]
        decisions = []
        for incident, result in zip(incidents, Classifier(book, model).classify_many(incidents), strict=True):
            routed = route(incident, result, book, now=now, threshold=threshold)
            sent = not isinstance(routed, ManualReview)
            item = routed[0].item_no if sent else result.item_no
            decisions.append(Decision(item, unit_of(book, item), result.confidence, sent))
        return decisions

    return decide
