"""Classified incident + duty list → dispatches to the named units, or the operator queue."""

from __future__ import annotations

import datetime as dt

from pipeline import ids
from pipeline.classify import Classification
from schemas import Dispatch, DutyList, Incident, ManualReview

# Below this the keyword match is a guess; an operator decides instead.
MIN_CONFIDENCE = 0.3


def route(incident: Incident, result: Classification, dutylist: DutyList, *, now: dt.datetime) -> list[Dispatch] | ManualReview:
    def manual(reason: str) -> ManualReview:
        return ManualReview(incident_id=incident.incident_id, reason=reason, candidates=list(result.candidates), queued_at=now)

    item = result.item
    if item is None:
        return manual(result.reason)
    if result.confidence < MIN_CONFIDENCE:
        return manual(f"low confidence {result.confidence:.2f} for item {item.number} ({result.reason})")

    known_units = {u.code for u in dutylist.units}
    if incident.source == "whistle":
        unknown = [u for u in incident.summoned_units if u not in known_units]
        if unknown:
            return manual(f"whistle summons units not in list {dutylist.version}: {', '.join(unknown)}")
        primary, cooperating = incident.summoned_units[0], incident.summoned_units[1:]
    elif item.scope == "territorial":
        if incident.street not in known_units:
            return manual(f"item {item.number} is territorial (属地) but the street is unknown")
        primary, cooperating = incident.street, item.cooperating_units
    else:
        primary, cooperating = item.primary_unit, item.cooperating_units

    def dispatch(unit: str, role: str) -> Dispatch:
        return Dispatch(
            dispatch_id=ids.dispatch_id(incident.incident_id, unit, role), incident_id=incident.incident_id,
            unit=unit, role=role, item_no=item.number, item_title=item.title, top_class=item.top_class,
            dutylist_version=dutylist.version, legal_basis=item.legal_basis, confidence=result.confidence,
            reason=result.reason, dispatched_at=now, accept_within_hours=item.accept_within_hours,
            finish_within_days=item.finish_within_days,
        )

    return [dispatch(primary, "primary"), *(dispatch(u, "cooperating") for u in cooperating if u != primary)]

