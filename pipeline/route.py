"""Classified incident + duty list → dispatches to the units the list names, or the operator queue.

Every dispatch names the item, the list version and the local list (一乡一单) it followed. One guard
stands before every dispatch, automatic or an operator's: work goes to a street or community only
when the list names it there (no 摊派); a refused dispatch goes to the operator queue, flagged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pipeline import ids
from pipeline.classify import Classification
from pipeline.dutylists import DutyBook
from schemas import Dispatch, DutyItem, Incident, ManualReview
from schemas.dutylist import TERRITORIAL_STREET

# Below this confidence an operator decides instead. With a unit head (pipeline.textmodel.UnitHead) the
# confidence is the probability that the unit is right, learnt from how often such picks were. At 0.85
# the tickets sent automatically reach the right primary unit 98.4% of the time, 25.6% of them
# (dispatch-silver.jsonl, 5-fold cross-validated through the whole routing; at 0.8, 32.6% at 96.2%),
# and of the replied messages it sends more than the head before at 0.7 and as often to the unit
# the reply named (30.8% at 85.4%, against 28.6% at 86.0%): `cityops eval dispatch`, BENCHMARKS.md.
# A model without a head (no reports of known unit to learn from) gates on its class, at the same
# threshold. CITYOPS_CLASSIFY_THRESHOLD overrides.
MIN_CONFIDENCE = 0.85

Recipients = list[tuple[str, str]]  # (unit code, "primary" | "cooperating")


def route(incident: Incident, result: Classification, book: DutyBook, *, now: dt.datetime,
          threshold: float = MIN_CONFIDENCE) -> list[Dispatch] | ManualReview:
    """The classification's decision, naming the model that made it (`model_version`): the item's units,
    or the operator queue with the reason and candidates."""
    decision = _route(incident, result, book, now=now, threshold=threshold)
    if result.model_version is None:
        return decision
    stamp = {"model_version": result.model_version}
    return decision.model_copy(update=stamp) if isinstance(decision, ManualReview) \
        else [d.model_copy(update=stamp) for d in decision]


def _route(incident: Incident, result: Classification, book: DutyBook, *, now: dt.datetime,
           threshold: float) -> list[Dispatch] | ManualReview:
    if incident.source == "whistle":
        return route_whistle(incident, result, book, now=now, threshold=threshold)
    if result.item_no is None:
        return _manual(incident, book, now, result.reason, result.candidates)
    if result.confidence < threshold:
        return _manual(incident, book, now, f"low confidence {result.confidence:.2f} for item {result.item_no} "
                       f"({result.reason})", result.candidates)
    return dispatch_item(incident, result.item_no, book, now=now, confidence=result.confidence,
                         reason=result.reason, candidates=result.candidates)


def route_history(incident: Incident, result: Classification, book: DutyBook, *,
                  threshold: float = MIN_CONFIDENCE) -> list[Dispatch] | ManualReview:
    """A replayed historical order (`incident.history`), dispatched at the time it came in, with the
    deadline its record had. A record naming its unit goes to that unit under the record's own
    category (the unit need not be in the registry: the history is a fact, not a routing); its due
    time, when the record has none, comes from the duty list's standard limits. A record without a
    unit is routed by the duty list under its best item whatever the confidence (the order was
    handled, by whom the list says); one the list cannot route goes to the operator like any report."""
    history, at = incident.history, incident.reported_at
    if history is None:
        raise ValueError("route_history routes replayed orders only")
    if history.unit is None:
        decision = route(incident, result, book, now=at, threshold=0.0)
        if isinstance(decision, ManualReview):
            return decision.model_copy(update={"reason": f"replayed order: {decision.reason}"})
    else:
        standard = DutyItem.model_fields
        top_class = result.top_class if result.item_no and result.confidence >= threshold else None
        decision = [Dispatch(
            dispatch_id=ids.dispatch_id(incident.incident_id, history.unit, "primary"),
            incident_id=incident.incident_id, unit=history.unit, role="primary", item_no=history.item or "history",
            item_title=history.item or "历史工单", top_class=top_class or "", dutylist_version=book.version,
            legal_basis=f"historical record ({history.mapping or 'replay'})", confidence=1.0,
            reason=f"replayed: the record names unit {history.unit_name or history.unit}", dispatched_at=at,
            accept_within_hours=standard["accept_within_hours"].default,
            finish_within_days=standard["finish_within_days"].default)]
    if history.due_at is None:
        return decision
    return [d.model_copy(update={"due_at": history.due_at}) for d in decision]


def dispatch_item(incident: Incident, item_no: str, book: DutyBook, *, now: dt.datetime, confidence: float = 1.0,
                  reason: str = "", candidates: Sequence[str] = (), units: Sequence[str] = (),
                  attempt: int = 0) -> list[Dispatch] | ManualReview:
    """Dispatch under item `item_no` as it stands where the incident is: to the units the item names,
    or to `units` when an operator chooses them. Both pass the 摊派 guard. `attempt` > 0: a re-routing
    after a return."""
    candidates = tuple(candidates) or (item_no,)
    item = book.item(item_no, incident.street)
    if item is None:
        where = book.list_for(incident.street)
        why = f"item {item_no} does not apply here (local list {where})" if where and book.item(item_no) else \
            f"item {item_no} is not in list {book.version}"
        return _manual(incident, book, now, why, candidates)
    if units:
        recipients = [(units[0], "primary"), *((u, "cooperating") for u in units[1:] if u != units[0])]
        unknown = [u for u in units if u not in book.units]
        if unknown:
            return _manual(incident, book, now, f"unknown units: {', '.join(unknown)}", candidates, attempt=attempt)
    else:
        named = named_recipients(item, incident.street)
        if isinstance(named, str):
            return _manual(incident, book, now, named, candidates, attempt=attempt)
        recipients = named
    refusal = tanpai_refusal(item, incident.street, recipients, book)
    if refusal:
        return _manual(incident, book, now, refusal, candidates, tanpai_refused=True, attempt=attempt)
    return _dispatches(incident, item, recipients, book, now=now, confidence=confidence, reason=reason,
                       candidates=[c for c in candidates if c != item_no], attempt=attempt)


def named_recipients(item: DutyItem, street: str | None) -> Recipients | str:
    """Who the item names for an incident in `street`: the recipients, or why there are none."""
    if item.scope == "territorial":
        if street is None:
            return f"item {item.number} is territorial (属地) but the incident's street is unknown"
        primary = street
    else:
        primary = item.primary_unit
    cooperating = []
    for unit in item.cooperating_units:
        if unit == TERRITORIAL_STREET:
            if street is not None:  # 属地街道 unknown: the primary still gets the work
                cooperating.append(street)
        elif unit != primary:
            cooperating.append(unit)
    return [(primary, "primary"), *((u, "cooperating") for u in dict.fromkeys(cooperating) if u != primary)]


def tanpai_refusal(item: DutyItem, street: str | None, recipients: Recipients, book: DutyBook) -> str | None:
    """Why sending `recipients` work under `item` would push it down to streets the list does not name."""
    allowed = {u for u in (item.primary_unit, *item.cooperating_units) if u in book.units}
    if street and (item.scope == "territorial" or TERRITORIAL_STREET in item.cooperating_units):
        allowed.add(street)
    pushed = [unit for unit, _ in recipients
              if book.units[unit].kind in ("street", "community") and unit not in allowed]
    if not pushed:
        return None
    names = "、".join(f"{book.units[u].name}({u})" for u in pushed)
    owner = book.units[item.primary_unit].name
    return (f"摊派 refused: item {item.number} {item.title} is {owner}'s ({item.scope}); the list does not name "
            f"{names} for it")


def route_whistle(incident: Incident, result: Classification, book: DutyBook, *, now: dt.datetime,
                  threshold: float = MIN_CONFIDENCE) -> list[Dispatch] | ManualReview:
    """街乡吹哨: the summoned departments answer, within the whistle policy's own limits."""
    policy = book.dutylist.whistle
    unknown = [u for u in incident.summoned_units if u not in book.units]
    if unknown:
        return _manual(incident, book, now, f"whistle summons units not in the registry: {', '.join(unknown)}",
                       result.candidates)
    pushed = [u for u in incident.summoned_units if book.units[u].kind in ("street", "community")]
    if pushed:
        names = "、".join(book.units[u].name for u in pushed)
        return _manual(incident, book, now, f"摊派 refused: a whistle summons departments, not streets or communities "
                       f"({names})", result.candidates, tanpai_refused=True)
    item = book.item(result.item_no, incident.street) if result.item_no and result.confidence >= threshold else None
    whistle_item = DutyItem(
        number=item.number if item else policy.number, title=f"{policy.title}：{item.title if item else '联合处置'}",
        category=item.category if item else ["城乡建设", "城市建设和市政管理"], keywords=["吹哨"],
        primary_unit=incident.summoned_units[0],
        legal_basis=policy.legal_basis + (f"；{item.legal_basis}" if item else ""),
        accept_within_hours=policy.accept_within_hours, finish_within_days=policy.finish_within_days,
    )
    summoned = incident.summoned_units
    recipients = [(summoned[0], "primary"), *((u, "cooperating") for u in dict.fromkeys(summoned[1:]) if u != summoned[0])]
    return _dispatches(incident, whistle_item, recipients, book, now=now, confidence=result.confidence if item else 1.0,
                       reason=f"whistle from {incident.whistle_unit}" + (f"; {result.reason}" if item else ""))


def _dispatches(incident: Incident, item: DutyItem, recipients: Recipients, book: DutyBook, *, now: dt.datetime,
                confidence: float, reason: str, candidates: Sequence[str] = (), attempt: int = 0) -> list[Dispatch]:
    return [
        Dispatch(
            dispatch_id=ids.dispatch_id(incident.incident_id, unit, role, attempt), incident_id=incident.incident_id,
            unit=unit, role=role, item_no=item.number, item_title=item.title, top_class=item.top_class,
            dutylist_version=book.version, local_list=book.list_for(incident.street), legal_basis=item.legal_basis,
            confidence=confidence, reason=reason, dispatched_at=now, accept_within_hours=item.accept_within_hours,
            finish_within_days=item.finish_within_days, candidates=list(candidates), attempt=attempt,
        )
        for unit, role in recipients
    ]


def _manual(incident: Incident, book: DutyBook, now: dt.datetime, reason: str, candidates: Sequence[str],
            *, tanpai_refused: bool = False, attempt: int = 0) -> ManualReview:
    best = book.item(candidates[0], incident.street) if candidates else None
    return ManualReview(incident_id=incident.incident_id, reason=reason, candidates=list(candidates),
                        tanpai_refused=tanpai_refused, dutylist_version=book.version,
                        top_class=best.top_class if best else None, queued_at=now, attempt=attempt, incident=incident)


def reroute_returned(incident: Incident, returned: Dispatch, returned_by_reason: str, note: str, book: DutyBook, *,
                     now: dt.datetime) -> list[Dispatch] | ManualReview:
    """A unit returned (退单) the primary dispatch: for 职能不符 (not its function) the next candidate item
    whose primary unit is another one; for 属地不符 (wrong area) or no candidate left, the operator queue."""
    attempt = returned.attempt + 1
    why = f"returned by {returned.unit} ({returned_by_reason}{': ' + note if note else ''})"
    if returned_by_reason == "职能不符":
        for n, item_no in enumerate(returned.candidates):
            item = book.item(item_no, incident.street)
            if item is None or (item.scope == "department" and item.primary_unit == returned.unit):
                continue
            decision = dispatch_item(incident, item_no, book, now=now, confidence=returned.confidence,
                                     reason=f"{why}; next candidate", candidates=returned.candidates[n + 1:],
                                     attempt=attempt)
            if isinstance(decision, list) and decision[0].unit != returned.unit:
                return decision
    return _manual(incident, book, now, why, [returned.item_no, *returned.candidates], attempt=attempt)
