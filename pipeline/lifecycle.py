"""The task state machine: 派单 → 接单 → 办结 → 核查 → 结案 → 回访, with returns, rework, extensions,
supervision and parking. Groundwork for the lifecycle issue; the agent that runs it comes next.

Pure: `apply(task, event)` gives the next `Task` or raises `InvalidTransition` with the reason (which
the agent will dead-letter). An event already applied (same id) is a no-op, so redelivery is safe.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Literal

Status = Literal["dispatched", "accepted", "extension_pending", "completed", "verified", "closed", "evaluated",
                 "returned", "parked"]
OPEN: frozenset[str] = frozenset({"dispatched", "accepted", "extension_pending", "parked"})

# event kind → the statuses it may happen in, and the status it leads to (None: status unchanged)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "accepted": (frozenset({"dispatched"}), "accepted"),
    "returned": (frozenset({"dispatched"}), "returned"),  # 退单: before accepting, with a reason
    "extension_requested": (frozenset({"accepted"}), "extension_pending"),
    "extension_approved": (frozenset({"extension_pending"}), "accepted"),
    "extension_refused": (frozenset({"extension_pending"}), "accepted"),
    "parked": (frozenset({"accepted"}), "parked"),  # 挂账: cannot be solved within limits
    "resumed": (frozenset({"parked"}), "accepted"),
    "completed": (frozenset({"accepted"}), "completed"),
    "rework": (frozenset({"completed"}), "accepted"),  # 核查 failed: back to the unit, counted against it
    "verified": (frozenset({"completed"}), "verified"),
    "closed": (frozenset({"verified"}), "closed"),
    "evaluated": (frozenset({"closed"}), "evaluated"),
    "supervised": (OPEN, None),  # 督办
    "escalated": (OPEN, None),
}
RETURN_REASONS = ("职能不符", "属地不符", "other")


class InvalidTransition(ValueError):
    pass


@dataclass(frozen=True)
class Task:
    task_id: str
    status: Status = "dispatched"
    dispatched_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    last_event_at: dt.datetime | None = None
    rework: int = 0
    extensions_requested: int = 0
    extension_days: float = 0.0  # granted
    supervised: int = 0
    escalated: bool = False
    return_reason: str | None = None
    parked_reason: str | None = None
    review_on: dt.date | None = None
    score: int | None = None  # 1 不满意 … 3 满意
    applied: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Event:
    event_id: str
    kind: str
    at: dt.datetime
    reason: str | None = None  # returned: one of RETURN_REASONS; parked: why
    days: float = 0.0  # extension_approved: granted working days
    review_on: dt.date | None = None  # parked: when to look again
    score: int | None = None  # evaluated


def apply(task: Task, event: Event) -> Task:
    if event.event_id in task.applied:
        return task  # redelivered: already in the state
    if event.kind == "dispatched":
        raise InvalidTransition("a task is created by its dispatch, not by an event on it")
    if event.kind not in TRANSITIONS:
        raise InvalidTransition(f"unknown event kind {event.kind!r}")
    allowed, to = TRANSITIONS[event.kind]
    if task.status not in allowed:
        raise InvalidTransition(f"{event.kind} is not possible when the task is {task.status}")
    if task.last_event_at and event.at < task.last_event_at:
        raise InvalidTransition(f"{event.kind} at {event.at.isoformat()} is earlier than the task's last event")
    changes: dict = {"status": to or task.status, "last_event_at": event.at, "applied": task.applied | {event.event_id}}
    match event.kind:
        case "accepted":
            changes["accepted_at"] = event.at
        case "returned":
            if event.reason not in RETURN_REASONS:
                raise InvalidTransition(f"a return needs a reason: one of {', '.join(RETURN_REASONS)}")
            changes["return_reason"] = event.reason
        case "extension_requested":
            changes["extensions_requested"] = task.extensions_requested + 1
        case "extension_approved":
            if event.days <= 0:
                raise InvalidTransition("an approved extension needs the granted working days")
            changes["extension_days"] = task.extension_days + event.days
        case "parked":
            if not event.reason or event.review_on is None:
                raise InvalidTransition("parking (挂账) needs a reason and a review date")
            changes |= {"parked_reason": event.reason, "review_on": event.review_on}
        case "resumed":
            changes |= {"parked_reason": None, "review_on": None}
        case "completed":
            changes["completed_at"] = event.at
        case "rework":
            changes |= {"rework": task.rework + 1, "completed_at": None}
        case "closed":
            changes["closed_at"] = event.at
        case "evaluated":
            if event.score not in (1, 2, 3):
                raise InvalidTransition("an evaluation scores 1 (不满意), 2 (基本满意) or 3 (满意)")
            changes["score"] = event.score
        case "supervised":
            changes["supervised"] = task.supervised + 1
        case "escalated":
            changes["escalated"] = True
    return replace(task, **changes)
