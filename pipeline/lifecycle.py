"""The task state machine: 派单 → 接单 → 办结 → 核查 → 结案 → 回访, with returns, rework, extensions,
supervision, parking and the SLA clock's own events.

Pure: `open_task(dispatched_event, clock)` makes a `TaskState`; `apply(task, event, clock)` gives the
next one or raises `InvalidTransition` with the reason (the task stage dead-letters it). An event
already applied (same id) is a no-op, so redelivery is safe. The SLA timer's events (pre-warning,
overdue, escalation) are proposals: when the task has moved on since, they are no-ops, not errors.
"""

from __future__ import annotations

from typing import get_args

from pipeline import ids
from pipeline.sla import SlaClock, alert_key
from schemas import Dispatch, Incident, TaskEvent, TaskState, TaskUpdate
from schemas.events import ReturnReason

OPEN: frozenset[str] = frozenset({"dispatched", "accepted", "extension_pending", "parked"})
ALL: frozenset[str] = frozenset(TaskState.model_fields["status"].annotation.__args__)

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
    "merged": (ALL, None),  # another report joined the case: counted whatever the status
    "prewarning": (OPEN, None),
    "overdue": (OPEN, None),
    "review_due": (frozenset({"parked"}), None),
}
RETURN_REASONS: tuple[str, ...] = get_args(ReturnReason)
SLA_KINDS = frozenset({"prewarning", "overdue", "review_due"})  # the timer's alone


class InvalidTransition(ValueError):
    pass


def unknown_task(kind: str) -> str:
    """Why an event for a task this stage does not hold is refused."""
    return (f"unknown task (never dispatched, or finished and forgotten after the retention): it must be "
            f"dispatched before it can be {kind}")


def dispatched_event(incident: Incident, d: Dispatch) -> TaskEvent:
    """The event that opens a dispatch's task, carrying the dispatch (stored from the task's update)
    and the report (for re-routing a return)."""
    return TaskEvent(event_id=ids.task_event_id(d.dispatch_id, "dispatched"), task_id=d.dispatch_id,
                     incident_id=incident.incident_id, unit=d.unit, kind="dispatched", at=d.dispatched_at,
                     by="dispatcher", note=f"{d.item_no} {d.dutylist_version}", dispatch=d, incident=incident)


def update_of(task: TaskState, event: TaskEvent) -> TaskUpdate:
    """What the task stage sends after applying an event: the event (without its copy of the report,
    which has its own table) and the task after it."""
    return TaskUpdate(event=event.model_copy(update={"incident": None}), task=task)


def open_task(event: TaskEvent, clock: SlaClock) -> TaskState:
    """The task a `dispatched` event creates, with its deadlines."""
    if event.kind != "dispatched" or event.dispatch is None:
        raise InvalidTransition(unknown_task(event.kind))
    d, incident = event.dispatch, event.incident
    task = TaskState(
        task_id=event.task_id, incident_id=event.incident_id, unit=d.unit, role=d.role, item_no=d.item_no,
        top_class=d.top_class, dutylist_version=d.dutylist_version, attempt=d.attempt,
        source=incident.source if incident else "", replayed=bool(incident and incident.history),
        district=incident.district if incident else None,
        street=incident.street if incident else None, community=incident.community if incident else None,
        grid_code=incident.grid_code if incident else None,
        accept_within_hours=d.accept_within_hours, finish_within_days=d.finish_within_days, due_at=d.due_at,
        dispatched_at=event.at, last_event_at=event.at, applied=[event.event_id],
    )
    return task.model_copy(update=clock.deadlines(task))


def apply(task: TaskState, event: TaskEvent, clock: SlaClock) -> TaskState:
    if event.event_id in task.applied:
        return task  # redelivered: already in the state
    if event.kind == "dispatched":
        raise InvalidTransition(f"task {task.task_id} was already dispatched (by event {task.applied[0]})")
    if (event.kind in SLA_KINDS or event.by == "sla") and (event.by != "sla" or not event.limit or not event.due_at):
        raise InvalidTransition(f"{event.kind} events come from the SLA timer, with the limit and the time that passed")
    allowed, to = TRANSITIONS[event.kind]
    if task.status not in allowed:
        if event.by == "sla" or event.kind == "merged":
            return task  # the task moved on before the timer's proposal arrived
        raise InvalidTransition(f"{event.kind} is not possible when the task is {task.status}")
    if event.at < task.last_event_at and event.by != "sla" and event.kind != "merged":
        raise InvalidTransition(f"{event.kind} at {event.at.isoformat()} is earlier than the task's last event "
                                f"({task.last_event_at.isoformat()})")
    if event.by == "sla" and not _still_due(task, event, clock):
        return task
    require_details(event)
    changes: dict = {"status": to or task.status, "applied": [*task.applied, event.event_id],
                     "version": task.version + 1}
    if event.by != "sla" and event.kind != "merged":
        # Only the actors' own events order the task: a unit's event stamped before a timer alert
        # (sent late from a phone, say) still counts at the time it happened.
        changes["last_event_at"] = event.at
    match event.kind:
        case "accepted":
            changes |= {"accepted_at": event.at, "accept_working_hours": clock.working_hours(task.dispatched_at, event.at)}
        case "returned":
            changes |= {"returned_at": event.at, "return_reason": event.reason}
        case "extension_requested":
            changes |= {"extensions_requested": task.extensions_requested + 1, "paused_since": event.at}
        case "extension_approved":
            changes |= _resume(task, event, clock) | {"extension_days": task.extension_days + event.days}
        case "extension_refused" | "resumed":
            changes |= _resume(task, event, clock)
            if event.kind == "resumed":
                changes |= {"parked_reason": None, "review_on": None}
        case "parked":
            changes |= {"parked_at": event.at, "parked_reason": event.reason, "review_on": event.review_on,
                        "paused_since": event.at}
        case "completed":
            changes |= {"completed_at": event.at, "finish_working_hours":
                        clock.working_hours(task.dispatched_at, event.at) - task.paused_seconds / 3600}
        case "rework":
            changes |= {"rework": task.rework + 1, "completed_at": None}
        case "verified":
            changes["verified_at"] = event.at
        case "closed":
            changes["closed_at"] = event.at
        case "evaluated":
            changes |= {"score": event.score, "evaluated_at": event.at}
        case "supervised":
            changes["supervised"] = task.supervised + 1
        case "escalated":
            if task.escalated_at is not None:
                return task  # escalated once; the supervisor already has it
            changes["escalated_at"] = event.at
            if event.by == "sla":
                changes["alerts_raised"] = [*task.alerts_raised, alert_key(event)]
        case "merged":
            changes["reports"] = task.reports + 1
        case "prewarning" | "overdue" | "review_due":
            changes["alerts_raised"] = [*task.alerts_raised, alert_key(event)]
    moved = task.model_copy(update=changes)
    if changes.keys() & {"extension_days", "paused_seconds"}:  # what the finish deadline depends on
        moved = moved.model_copy(update=clock.deadlines(moved))
    return moved


def next_status(status: str, event: TaskEvent) -> str:
    """The status an actor's `event` leads to from `status`, or InvalidTransition saying why: what the
    api checks before it sends an action (the task stage still decides, with `apply`)."""
    allowed, to = TRANSITIONS[event.kind]
    if status not in allowed:
        raise InvalidTransition(f"{event.kind} is not possible when the task is {status}")
    require_details(event)
    return to or status


def require_details(event: TaskEvent) -> None:
    """The facts an event of its kind must carry."""
    match event.kind:
        case "returned" if event.reason not in RETURN_REASONS:
            raise InvalidTransition(f"a return needs a reason: one of {', '.join(RETURN_REASONS)}")
        case "extension_approved" if not event.days:
            raise InvalidTransition("an approved extension needs the granted working days")
        case "parked" if not event.reason or event.review_on is None:
            raise InvalidTransition("parking (挂账) needs a reason and a review date")
        case "evaluated" if event.score is None:
            raise InvalidTransition("an evaluation scores 1 (不满意), 2 (基本满意) or 3 (满意)")


def raised_alert(before: TaskState, after: TaskState) -> str | None:
    """The alert key `apply` just raised, if it raised one."""
    new = after.alerts_raised[len(before.alerts_raised):]
    return new[0] if new else None


def _resume(task: TaskState, event: TaskEvent, clock: SlaClock) -> dict:
    paused = clock.calendar.working_seconds_between(task.paused_since, event.at) if task.paused_since else 0.0
    return {"paused_since": None, "paused_seconds": task.paused_seconds + paused}


def _still_due(task: TaskState, event: TaskEvent, clock: SlaClock) -> bool:
    """A timer proposal applies only if the task still has that deadline, it has passed, and nothing
    at or beyond that stage was raised for it."""
    return any(p.event_id == event.event_id for p in clock.due(task, event.at))

