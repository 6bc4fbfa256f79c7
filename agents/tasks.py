"""The task stage: every dispatched task's state, its SLA clock and alerts, and re-routing of returns.

    task-events ──► tasks ──► task-updates (event + task after it) ──► sink: tasks, task_events, dispatches
        ▲              │  ├──► alerts (pre-warning, overdue, escalation) ──► notify (agents/notify.py)
        │              │  └──► task-events `dispatched` / manual (a return re-routed)
        └── SLA timer ◄┘ (reads each task's next due instant; proposes due alerts as events)

State lives in tables keyed by task id, written only here, co-partitioned with `task-events`:
`tasks` (the task, its dispatch and its incident), and `early_task_events`: events that came before
their task's `dispatched` — a merge sent by the case stage while that dispatch is still to be read
again after a restart (docs/faust-on-tansu.md, "A partition that stops being read"). They are held, applied in
order when the dispatch comes, and dead-lettered as for an unknown task if it has not come within
`CITYOPS_UNKNOWN_TASK_WAIT_SECONDS`. What the timer and the metrics read from `tasks` is kept beside
it in memory (`Summary`), derived, rebuilt from the table after recovery.
The timer never writes a table: it sends its proposals through the topic like any other event,
so the state machine applies each once and a restart never raises an alert twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from faust.streams import current_event
from pydantic import BaseModel

from agents.dutylists import DutyLists
from agents.retention import Retention
from agents.wiring import Wiring
from infra import metrics
from pipeline import ids
from pipeline.lifecycle import InvalidTransition, apply, open_task, raised_alert, unknown_task
from pipeline.retention import task_finished_at
from pipeline.route import reroute_returned
from pipeline.sla import ACCEPT_RUNNING, FINISH_RUNNING, DueIndex, SlaClock, alert_key
from schemas import Alert, Dispatch, Incident, ManualReview, TaskEvent, TaskState, TaskUpdate, Unit

log = logging.getLogger(__name__)

ALERT_KIND = {"prewarning": "prewarning", "overdue": "overdue", "escalated": "escalation", "review_due": "review_due"}
STAGE = "tasks"
RESEND_PROPOSAL_AFTER = 30.0  # real seconds: a task whose proposals are not applied by then is looked at again


def add_task_stage(wiring: Wiring, dutylists: DutyLists, units: Mapping[str, Unit], ready: Callable[[], bool]):
    """Returns the tasks table, the early events' table, a function giving each task's summary (see
    `task_figures`) and the tables' retentions."""
    settings, names = wiring.settings, wiring.names
    clock, sla = settings.clock(), settings.sla_clock()

    # task id → TaskRecord as JSON
    tasks = wiring.table("tasks")
    # task id → Summary: what the timer, /health and /metrics read, without parsing every task each
    # time. Derived from the table, so rebuilt from it when they disagree (after recovery or rebalance).
    summaries: dict[str, Summary] = {}
    due_index = DueIndex()  # the tasks by when the timer must look at them next
    proposed_at: dict[str, float] = {}  # task id → when its proposals went (monotonic): not sent again at once
    # Alert ids this process has sent: an applied event seen again while it runs (the timer proposing
    # again what a busy stream had not applied yet) sends its alert again only after a restart, when
    # the first send may have died with the process. Bounded: forgetting only allows a re-send.
    raised_here: set[str] = set()

    def task_summaries() -> dict[str, Summary]:
        if len(summaries) != len(tasks):
            summaries.clear()
            due_index.clear()
            proposed_at.clear()
            for task_id, stored in list(tasks.items()):
                summarise(task_id, TaskRecord.model_validate_json(stored).task)
        return summaries

    def summarise(task_id: str, task: TaskState) -> None:
        summaries[task_id] = summary = Summary.of(task, sla)
        due_index.set(task_id, summary.next_due)
        proposed_at.pop(task_id, None)
        retention.touched(task_id, task_finished_at(task))

    # A finished task leaves the table after the retention (its history is in ClickHouse).
    retention = Retention(wiring, tasks, "tasks",
                          lambda stored: task_finished_at(TaskRecord.model_validate_json(stored).task),
                          lambda task_id, stored: (names.task_events, task_id.encode()))

    # task id → EarlyEvents as JSON, for tasks not in `tasks` yet. Held in real seconds: the re-read
    # that brings a skipped dispatch back runs on the real clock, whatever the city's clock.
    early = wiring.table("early_task_events")
    wait = dt.timedelta(seconds=settings.unknown_task_wait_seconds)
    early_retention = Retention(wiring, early, "early_task_events",
                                lambda stored: EarlyEvents.model_validate_json(stored).since,
                                lambda task_id, stored: (names.task_events, task_id.encode()),
                                keep=wait, now=lambda: dt.datetime.now(dt.timezone.utc))

    def forget(task_id: str) -> None:
        held = early.get(task_id)
        if early_retention.forget(task_id):  # the dispatch never came: refused as for an unknown task
            for e in EarlyEvents.model_validate_json(held).events:
                wiring.dead_letter(e.topic, e.partition, e.offset, e.value.encode(), STAGE,
                                   f"task {task_id}: {unknown_task(e.kind)} (held {wait.total_seconds():.0f} s "
                                   "for its dispatch)")
                metrics.EARLY_TASK_EVENTS.labels("dead_lettered").inc()
        if retention.forget(task_id):
            summaries.pop(task_id, None)
            due_index.set(task_id, None)
            proposed_at.pop(task_id, None)

    @wiring.app.agent(wiring.topic(names.task_events), name=STAGE, concurrency=1)
    async def task_stage(stream):
        await wiring.each_batch(stream, STAGE, TaskEvent, handle, refused=(InvalidTransition,),
                                before=dutylists.ready.wait, forget=forget)

    def handle(task_event: TaskEvent) -> None:
        if task_event.task_id not in tasks and task_event.kind != "dispatched":
            hold(task_event)
            return
        step(task_event)
        if task_event.kind == "dispatched" and (held := early.get(task_event.task_id)) is not None:
            release(task_event.task_id, EarlyEvents.model_validate_json(held))

    def hold(task_event: TaskEvent) -> None:
        event, stored = current_event(), early.get(task_event.task_id)
        held = EarlyEvents.model_validate_json(stored) if stored else EarlyEvents(since=dt.datetime.now(dt.timezone.utc))
        if any(e.event_id == task_event.event_id for e in held.events):
            return  # the same event again (a re-read): held once
        held.events.append(EarlyEvent(event_id=task_event.event_id, kind=task_event.kind, value=event.value.decode(),
                                      topic=event.message.topic, partition=event.message.partition,
                                      offset=event.message.offset))
        early[task_event.task_id] = held.model_dump_json().encode()
        early_retention.touched(task_event.task_id, held.since)
        metrics.EARLY_TASK_EVENTS.labels("held").inc()
        log.info("task %s: %s came before its dispatch; held for it (%d held)", task_event.task_id,
                 task_event.kind, len(held.events))

    def release(task_id: str, held: EarlyEvents) -> None:
        """The dispatch has come: the events held for it, in the order they came."""
        del early[task_id]
        early_retention.touched(task_id, None)
        for e in held.events:
            try:  # refused or failed as the stage loop would have done when it came
                step(TaskEvent.model_validate_json(e.value))
            except InvalidTransition as exc:
                reason = str(exc)
            except Exception as exc:
                log.exception("%s failed on a held event", STAGE)
                reason = f"internal error: {exc!r}"
            else:
                metrics.EARLY_TASK_EVENTS.labels("applied").inc()
                continue
            wiring.dead_letter(e.topic, e.partition, e.offset, e.value.encode(), STAGE, reason)

    def step(task_event: TaskEvent) -> None:
        """Apply one event to its task (opening it on `dispatched`), and send what it causes."""
        stored = tasks.get(task_event.task_id)
        try:
            if stored is None:
                record = TaskRecord(task=open_task(task_event, sla), dispatch=task_event.dispatch,
                                    incident=task_event.incident)
                before, after = None, record.task
            else:
                record = TaskRecord.model_validate_json(stored)
                before, after = record.task, apply(record.task, task_event, sla)
                if after is before:
                    if task_event.event_id in before.applied:
                        send_again(before, task_event, record)
                    return  # else a timer proposal the task has moved past: not applied, nothing to store
                record = record.model_copy(update={"task": after})
        except InvalidTransition as exc:
            raise InvalidTransition(f"task {task_event.task_id}: {exc}") from None
        tasks[after.task_id] = record.model_dump_json().encode()
        summarise(after.task_id, after)
        send_update(after, task_event)
        metrics.TASK_EVENTS.labels(task_event.kind).inc()
        if before is not None and (key := raised_alert(before, after)):
            raise_alert(after, task_event, key)
        if task_event.kind == "returned" and after.role == "primary":
            reroute(after, task_event, record.dispatch, record.incident)

    def send_update(task: TaskState, event: TaskEvent) -> None:
        # The update carries the event without its copy of the incident (that has its own table).
        wiring.send(names.task_updates, task.task_id,
                    TaskUpdate(event=event.model_copy(update={"incident": None}), task=task))

    def send_again(task: TaskState, event: TaskEvent, record: TaskRecord) -> None:
        """An event applied before, redelivered after a restart: the table's changelog may have reached
        the broker and what the event caused not (a process killed between the two), and the task
        will not cause it again. So all of it goes again, under the same ids: the update, with the task
        as it stands (the sink keeps one row per event and the newest task); the alert it raised, unless
        this process sent it (webhooks are at least once, de-duplicated on the alert id); the re-routing
        of a return."""
        send_update(task, event)
        if event.kind in ALERT_KIND and event.due_at is not None and (key := alert_key(event)) in task.alerts_raised \
                and sla_alert_id(task.task_id, key) not in raised_here:
            raise_alert(task, event, key)
        if event.kind == "returned" and task.role == "primary":
            reroute(task, event, record.dispatch, record.incident)

    def raise_alert(task: TaskState, cause: TaskEvent, key: str) -> None:
        kind = ALERT_KIND[cause.kind]
        to_unit = task.unit
        if kind == "escalation":  # to the supervising unit (default: the parent, e.g. a street's district)
            unit = units.get(task.unit)
            to_unit = (unit.supervisor or unit.parent or "") if unit else ""
        alert = Alert(alert_id=sla_alert_id(task.task_id, key), kind=kind, item_no=task.item_no,
                      to_unit=to_unit, raised_at=clock.now(), task_id=task.task_id, incident_id=task.incident_id,
                      unit=task.unit, limit=cause.limit, due_at=cause.due_at)
        wiring.send(names.alerts, alert.alert_id, alert)
        if len(raised_here) >= 100_000:
            raised_here.clear()
        raised_here.add(alert.alert_id)
        metrics.ALERTS.labels(kind).inc()
        metrics.SLA_ALERTS.labels(kind, to_unit).inc()

    def reroute(task: TaskState, returned: TaskEvent, dispatch: Dispatch, incident: Incident | None) -> None:
        if incident is None:
            log.warning("task %s returned but its incident is not known here: nothing to re-route", task.task_id)
            return
        decision = reroute_returned(incident, dispatch, returned.reason or "other", returned.note,
                                    dutylists.book_for(incident), now=clock.now())
        if isinstance(decision, ManualReview):
            wiring.send_manual(decision)
            metrics.REROUTED.labels("operator").inc()
        else:
            wiring.open_tasks(incident, decision)
            metrics.REROUTED.labels("candidate").inc()

    @wiring.app.timer(settings.sla_check_seconds)
    async def sla_timer() -> None:
        """Propose the alerts that are due. Runs on every worker over the tasks it holds, touching only
        the due ones (`DueIndex`), so a tick costs the same with 100 or 1,000,000 open tasks."""
        if not ready():
            return
        now, started = clock.now(), time.monotonic()
        task_summaries()  # rebuilds the index after recovery or a rebalance
        for task_id, sent in list(proposed_at.items()):
            # Not applied yet (lost, a busy stream, or a task that moved past it): look again.
            if started - sent >= RESEND_PROPOSAL_AFTER:
                del proposed_at[task_id]
                if (summary := summaries.get(task_id)) is not None:
                    due_index.set(task_id, summary.next_due)
        for task_id in due_index.pop_due(now):
            if (stored := tasks.get(task_id)) is None:
                continue
            for proposal in sla.due(TaskRecord.model_validate_json(stored).task, now):
                wiring.send(names.task_events, task_id, proposal)
            # Applying a proposal re-indexes the task (`summarise`); until then it waits here.
            proposed_at[task_id] = started

    return tasks, early, task_summaries, (retention, early_retention)


def sla_alert_id(task_id: str, key: str) -> str:
    return ids.stable_id("sla-alert", task_id, key)


class EarlyEvent(BaseModel):
    """An event held for its task's dispatch, with where it came from (for its dead letter)."""

    event_id: str
    kind: str
    value: str  # the message as it came (valid JSON of a TaskEvent)
    topic: str
    partition: int
    offset: int


class EarlyEvents(BaseModel):
    """An `early_task_events` table value."""

    since: dt.datetime  # when the first was held (real time): the wait counts from it
    events: list[EarlyEvent] = []


class TaskRecord(BaseModel):
    """A `tasks` table value: the task, and the dispatch and report it came from (for re-routing)."""

    task: TaskState
    dispatch: Dispatch
    incident: Incident | None = None


@dataclass(frozen=True)
class Summary:
    status: str
    unit: str
    accept_by: dt.datetime | None
    finish_by: dt.datetime | None
    next_due: dt.datetime | None  # when the SLA timer must look at the task again

    @classmethod
    def of(cls, task: TaskState, sla: SlaClock) -> Summary:
        return cls(task.status, task.unit, task.accept_by, task.finish_by, sla.next_due(task))


def task_figures(summaries: dict[str, Summary], now: dt.datetime) -> dict:
    """Tasks on this worker by status, and open tasks past a deadline by unit and the limit they broke
    (for /health and metrics). Each task counts once: under "finish" when past its finish deadline
    (the one overdue definition, as the SLA board's `overdue_open`), else under "accept" when not yet
    accepted past the accept limit — so a unit's overdue tasks never outnumber its open ones."""
    by_status: Counter = Counter()
    overdue: Counter = Counter()
    for s in summaries.values():
        by_status[s.status] += 1
        if s.status in FINISH_RUNNING and s.finish_by and s.finish_by < now:
            overdue[(s.unit, "finish")] += 1
        elif s.status in ACCEPT_RUNNING and s.accept_by and s.accept_by < now:
            overdue[(s.unit, "accept")] += 1
    return {"by_status": dict(by_status), "overdue": overdue}
