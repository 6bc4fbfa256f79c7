"""Duplicate merge: reports of the same problem become one case that counts its reports.

A new report joins an open case when, within the case's time window,
- **repeat call**: the same reporter sends near-identical text (any item); or
- **same place**: the same duty item, both with GPS, within the item's distance; or
- **same address**: the same item, no GPS to compare, the same community (or street, when
  neither names a community) and similar text.
Everything else opens a new case. Near misses — the same item and similar text in another place,
or the same place and text under another item — are reported, not merged: they must stay apart.

Pure and deterministic: the caller feeds reports in time order and keeps the `Deduper`.

In the stream one `Deduper` holds the cases of one item in one street (its state is keyed so).
A caller repeating near-identical text that the classifier or the locator put under another item
or street, or below the operator threshold, would never meet the first report there, so a stage
keyed by reporter runs first: `follow_repeat_calls` sends such a report to the case key of the report
it repeats, where the repeat-call rule merges it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from haversine import Unit, haversine

from schemas import DutyItem, Incident

Rule = Literal["repeat call", "same place", "same address", "repeat delivery"]


@dataclass(frozen=True)
class MergePolicy:
    within_m: float = 100.0
    within_hours: float = 24.0
    repeat_similarity: float = 0.9   # the same caller saying the same thing again
    address_similarity: float = 0.5  # without GPS, the texts must also agree


def item_policies(items: Mapping[str, DutyItem], default: MergePolicy) -> Callable[[str], MergePolicy]:
    """Each item's merge window as its duty-list entry sets it (a burst water main merges over a wider
    area than a noisy neighbour), `default` where the entry is silent or the item unknown."""
    def policy_for(item_no: str) -> MergePolicy:
        item = items.get(item_no)
        if item is None:
            return default
        return replace(default, within_m=item.merge_within_m or default.within_m,
                       within_hours=item.merge_within_hours or default.within_hours)
    return policy_for


def case_key(incident: Incident, item_no: str) -> str:
    """Reports that may be one problem share a key: the same item in the same street (or district)."""
    return f"{item_no}|{incident.street or incident.district or '-'}"


def opening(incident: Incident) -> str:
    """The part of a report that says what it is about; bounded, so stored state stays small."""
    return incident.title + incident.text[:300]


def shingles(text: str, n: int = 3) -> frozenset[str]:
    text = "".join(text.split())
    return frozenset(text[i:i + n] for i in range(max(1, len(text) - n + 1)))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


@dataclass
class Case:
    case_id: str  # the first report's incident id
    item_no: str
    opened_at: dt.datetime
    last_at: dt.datetime
    point: tuple[float, float] | None
    place: str | None  # community, else street
    reporters: set[str] = field(default_factory=set)
    texts: list[frozenset[str]] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    task_id: str | None = None  # the primary dispatch, once sent
    unit: str | None = None
    # Past its merge window: nothing joins it any more, but its reports are still known, so a report
    # redelivered after a restart gets its first answer (expiry is counted from the latest report
    # seen, which after a restart may be later than the one redelivered).
    closed: bool = False

    def to_json(self) -> dict:
        return {"case_id": self.case_id, "item_no": self.item_no, "opened_at": self.opened_at.isoformat(),
                "last_at": self.last_at.isoformat(), "point": self.point, "place": self.place,
                "reporters": sorted(self.reporters), "texts": [sorted(t) for t in self.texts],
                "reports": self.reports, "task_id": self.task_id, "unit": self.unit, "closed": self.closed}

    @classmethod
    def from_json(cls, d: dict) -> Case:
        return cls(d["case_id"], d["item_no"], dt.datetime.fromisoformat(d["opened_at"]),
                   dt.datetime.fromisoformat(d["last_at"]), tuple(d["point"]) if d["point"] else None, d["place"],
                   set(d["reporters"]), [frozenset(t) for t in d["texts"]], list(d["reports"]), d["task_id"], d["unit"],
                   d.get("closed", False))


@dataclass(frozen=True)
class Merge:
    case_id: str
    rule: Rule
    reports: int  # the case's reports, this one included


@dataclass(frozen=True)
class NearMiss:
    incident_id: str
    case_id: str
    why_apart: str


# How long a closed case's reports stay known: longer than any redelivery after a restart takes.
REMEMBER_CLOSED = dt.timedelta(days=7)


class Deduper:
    def __init__(self, policy_for: Callable[[str], MergePolicy] = lambda item_no: MergePolicy()):
        self.policy_for = policy_for
        self.cases: list[Case] = []
        self.near_misses: list[NearMiss] = []

    def offer(self, incident: Incident, item_no: str, *, open_case: bool = True) -> Merge | None:
        """Merge `incident` into an open case, or open a new one (None) — unless `open_case` is False
        (a report that may only join a case: a repeat call bound for the operator queue). Reports
        come in time order. Offering a report again (a redelivery) changes nothing and gives the same answer."""
        for case in self.cases:
            if incident.incident_id in case.reports:
                if case.case_id == incident.incident_id:
                    return None
                return Merge(case.case_id, "repeat delivery", case.reports.index(incident.incident_id) + 1)
        at = incident.reported_at
        text = shingles(opening(incident))
        point = (incident.location.lat, incident.location.lon) if incident.location else None
        place = incident.community or incident.street
        self._expire(at)
        for case in self.cases:
            if case.closed:
                continue
            rule = self._rule(case, incident, item_no, at, text, point, place)
            if rule is not None:
                case.last_at = at
                case.reports.append(incident.incident_id)
                case.texts.append(text)
                if incident.reporter_hash:
                    case.reporters.add(incident.reporter_hash)
                return Merge(case.case_id, rule, len(case.reports))
        if not open_case:
            return None
        self.cases.append(Case(incident.incident_id, item_no, at, at, point, place,
                               {incident.reporter_hash} if incident.reporter_hash else set(), [text],
                               [incident.incident_id]))
        return None

    def _rule(self, case: Case, incident: Incident, item_no: str, at: dt.datetime, text: frozenset[str],
              point: tuple[float, float] | None, place: str | None) -> Rule | None:
        policy = self.policy_for(case.item_no)
        if at - case.last_at > dt.timedelta(hours=policy.within_hours):
            return None
        if item_no != case.item_no and incident.reporter_hash not in case.reporters and place != case.place:
            return None  # nothing in common: skip the text comparison
        best = max(similarity(text, t) for t in case.texts)
        if incident.reporter_hash in case.reporters and best >= policy.repeat_similarity:
            return "repeat call"
        if item_no != case.item_no:
            if best >= policy.repeat_similarity and place is not None and place == case.place:
                self.near_misses.append(NearMiss(incident.incident_id, case.case_id,
                                                 f"same place and text, but item {item_no} ≠ {case.item_no}"))
            return None
        if point is not None and case.point is not None:
            distance = haversine(point, case.point, unit=Unit.METERS)
            if distance <= policy.within_m:
                return "same place"
            if best >= policy.address_similarity:
                self.near_misses.append(NearMiss(incident.incident_id, case.case_id,
                                                 f"same item, similar text, {distance:.0f} m apart"))
            return None
        if place is not None and place == case.place and best >= policy.address_similarity:
            return "same address"
        if best >= policy.address_similarity and place != case.place:
            self.near_misses.append(NearMiss(incident.incident_id, case.case_id,
                                             f"same item, similar text, places {place or '?'} ≠ {case.place or '?'}"))
        return None

    def knows(self, incident_id: str) -> bool:
        return any(incident_id in c.reports for c in self.cases)

    def case(self, case_id: str) -> Case:
        return next(c for c in self.cases if c.case_id == case_id)

    def drop(self, case_id: str) -> None:
        """Forget a case that was never dispatched (its report went to the operator instead)."""
        self.cases = [c for c in self.cases if c.case_id != case_id]

    def state(self) -> list[dict]:
        return [c.to_json() for c in self.cases]

    def restore(self, state: list[dict]) -> Deduper:
        self.cases = [Case.from_json(d) for d in state]
        return self

    def _expire(self, now: dt.datetime) -> None:
        """Close the cases past their merge window (their texts and reporters go; their reports stay
        known for REMEMBER_CLOSED), and forget the closed ones older than that."""
        kept = []
        for case in self.cases:
            if now - case.last_at > REMEMBER_CLOSED:
                continue
            if not case.closed and now - case.last_at > dt.timedelta(hours=self.policy_for(case.item_no).within_hours):
                case.closed, case.texts, case.reporters = True, [], set()
            kept.append(case)
        self.cases = kept


@dataclass(frozen=True)
class RecentReport:
    """What the caller stage remembers of one report of a reporter, for as long as it can be repeated."""
    incident_id: str
    case_key: str | None  # None: it went to the operator queue
    item_no: str | None
    at: dt.datetime
    text: str  # the opening the similarity is computed on
    repeat_of: str | None = None

    def to_json(self) -> dict:
        return {"incident_id": self.incident_id, "case_key": self.case_key, "item_no": self.item_no,
                "at": self.at.isoformat(), "text": self.text, "repeat_of": self.repeat_of}

    @classmethod
    def from_json(cls, d: dict) -> RecentReport:
        return cls(d["incident_id"], d["case_key"], d["item_no"], dt.datetime.fromisoformat(d["at"]), d["text"],
                   d["repeat_of"])


@dataclass(frozen=True)
class CallerVerdict:
    case_key: str | None  # where the report goes: a case key, or None for the operator queue
    repeat_of: str | None  # the earlier report of the same reporter it repeats, if any
    recent: list[RecentReport]  # what to remember of the reporter now


def follow_repeat_calls(recent: list[RecentReport], incident: Incident, item_no: str | None, case_key: str | None,
                        policy_for: Callable[[str | None], MergePolicy]) -> CallerVerdict:
    """Where a report goes once its reporter's recent reports are known.

    `case_key` is its own: its item and street, or None when it is bound for the operator queue.
    A report near-identical to one the same reporter sent within that report's merge window
    follows the latest such report that went to a case, whatever its own item, street or confidence:
    a repeat call is one problem, not a new task nor another operator's job. If the similar ones all
    went to the operator queue, it keeps its own way and names the latest (`repeat_of`).
    `recent` is the reporter's remembered reports, oldest first; expired ones are forgotten.
    Offering a report again (a redelivery) gives the same verdict and changes nothing."""
    for earlier in recent:
        if earlier.incident_id == incident.incident_id:
            return CallerVerdict(earlier.case_key, earlier.repeat_of, recent)
    at, text = incident.reported_at, opening(incident)
    live = [r for r in recent if at - r.at <= dt.timedelta(hours=policy_for(r.item_no).within_hours)]
    words = shingles(text)
    # Only a report made before this one can be what it repeats. Reports of one reporter reach this
    # stage in the order their intake partitions deliver them, which after a restart is not the order
    # they were made: following a later one made a report's way depend on that order, and a report
    # redelivered after a SIGKILL went to a second case (dispatched once, merged into another later).
    similar = [r for r in reversed(live) if r.at <= at
               and similarity(words, shingles(r.text)) >= policy_for(r.item_no).repeat_similarity]
    followed = next((r for r in similar if r.case_key is not None), None)
    if followed is not None:
        case_key, repeat_of = followed.case_key, followed.incident_id
    else:
        repeat_of = similar[0].incident_id if similar else None
    return CallerVerdict(case_key, repeat_of,
                         [*live, RecentReport(incident.incident_id, case_key, item_no, at, text, repeat_of)])
