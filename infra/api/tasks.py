"""Acting on tasks: departments (their own unit's tasks only) and the operations centre.

    GET  /departments/                    the units the key acts for
    GET  /departments/{unit}/summary      its open tasks by where they stand against their limits, its items
    GET  /departments/{unit}/tasks        the unit's tasks (open by default, or a status; an item), with the report and the item
    GET  /departments/{unit}/tasks/{id}   one of them
    POST /tasks/{id}/accept | return | extension | complete | park | resume        a department key of the task's unit
    POST /tasks/{id}/verify | rework | close | approve-extension | refuse-extension | supervise    operator
    POST /tasks/{id}/evaluate             the reporter's score (回访): the key that sent the report, or callback

Each action is checked against the task as it stands (`pipeline.lifecycle.next_status`): a 409 names
why it is impossible; otherwise it is sent as a `TaskEvent` on `task-events` and answered, once the
broker has it, with the task's status after it. The task stage applies it (it stays the one judge:
two clerks racing on one task get one of their events applied, the other dead-lettered with the
reason). The event id is made of the task, the kind and the task's version, so the same action
retried is the same event and applied once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from infra import metrics
from infra.api.auth import scoped
from infra.api.figures import Names
from infra.api.keys import ApiKey
from infra.api.problems import PROBLEM, FieldError, Problem, invalid
from infra.store import Store
from pipeline import ids
from pipeline.clock import Clock
from pipeline.dutylists import CITY_TZ
from pipeline.lifecycle import TRANSITIONS, InvalidTransition, next_status
from pipeline.pii import redact_text
from schemas import TaskEvent
from schemas.events import ReturnReason
from schemas.fields import Day, FreeText, OneLine, PhotoUrl
from schemas.topics import TopicNames

# The department's actions: the path under /tasks/{id}/ → the event it sends (pipeline.lifecycle.TRANSITIONS
# says from which statuses). A listed task names the ones open to it now (`actions`), for the workbench.
DEPARTMENT_ACTIONS = {"accept": "accepted", "return": "returned", "extension": "extension_requested",
                      "complete": "completed", "park": "parked", "resume": "resumed"}
PARK_LONGEST = dt.timedelta(days=366)  # a parked task is looked at again within a year
OWN_WRITES_SECONDS = 30.0  # how long this process trusts its own last action over a lagging ClickHouse


class TaskAction(BaseModel):
    note: FreeText = Field(default="", max_length=2000, description="free text; names and phone numbers are masked")


class ReturnAction(TaskAction):
    reason: ReturnReason = Field(description="职能不符 (not our function), 属地不符 (not our area) or other")


class Extension(TaskAction):
    days: float = Field(gt=0, le=60, description="working days: asked for (a request), granted (an approval)")


class Completion(TaskAction):
    result: FreeText = Field(min_length=1, max_length=2000, description="what was done (shown to the reporter, masked)")
    photos: list[PhotoUrl] = Field(default_factory=list, max_length=20, description="photo URLs")


class Parking(TaskAction):
    reason: FreeText = Field(min_length=1, max_length=500, description="why it cannot be solved within the limits (挂账)")
    review_on: Day = Field(description="when to look at it again (at most a year ahead)")


class Verification(TaskAction):
    by: OneLine = Field(default="", max_length=64, description="the grid worker who checked on the spot")
    photos: list[PhotoUrl] = Field(default_factory=list, max_length=20)


class Rework(TaskAction):
    reason: FreeText = Field(min_length=1, max_length=500, description="what the check found")


class Evaluation(TaskAction):
    score: int = Field(ge=1, le=3, description="1 不满意, 2 基本满意, 3 满意")


class ActionResult(BaseModel):
    task_id: str
    event_id: str
    kind: str
    status_before: str
    status: str = Field(description="the task's status after this action")
    at: dt.datetime


ERRORS = {403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 413: PROBLEM, 422: PROBLEM, 503: PROBLEM}
TaskId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]
UnitCode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]


class OwnWrites:
    """The task status this process last sent, until ClickHouse shows that version (read-your-writes:
    a clerk who accepts and then completes at once is not told the task is still dispatched)."""

    def __init__(self):
        self._sent: dict[str, tuple[int, str, float]] = {}

    def current(self, task_id: str, status: str, version: int) -> tuple[str, int]:
        sent = self._sent.get(task_id)
        if sent and sent[0] > version and time.monotonic() - sent[2] < OWN_WRITES_SECONDS:
            return sent[1], sent[0]
        return status, version

    def sent(self, task_id: str, version: int, status: str) -> None:
        self._sent[task_id] = (version, status, time.monotonic())
        if len(self._sent) > 50_000:  # bounded: forget the oldest half
            for task in list(self._sent)[:25_000]:
                del self._sent[task]


class TaskActor:
    """One action on a task, checked against the task as it stands (with this process's own last writes),
    sent as a `TaskEvent` on `task-events`, answered with the status after it. The departments' and the
    centre's routes use it, and so does a reporter's score from the lookup page (infra/api/status.py)."""

    def __init__(self, names: TopicNames, store: Store, clock: Clock):
        self.names, self.store, self.clock, self.own = names, store, clock, OwnWrites()

    async def act(self, request: Request, task_id: str, kind: str, *, note: str, by: str | None,
                  check_unit: Callable[[str], None] | None = None, **facts) -> ActionResult:
        """`by`: who acts (None: the task's unit, after `check_unit(unit)` may refuse)."""
        stored = await asyncio.to_thread(self.store.task_status, task_id)
        if stored is None:
            raise Problem(404, "Not Found", f"no task {task_id} (yet: a new dispatch shows within a second or two)")
        unit, incident_id, status, version = stored
        if check_unit:
            check_unit(unit)
        status, version = self.own.current(task_id, status, version)
        event = TaskEvent(
            event_id=ids.task_event_id(task_id, kind, version), task_id=task_id, incident_id=incident_id, unit=unit,
            kind=kind, at=self.clock.now(), by=unit if by is None else by[:64], note=redact_text(note), **facts)
        try:
            after = next_status(status, event)
        except InvalidTransition as exc:
            metrics.API_TASK_ACTIONS.labels(kind, "conflict").inc()
            raise Problem(409, "Conflict", f"task {task_id}: {exc}") from None
        await request.app.state.publisher.publish(self.names.task_events, task_id, event.model_dump_json().encode())
        self.own.sent(task_id, version + 1, after)
        metrics.API_TASK_ACTIONS.labels(kind, "accepted").inc()
        return ActionResult(task_id=task_id, event_id=event.event_id, kind=kind, status_before=status, status=after,
                            at=event.at)


def tasks_router(actor: TaskActor, store: Store, clock: Clock, named: Names) -> APIRouter:
    router = APIRouter(tags=["tasks"], responses=ERRORS)
    department = Depends(scoped("department"))
    operator = Depends(scoped("operator"))
    reporter_channel = Depends(scoped("intake", "callback"))

    def with_actions(tasks: list[dict]) -> list[dict]:
        for task in tasks:
            task["actions"] = [path for path, kind in DEPARTMENT_ACTIONS.items() if task["status"] in TRANSITIONS[kind][0]]
        return tasks

    def own_unit(key: ApiKey, unit: str) -> None:
        if unit not in key.units:
            raise Problem(403, "Forbidden", f"this key acts for {', '.join(sorted(key.units)) or 'no unit'}, "
                          f"not for {unit}")

    @router.get("/departments/", tags=["departments"])
    async def my_units(key: ApiKey = department) -> list[dict]:
        """The units this key acts for, with their names (a workbench signs in with the key alone)."""
        return [{"code": code, "name": named.units.get(code, code)} for code in sorted(key.units)]

    @router.get("/departments/{unit}/summary", tags=["departments"])
    async def unit_summary(unit: UnitCode, key: ApiKey = department) -> dict:
        """The unit's open tasks by where they stand against their limits (overdue, accept_overdue,
        prewarned, paused, running) and by status, and its items with their tasks and open tasks."""
        own_unit(key, unit)
        summary = await asyncio.to_thread(store.department_summary, unit, clock.now())
        titles = named.of("item_no")
        for item in summary["items"]:
            item["item_title"] = titles.get(item["item_no"], "")
        return summary

    @router.get("/departments/{unit}/tasks", tags=["departments"])
    async def unit_tasks(unit: UnitCode, key: ApiKey = department,
                         status: str | None = Query("open", max_length=32,
                                                    description="'open' (default), a status, or empty: all"),
                         item_no: str | None = Query(None, max_length=32, description="one duty item"),
                         limit: int = Query(100, ge=1, le=1000),
                         offset: int = Query(0, ge=0, le=1_000_000, description="skip this many"),
                         ) -> list[dict]:
        """The unit's tasks, open ones first and the nearest deadline first: where each stands against its
        limits now (`deadline`), the problem (title, text with personal data masked, address, place), the
        item and its legal basis, the deadlines."""
        own_unit(key, unit)
        return with_actions(await asyncio.to_thread(store.department_tasks, unit, status or None, limit, offset,
                                                    None, item_no or None, clock.now()))

    @router.get("/departments/{unit}/tasks/{task_id}", tags=["departments"])
    async def unit_task(unit: UnitCode, task_id: TaskId, key: ApiKey = department) -> dict:
        own_unit(key, unit)
        found = with_actions(await asyncio.to_thread(store.department_tasks, unit, None, 1, 0, task_id, None,
                                                     clock.now()))
        if not found:
            raise Problem(404, "Not Found", f"unit {unit} has no task {task_id} (yet: a new dispatch shows "
                          "within a second or two)")
        return found[0]

    async def act(request: Request, task_id: str, kind: str, key: ApiKey, body: TaskAction, *,
                  by_unit: bool, **facts) -> ActionResult:
        return await actor.act(request, task_id, kind, note=body.note,
                               by=None if by_unit else (facts.pop("by", "") or key.name),
                               check_unit=(lambda unit: own_unit(key, unit)) if by_unit else None, **facts)

    @router.post("/tasks/{task_id}/accept", tags=["departments"])
    async def accept(task_id: TaskId, request: Request, body: TaskAction | None = None,
                     key: ApiKey = department) -> ActionResult:
        """接单: the unit takes the task on (before its accept limit)."""
        return await act(request, task_id, DEPARTMENT_ACTIONS["accept"], key, body or TaskAction(), by_unit=True)

    @router.post("/tasks/{task_id}/return", tags=["departments"])
    async def return_(task_id: TaskId, body: ReturnAction, request: Request, key: ApiKey = department) -> ActionResult:
        """退单: not ours, with the reason; the task is re-routed (职能不符) or goes to the operator."""
        return await act(request, task_id, DEPARTMENT_ACTIONS["return"], key, body, by_unit=True, reason=body.reason)

    @router.post("/tasks/{task_id}/extension", tags=["departments"])
    async def extension(task_id: TaskId, body: Extension, request: Request,
                        key: ApiKey = department) -> ActionResult:
        """延期申请: the finish clock stops until the operations centre decides."""
        return await act(request, task_id, DEPARTMENT_ACTIONS["extension"], key, body, by_unit=True, days=body.days)

    @router.post("/tasks/{task_id}/complete", tags=["departments"])
    async def complete(task_id: TaskId, body: Completion, request: Request, key: ApiKey = department) -> ActionResult:
        """办结: done, with what was done and photos; a grid worker checks it next."""
        return await act(request, task_id, DEPARTMENT_ACTIONS["complete"], key, body, by_unit=True, result=redact_text(body.result),
                         photos=body.photos)

    @router.post("/tasks/{task_id}/park", tags=["departments"])
    async def park(task_id: TaskId, body: Parking, request: Request, key: ApiKey = department) -> ActionResult:
        """挂账: cannot be solved within the limits; the clock stops until the review date, which is after
        today (city time) and at most a year ahead: a task is never parked out of sight."""
        today = clock.now().astimezone(CITY_TZ).date()
        if not today < body.review_on <= today + PARK_LONGEST:
            raise invalid([FieldError(field="body.review_on", message=f"a date after today and at most "
                                      f"{PARK_LONGEST.days} days ahead")], "the request")
        return await act(request, task_id, DEPARTMENT_ACTIONS["park"], key, body, by_unit=True, reason=redact_text(body.reason),
                         review_on=body.review_on)

    @router.post("/tasks/{task_id}/resume", tags=["departments"])
    async def resume(task_id: TaskId, request: Request, body: TaskAction | None = None,
                     key: ApiKey = department) -> ActionResult:
        return await act(request, task_id, DEPARTMENT_ACTIONS["resume"], key, body or TaskAction(), by_unit=True)

    @router.post("/tasks/{task_id}/verify", tags=["operations centre"])
    async def verify(task_id: TaskId, body: Verification, request: Request, key: ApiKey = operator) -> ActionResult:
        """核查: the work was checked on the spot and is done."""
        return await act(request, task_id, "verified", key, body, by_unit=False, by=body.by, photos=body.photos)

    @router.post("/tasks/{task_id}/rework", tags=["operations centre"])
    async def rework(task_id: TaskId, body: Rework, request: Request, key: ApiKey = operator) -> ActionResult:
        """核查不通过: back to the unit, counted against it."""
        return await act(request, task_id, "rework", key, body, by_unit=False, reason=redact_text(body.reason))

    @router.post("/tasks/{task_id}/close", tags=["operations centre"])
    async def close(task_id: TaskId, request: Request, body: TaskAction | None = None,
                    key: ApiKey = operator) -> ActionResult:
        """结案."""
        return await act(request, task_id, "closed", key, body or TaskAction(), by_unit=False)

    @router.post("/tasks/{task_id}/approve-extension", tags=["operations centre"])
    async def approve_extension(task_id: TaskId, body: Extension, request: Request,
                                key: ApiKey = operator) -> ActionResult:
        return await act(request, task_id, "extension_approved", key, body, by_unit=False, days=body.days)

    @router.post("/tasks/{task_id}/refuse-extension", tags=["operations centre"])
    async def refuse_extension(task_id: TaskId, request: Request, body: TaskAction | None = None,
                               key: ApiKey = operator) -> ActionResult:
        return await act(request, task_id, "extension_refused", key, body or TaskAction(), by_unit=False)

    @router.post("/tasks/{task_id}/supervise", tags=["operations centre"])
    async def supervise(task_id: TaskId, request: Request, body: TaskAction | None = None,
                        key: ApiKey = operator) -> ActionResult:
        """督办: the operations centre presses the unit."""
        return await act(request, task_id, "supervised", key, body or TaskAction(), by_unit=False)

    @router.post("/tasks/{task_id}/evaluate", tags=["operations centre"])
    async def evaluate(task_id: TaskId, body: Evaluation, request: Request,
                       key: ApiKey = reporter_channel) -> ActionResult:
        """回访: the reporter's score, once per task, by the reporter's channel: the intake key that sent the
        report, or a `callback` key (the hotline's call-back team). Any other key is refused: a score feeds
        the unit's satisfaction rate."""
        if not key.allows("callback"):
            sent_by = await asyncio.to_thread(store.submitted_by, task_id)
            if sent_by != key.key_id:
                raise Problem(403, "Forbidden", "only the key that sent the report, or a callback key, may score "
                              "its result")
        return await act(request, task_id, "evaluated", key, body, by_unit=False, score=body.score)

    return router

