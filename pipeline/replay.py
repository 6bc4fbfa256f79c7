"""History replay, the pure part: a record of a historical work order → the hotline ticket the
pipeline reads (with what became of it), and the task events that replay its life.

The order goes through the same topics and stages as any report, keeping its own times: it is
dispatched at the time it came in, accepted, completed and closed when its record says, and the
SLA timer raises nothing for it. Reading files and producing is `infra.replay`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import zoneinfo
from collections.abc import Mapping

from pydantic import ValidationError

from pipeline import ids
from pipeline.lifecycle import apply, dispatched_event, open_task, update_of
from pipeline.sla import SlaClock
from schemas import Dispatch, HotlineTicket, Incident, TaskEvent, TaskUpdate
from schemas.replay import ReplayMapping


class ReplayRowError(ValueError):
    """A record that cannot be replayed; the text names the column and why, never its value."""


_CODE = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")


def unit_code(name: str) -> str:
    """A unit code for a name as another city's file writes it: the name itself when it is a code (DPR),
    else its letters and digits in lower case with a short hash of the whole name, so two names never
    share a code (Call Center → call-center-3fa81c; Recreation & Parks → recreation-parks-…; 市城管局 →
    u-…). The name is kept beside it (OrderHistory.unit_name)."""
    if _CODE.match(name):
        return name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    digest = hashlib.blake2b(name.encode(), digest_size=3).hexdigest()
    return f"{slug}-{digest}" if slug else f"u-{digest}"


def to_ticket(mapping: ReplayMapping, row: Mapping[str, object]) -> HotlineTicket:
    zone = zoneinfo.ZoneInfo(mapping.timezone)

    def value(column: str | None) -> str | None:
        if column is None:
            return None
        v = row.get(column)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        text = str(v).strip()
        return text or None

    def instant(column: str | None, *, required: bool = False) -> dt.datetime | None:
        text = value(column)
        if text is None:
            if required:
                raise ReplayRowError(f"{column}: empty; every order needs the time it came in")
            return None
        try:
            at = dt.datetime.strptime(text, mapping.time_format) if mapping.time_format else \
                dt.datetime.fromisoformat(text)
        except ValueError:
            raise ReplayRowError(f"{column}: not a time in the format "
                                 f"{mapping.time_format or 'ISO 8601'}") from None
        return at if at.tzinfo else at.replace(tzinfo=zone)

    def number(column: str | None) -> float | None:
        text = value(column)
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            raise ReplayRowError(f"{column}: not a number") from None

    order_id = value(mapping.id)
    if order_id is None:
        raise ReplayRowError(f"{mapping.id}: empty; the order's number makes its ticket number")
    created = instant(mapping.created, required=True)
    accepted, closed, due = instant(mapping.accepted), instant(mapping.closed), instant(mapping.due)
    for column, at in ((mapping.accepted, accepted), (mapping.closed, closed)):
        if at is not None and at < created:
            raise ReplayRowError(f"{column}: earlier than {mapping.created}")
    if accepted is not None and closed is not None and closed < accepted:
        raise ReplayRowError(f"{mapping.closed}: earlier than {mapping.accepted}")
    text = "；".join(v for c in mapping.text if (v := value(c)))
    if not text:
        raise ReplayRowError(f"{', '.join(mapping.text)}: empty; an order needs a text")
    lat, lon = number(mapping.latitude), number(mapping.longitude)
    unit = value(mapping.unit)
    fields = {
        "ticket_no": f"{mapping.id_prefix}{order_id}", "received_at": created, "channel": "other",
        "title": " ".join(v for c in mapping.title if (v := value(c)))[:500], "text": text,
        "address": value(mapping.address), "district": value(mapping.district), "street": value(mapping.street),
        "location": {"lat": lat, "lon": lon} if lat is not None and lon is not None else None,
        "history": {"unit": unit_code(unit) if unit else None, "unit_name": unit[:200] if unit else None,
                    "item": (value(mapping.category) or "")[:64] or None, "due_at": due, "accepted_at": accepted,
                    "closed_at": closed, "mapping": mapping.name},
    }
    try:
        return HotlineTicket.model_validate(fields)
    except ValidationError as exc:
        raise ReplayRowError(_by_column(mapping, exc)) from None


def _by_column(mapping: ReplayMapping, exc: ValidationError) -> str:
    """A ticket's validation errors named by the file's columns they came from (never the values)."""
    columns = {"ticket_no": [mapping.id], "received_at": [mapping.created], "title": mapping.title,
               "text": mapping.text, "address": [mapping.address], "district": [mapping.district],
               "street": [mapping.street], "location": [mapping.latitude, mapping.longitude],
               "unit": [mapping.unit], "unit_name": [mapping.unit], "item": [mapping.category],
               "due_at": [mapping.due], "accepted_at": [mapping.accepted], "closed_at": [mapping.closed]}
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in err["loc"] if p != "history"]
        named = ", ".join(c for c in columns.get(loc[0], []) if c) if loc else ""
        parts.append(f"{named or '.'.join(loc) or '(record)'}: {err['msg']}")
    return "; ".join(dict.fromkeys(parts))


def history_events(incident: Incident, dispatches: list[Dispatch]) -> list[TaskEvent]:
    """After each replayed task's `dispatched` event: what its record says happened, in order —
    accepted (at dispatch when the record has no acceptance time), then completed, verified and
    closed at the closing time. An open order stays as far as its record got."""
    history = incident.history
    if history is None:
        return []
    events = []
    for d in dispatches:
        steps: list[tuple[str, dt.datetime]] = []
        if history.accepted_at or history.closed_at:
            steps.append(("accepted", max(history.accepted_at or d.dispatched_at, d.dispatched_at)))
        if history.closed_at:
            steps += [(kind, history.closed_at) for kind in ("completed", "verified", "closed")]
        events += [TaskEvent(event_id=ids.task_event_id(d.dispatch_id, kind), task_id=d.dispatch_id,
                             incident_id=incident.incident_id, unit=d.unit, kind=kind, at=at, by="replay",
                             note=f"replayed from {history.mapping or 'a record'}")
                   for kind, at in steps]
    return events


def replayed_updates(incident: Incident, dispatches: list[Dispatch], sla: SlaClock) -> list[TaskUpdate]:
    """What the task stage sends for a replayed order routed to `dispatches`: each task opened, then
    the events of its record applied in order, an update after each — the same state machine, so the
    bulk replay (infra/replay.py) stores what the stages would."""
    tasks, updates = {}, []
    for d in dispatches:
        event = dispatched_event(incident, d)
        tasks[d.dispatch_id] = open_task(event, sla)
        updates.append(update_of(tasks[d.dispatch_id], event))
    for event in history_events(incident, dispatches):
        tasks[event.task_id] = apply(tasks[event.task_id], event, sla)
        updates.append(update_of(tasks[event.task_id], event))
    return updates
